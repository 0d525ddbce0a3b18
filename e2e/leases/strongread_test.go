package leases

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// strongRounds is how many takeovers TestStrongReadSeesCommittedChanges
// makes.
const strongRounds = 40

// takeoverSeen commits a takeover of Lease ns/ctrl from the holder of term
// round-1 to pod-<round> in term round (the API server has answered the
// update when setLease returns), then at once sends the webhook the old
// holder's review and the new holder's, and reports whether the old holder
// was admitted. The new holder must always be admitted: its stamp exists
// only after the commit.
func takeoverSeen(ctx context.Context, t *testing.T, wh *harness.Webhook, ns string, round int, prevStamp string) (staleAdmitted bool, stamp string) {
	t.Helper()
	l := setLease(ctx, t, ns, "ctrl", fmt.Sprintf("pod-%d_%d", round, round), int32(round), time.Now())
	stamp = stampOf(t, l)
	hc := reviewClient(wh, 1)
	defer hc.CloseIdleConnections()
	old, err := postReview(ctx, hc, wh, configMapUpdate(fmt.Sprintf("old-%d", round), ns, "cm", "ctrl", prevStamp, fmt.Sprintf("pod-%d", round-1)))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := postReview(ctx, hc, wh, configMapUpdate(fmt.Sprintf("new-%d", round), ns, "cm", "ctrl", stamp, fmt.Sprintf("pod-%d", round)))
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Allowed || reason(cur) != "Current" {
		t.Errorf("round %d: the new holder's write: allowed=%v reason=%s: %s", round, cur.Allowed, reason(cur), message(cur))
	}
	if !old.Allowed && reason(old) != "StaleTerm" {
		t.Errorf("round %d: the old holder's write denied for %s, want StaleTerm: %s", round, reason(old), message(old))
	}
	return old.Allowed, stamp
}

// TestStrongReadSeesCommittedChanges is the strong source's promise
// (docs/protocol.md, section 5): a decision sees every change of its Lease
// committed before its review arrived, also while other decisions keep
// reads of the same Lease under way and share them. Each round commits a
// takeover and at once asks about the holder it replaced, which must be
// denied StaleTerm every time.
func TestStrongReadSeesCommittedChanges(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns = "strong-read"
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, "kube")
	stamp := stampOf(t, setLease(ctx, t, ns, "ctrl", "pod-0_0", 0, time.Now()))

	// Four clients keep reviews of the same Lease in flight the whole time,
	// so a read is nearly always under way when a round's review arrives:
	// that review must wait for a read that begins after it, not take the
	// answer of the one under way.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hc := reviewClient(wh, 1)
			defer hc.CloseIdleConnections()
			for n := 0; loadCtx.Err() == nil; n++ {
				_, _ = postReview(loadCtx, hc, wh, configMapUpdate(fmt.Sprintf("load-%d-%d", i, n), ns, "cm", "ctrl",
					stampText(0, "00000000-0000-0000-0000-000000000000", "pod-x_1"), "pod-x"))
			}
		}(i)
	}
	coalescedBefore, err := wh.Counter(ctx, "leasefence_lease_reads_coalesced_total", nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	for round := 1; round <= strongRounds; round++ {
		var admitted bool
		admitted, stamp = takeoverSeen(ctx, t, wh, ns, round, stamp)
		if admitted {
			stale++
		}
	}
	stopLoad()
	wg.Wait()
	coalesced, err := wh.Counter(ctx, "leasefence_lease_reads_coalesced_total", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d takeovers, the replaced holder admitted %d times; %v decisions answered by a shared read meanwhile",
		strongRounds, stale, coalesced-coalescedBefore)
	if stale > 0 {
		t.Errorf("the replaced holder was admitted after %d of %d committed takeovers", stale, strongRounds)
	}
	if coalesced == coalescedBefore {
		t.Errorf("no decision shared a read: the load did not exercise shared reads")
	}
}

// TestStrongCheckCatchesACachedCopy runs the check of
// TestStrongReadSeesCommittedChanges against a source that is not strong:
// the watch cache, its watch two seconds behind (the cache's copy stays
// fresh by its own rule, docs/protocol.md, section 5a). The replaced holder
// is admitted right after the takeover, so the check tells a strong read
// from one that is not.
func TestStrongCheckCatchesACachedCopy(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const (
		ns  = "strong-check"
		lag = 2 * time.Second
	)
	newNamespace(ctx, t, ns)
	p := newLagProxy(t)
	_, token := leaseReader(ctx, t, "lf-readers", "reader-strong-check")
	kc := kubeconfigWithCA(t, filepath.Join(t.TempDir(), "kubeconfig"), p.URL(), p.CAPEM(), "", &clientcmdapi.AuthInfo{Token: token})
	// The bound well above the lag plus the renewal period: the lagged copy
	// is fresh by the cache's rule for seconds after the takeover.
	wh := startWebhook(ctx, t, "kube-cached", "--kubeconfig", kc, "--cache-max-staleness=6s")
	stamp := stampOf(t, setLease(ctx, t, ns, "ctrl", "pod-0_0", 0, time.Now()))
	stop := keepRenewing(ctx, t, ns, "ctrl", 200*time.Millisecond)
	p.SetLag(lag)
	p.awaitLagged(ctx, t)
	// The cache serves the holder's copy (a hit, not a live read).
	hc := reviewClient(wh, 1)
	defer hc.CloseIdleConnections()
	if err := cluster.Poll(ctx, 20*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		before := cacheLookups(ctx, t, wh)
		resp, err := postReview(ctx, hc, wh, configMapUpdate("warm", ns, "cm", "ctrl", stamp, "pod-0"))
		after := cacheLookups(ctx, t, wh)
		return err == nil && resp.Allowed && after["hit"] > before["hit"], fmt.Sprintf("review %v, lookups %v", err, delta(after, before)), nil
	}); err != nil {
		t.Fatalf("the cache never served the Lease: %v", err)
	}
	stop()
	if admitted, _ := takeoverSeen(ctx, t, wh, ns, 1, stamp); !admitted {
		t.Errorf("the cached copy, %v behind, did not admit the replaced holder: the check could not tell it from a strong read", lag)
	}
}
