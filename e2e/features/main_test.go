// Package features proves leasefence on a kube-apiserver started with flags
// of its own: Kubernetes' coordinated leader election (feature gate
// CoordinatedLeaderElection, beta and off by default in v1.36; LeaseCandidate
// in coordination.k8s.io/v1beta1), and an audit log, in which the API server
// records the webhook's audit annotations as a cluster's auditors read them.
package features

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

var (
	c        *cluster.Cluster
	wh       *harness.Webhook
	auditLog string
)

// auditPolicy records every write at the Metadata level, which carries the
// webhooks' audit annotations.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete"]
`

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := harness.Binary("webhook/leasefence-webhook"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lf-features-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	auditLog = filepath.Join(dir, "audit.log")
	args := []string{
		// Coordinated leader election: the feature and its LeaseCandidate API.
		"--feature-gates=CoordinatedLeaderElection=true",
		"--runtime-config=coordination.k8s.io/v1beta1=true",
		// The audit log, written as events happen.
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + auditLog,
		"--audit-log-mode=blocking",
	}
	if c, err = cluster.Start(ctx, cluster.Options{ExtraAPIServerArgs: args}); err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		return 1
	}
	defer c.Stop()
	if wh, err = harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: c, Dir: filepath.Join(dir, "webhook")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := harness.Register(ctx, c, wh); err != nil {
		fmt.Fprintln(os.Stderr, err)
		wh.Stop()
		return 1
	}
	return harness.RunTests(m, wh, dir)
}
