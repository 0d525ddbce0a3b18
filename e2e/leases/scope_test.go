package leases

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"leasefence.io/e2e/harness"
)

// TestCacheScope: --cache-namespace and --cache-label-selector narrow what
// the cached source watches. A Lease inside the scope is decided from the
// cache (hits); one outside it is absent from the cache and read live
// (miss_absent, a quorum GET), and decided just as right.
func TestCacheScope(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)

	inCur, inStale := takenOverLease(ctx, t, "scope-in")
	outCur, outStale := takenOverLease(ctx, t, "scope-out")
	lblCur, lblStale := takenOverLease(ctx, t, "scope-label")
	// Only this Lease carries the label the second webhook selects.
	l, err := c.Client.CoordinationV1().Leases("scope-label").Get(ctx, "ctrl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Labels = map[string]string{"leasefence.io/fenced": "true"}
	if _, err := c.Client.CoordinationV1().Leases("scope-label").Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// check decides on Lease ns/ctrl with both stamps and returns how the
	// cache answered. The Lease is renewed first (same holder and term), so
	// a copy in the cache is fresh whatever the time since the webhook's LIST.
	check := func(t *testing.T, wh *harness.Webhook, ns, cur, stale string) map[string]float64 {
		t.Helper()
		setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
		before := cacheLookups(ctx, t, wh)
		decideDirect(ctx, t, wh, ns, cur, stale)
		return delta(cacheLookups(ctx, t, wh), before)
	}

	t.Run("namespace", func(t *testing.T) {
		wh := startWebhook(ctx, t, "kube-cached", "--cache-namespace=scope-in")
		in := check(t, wh, "scope-in", inCur, inStale)
		if in["hit"] < 1 || in["miss_absent"] != 0 {
			t.Errorf("a Lease in the watched namespace: lookups %v, want hits and no miss_absent", in)
		}
		out := check(t, wh, "scope-out", outCur, outStale)
		if out["miss_absent"] != 2 || out["reads_ok"] < 1 || out["hit"] != 0 {
			t.Errorf("a Lease outside the watched namespace: lookups %v, want 2 miss_absent read live", out)
		}
	})
	t.Run("label selector", func(t *testing.T) {
		wh := startWebhook(ctx, t, "kube-cached", "--cache-label-selector=leasefence.io/fenced=true")
		in := check(t, wh, "scope-label", lblCur, lblStale)
		if in["hit"] < 1 || in["miss_absent"] != 0 {
			t.Errorf("a selected Lease: lookups %v, want hits and no miss_absent", in)
		}
		out := check(t, wh, "scope-out", outCur, outStale)
		if out["miss_absent"] != 2 || out["reads_ok"] < 1 || out["hit"] != 0 {
			t.Errorf("a Lease the selector leaves out: lookups %v, want 2 miss_absent read live", out)
		}
	})
}
