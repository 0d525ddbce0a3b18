package harness_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// TestWebhookRoundTrip starts the webhook with its own RBAC-limited identity,
// registers it, and checks that an unstamped protected write is denied with
// leasefence's message, an unprotected one is admitted without a review, the
// counters say so, and the webhook stops with exit 0.
// Both Kubernetes Lease sources are exercised, one after the other, on the
// same control plane (the webhook identity is created once and reused).
func TestWebhookRoundTrip(t *testing.T) {
	if _, err := harness.BuildDir(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for i, source := range []string{"kube", "kube-cached"} {
		t.Run(source, func(t *testing.T) { roundTrip(t, ctx, c, source, fmt.Sprintf("app-%d", i)) })
	}
}

func roundTrip(t *testing.T, ctx context.Context, c *cluster.Cluster, source, ns string) {
	wh, err := harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: c, Dir: t.TempDir(), LeaseSource: source})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Stop()
	if err := harness.Register(ctx, c, wh); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	cms := c.Client.CoreV1().ConfigMaps(ns)

	before, err := wh.Requests(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("unprotected create: %v", err)
	}

	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "guarded", Annotations: map[string]string{harness.AnnotationLease: "ctrl", harness.AnnotationStamp: "lf1:0:u:h"},
	}}, metav1.CreateOptions{FieldManager: "lf1:0:u:h"})
	// A write with a per-request stamp needs the Lease. No Lease app/ctrl
	// exists: the webhook read it with its own identity (allowed) and found
	// none.
	if err == nil || !strings.Contains(err.Error(), "LeaseNotFound") {
		t.Fatalf("stamped protected create: got %v, want a LeaseNotFound denial", err)
	}
	// Counted a moment after the answer: awaited, then exactly one more
	// review than before (the unprotected create never reached the webhook).
	if _, err := wh.WaitRequests(ctx, map[string]string{"operation": "CREATE", "decision": "denied", "reason": "LeaseNotFound"}, 1); err != nil {
		t.Errorf("denied CREATE counter: %v", err)
	}
	if after, _ := wh.Requests(ctx, nil); after != before+1 {
		t.Errorf("requests %v -> %v across an unprotected and a protected write; want exactly one more", before, after)
	}
	lines, err := wh.LogLines()
	if err != nil || len(lines) == 0 {
		t.Errorf("no JSON log lines (%v)", err)
	}

	if err := harness.Unregister(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := wh.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestParseCounter(t *testing.T) {
	text := `# HELP leasefence_requests_total x
# TYPE leasefence_requests_total counter
leasefence_requests_total{operation="UPDATE",decision="denied",reason="StaleTerm"} 3
leasefence_requests_total{operation="UPDATE",decision="allowed",reason="Current"} 5
leasefence_requests_total_other 100
leasefence_build_info{version="x \"y\""} 1
`
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{nil, 8},
		{map[string]string{"decision": "denied"}, 3},
		{map[string]string{"operation": "UPDATE", "reason": "Current"}, 5},
		{map[string]string{"reason": "Nope"}, 0},
	} {
		got, err := harness.ParseCounter(text, "leasefence_requests_total", tc.labels)
		if err != nil || got != tc.want {
			t.Errorf("ParseCounter(%v) = %v, %v; want %v", tc.labels, got, err, tc.want)
		}
	}
	if got, _ := harness.ParseCounter(text, "leasefence_build_info", map[string]string{"version": `x "y"`}); got != 1 {
		t.Errorf("escaped label: got %v", got)
	}
}
