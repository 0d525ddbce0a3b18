package leases

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/harness"
)

// coordinatedHandover gives Lease ns/name to holder exactly as Kubernetes'
// coordinated leader election does when the Lease has no holder or has
// expired (pkg/controlplane/controller/leaderelection,
// reconcileElectionStep): holderIdentity, renewTime now, a 5 s duration, no
// acquireTime, no preferredHolder, and leaseTransitions untouched. The term
// does not move; only the holder does.
func coordinatedHandover(ctx context.Context, t *testing.T, ns, name, holder string) {
	t.Helper()
	api := c.Client.CoordinationV1().Leases(ns)
	l, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.PreferredHolder = nil
	l.Spec.HolderIdentity = ptr.To(holder)
	l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	l.Spec.LeaseDurationSeconds = ptr.To[int32](5)
	l.Spec.AcquireTime = nil
	if _, err := api.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("hand Lease %s/%s over to %s: %v", ns, name, holder, err)
	}
}

// TestCacheSameTermHandover: a Lease released and handed to another holder
// within the same term (coordinated leader election), while the cached
// webhook's watch is wedged, so the cache still holds the previous holder's
// copy, young enough to decide on.
//
//   - The new holder's first write is denied on that copy (NotHolder), so
//     the webhook reads the Lease live and admits it.
//   - The ex-holder's write over the object the new holder just stamped
//     passes every check against the cached copy (same holder, same term);
//     the stored stamp names another holder of the same term, which only a
//     live read can order, so it is read live and denied: NotHolder.
//
// The lookups prove the cached copy was consulted and then a live read made.
func TestCacheSameTermHandover(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns = "handover"
	newNamespace(ctx, t, ns)
	// The wedged watch keeps the old copy for up to 7 s (the watch is
	// confirmed by its events); the copy's own bound is set beyond that, so
	// the copy is what the cache decides on throughout.
	p, wh := cachedBehindProxy(ctx, t, "reader-handover", "--cache-max-staleness=30s")
	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")

	const term = 3
	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", term, time.Now())
	stampA := stampOf(t, l)
	writeA := func(obj string, dryRun bool) error {
		return writeCM(ctx, a.Client, ns, obj, "ctrl", stampA, "a", dryRun)
	}
	stopRenew := keepRenewing(ctx, t, ns, "ctrl", 300*time.Millisecond)
	waitCacheServes(ctx, t, wh, func(dryRun bool) error { return writeA("x", dryRun) })
	wantAdmitted(t, "the holder writes", writeA("x", false))
	stopRenew()

	// Wedge the watch, then release and hand over within term 3.
	if n := p.Freeze(); n < 1 {
		t.Fatal("the proxy had no connection to freeze")
	}
	frozen := time.Now()
	setLease(ctx, t, ns, "ctrl", "", term, time.Now())
	coordinatedHandover(ctx, t, ns, "ctrl", "pod-b_2")
	l, err := c.Client.CoordinationV1().Leases(ns).Get(ctx, "ctrl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *l.Spec.LeaseTransitions != term || *l.Spec.HolderIdentity != "pod-b_2" {
		t.Fatalf("the handover changed the term or not the holder: %+v", l.Spec)
	}
	keepRenewing(ctx, t, ns, "ctrl", 500*time.Millisecond)
	stampB := stampOf(t, l)

	base := cacheLookups(ctx, t, wh)
	err = writeCM(ctx, b.Client, ns, "x", "ctrl", stampB, "b", false)
	d := delta(cacheLookups(ctx, t, wh), base)
	t.Logf("the new holder's first write, %v after the freeze: %v; lookups %v", time.Since(frozen).Round(time.Millisecond), err, d)
	wantAdmitted(t, "the new holder's first write in the same term, watch wedged", err)
	if d["hit"] < 1 || d["live_requested"] < 1 {
		t.Errorf("want the cached copy consulted and then a live read; lookups %v", d)
	}

	base = cacheLookups(ctx, t, wh)
	err = writeA("x", false)
	d = delta(cacheLookups(ctx, t, wh), base)
	t.Logf("the ex-holder's write over the new holder's stamp, %v after the freeze: %v; lookups %v", time.Since(frozen).Round(time.Millisecond), err, d)
	wantDenied(t, "the ex-holder writes over the new holder's stamp in the same term, watch wedged", err, "NotHolder", "pod-b_2")
	if d["hit"] < 1 || d["live_requested"] < 1 {
		t.Errorf("want the cached copy consulted and then a live read; lookups %v", d)
	}
	if time.Since(frozen) > 6*time.Second {
		t.Errorf("the writes took %v after the freeze: the watch may have been resumed, and the cached copy was not the old one", time.Since(frozen))
	}

	cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "x", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Annotations[harness.AnnotationStamp]; got != stampB {
		t.Errorf("stored stamp %q, want the new holder's %q", got, stampB)
	}
}
