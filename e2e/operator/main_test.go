// Package operator_test runs two replicas of leasefence's example operator
// (examples/operator, a controller-runtime manager fenced with crfencing) as
// separate processes against the real control plane, through randomised
// split brains, and judges every write against the Lease's history: with
// the webhook and pod-bound tokens, with the webhook and plain
// service-account tokens, and without the webhook (the control); then
// with stamping switched off (controller-runtime's own manager) on
// summaries fenced by identity, with the webhook and without it.
package operator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

var (
	cp          *cluster.Cluster
	wh          *harness.Webhook
	operatorBin string
	workDir     string
	auditLog    string // the API server's audit log (audit_test.go)
)

// The webhook judges a Lease expired at renewTime + duration -
// tolerance. The replicas use a 4 s Lease renewed every 500 ms on one host
// clock, so a 500 ms tolerance is honest (as in e2e/fencing).
var webhookArgs = []string{"--clock-skew-tolerance=500ms"}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if _, err := harness.BuildDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		fmt.Fprintln(os.Stderr, "unshare (util-linux) is needed to give each replica its pod's hostname:", err)
		return 1
	}
	ctx := context.Background()
	var err error
	if workDir, err = os.MkdirTemp("", "lf-operator-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if operatorBin, err = buildOperator(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var auditFlags []string
	if auditFlags, auditLog, err = auditArgs(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cp, err = cluster.Start(ctx, cluster.Options{ExtraAPIServerArgs: auditFlags}); err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	if wh, err = harness.StartWebhook(ctx, harness.WebhookOptions{
		Cluster: cp, Dir: filepath.Join(workDir, "webhook"), Args: webhookArgs,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return harness.RunTests(m, wh, workDir)
}

// buildOperator builds the example operator from its own module
// (examples/operator, two folders above this package), so that this
// module's go.mod does not change.
func buildOperator(dir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	src := filepath.Join(wd, "..", "..", "examples", "operator")
	out := filepath.Join(dir, "operator")
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd in %s: %v: %s", src, err, b)
	}
	return out, nil
}
