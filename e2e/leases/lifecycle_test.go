package leases

import (
	"context"
	"fmt"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
)

// TestLeaseLifecycle drives one Lease as the admin through its life (created,
// renewed, taken over, expired, released, deleted, re-created) and after each
// step writes a protected ConfigMap through the API server from the pods
// that hold or held it, checking the webhook's decision. Both Kubernetes
// sources must decide the same. The strong source must be right at the first
// write after each change. The cached source may serve a copy that arrived
// within --cache-max-staleness (3 s), so where a change can only be seen as
// a denial it is polled with dry-run writes until the webhook denies,
// bounded by that promise, and then the real write is checked.
func TestLeaseLifecycle(t *testing.T) {
	for _, source := range []string{"kube", "kube-cached"} {
		t.Run(source, func(t *testing.T) { lifecycle(t, source) })
	}
}

func lifecycle(t *testing.T, source string) {
	ctx := testContext(t, 3*time.Minute)
	ns := "life-" + source
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, source)
	register(ctx, t, wh)
	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")
	holderA, holderB := "pod-a_5b0b2c3e", "pod-b_9c1d7e21"
	const lease, cm = "ctrl", "shard-map"
	cached := source == "kube-cached"
	step := 0

	// admitted writes once and wants it admitted by the webhook as Current.
	admitted := func(what string, w *cluster.PodIdentity, stamp string) {
		t.Helper()
		step++
		before := counter(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "Current"})
		wantAdmitted(t, what, writeCM(ctx, w.Client, ns, cm, lease, stamp, fmt.Sprint(step), false))
		waitCounterAbove(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "Current"}, before,
			what+": admitted, but not by the webhook as Current")
	}
	// denied wants the write denied for reason; see the test's comment for
	// the cached source.
	denied := func(what string, w *cluster.PodIdentity, stamp, reason string, mentions ...string) {
		t.Helper()
		step++
		if cached {
			start := time.Now()
			tries := 0
			err := cluster.Poll(ctx, 3*time.Second+2*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
				tries++
				err := writeCM(ctx, w.Client, ns, cm, lease, stamp, fmt.Sprint(step), true)
				return isDenial(err, reason), fmt.Sprintf("dry run: %v", err), nil
			})
			if err != nil {
				t.Fatalf("%s: the cached source did not deny within its staleness bound: %v", what, err)
			}
			t.Logf("%s: cached source denied after %d dry-run attempt(s), %v", what, tries, time.Since(start).Round(time.Millisecond))
		}
		wantDenied(t, what, writeCM(ctx, w.Client, ns, cm, lease, stamp, fmt.Sprint(step), false), reason, mentions...)
	}

	// Created: pod-a holds term 0.
	l := setLease(ctx, t, ns, lease, holderA, 0, time.Now())
	uid1 := l.UID
	stampA0 := stampOf(t, l)
	admitted("created: the holder writes", a, stampA0)

	// Renewed: same holder, same term, later renewTime.
	l = setLease(ctx, t, ns, lease, holderA, 0, time.Now().Add(time.Second))
	if *l.Spec.LeaseTransitions != 0 || l.UID != uid1 {
		t.Fatalf("renewal changed the term or uid: %+v", l)
	}
	admitted("renewed: the holder writes", a, stampA0)

	// Taken over: pod-b holds term 1. The old holder's stamp is stale; the
	// new holder's stamp is admitted (in cached mode possibly through a live
	// read, TermAhead); pod-a carrying pod-b's stamp forward is not pod-b.
	l = setLease(ctx, t, ns, lease, holderB, 1, time.Now())
	stampB1 := stampOf(t, l)
	admitted("taken over: the new holder writes", b, stampB1)
	denied("taken over: the old holder writes", a, stampA0, "StaleTerm", holderB, `"`+holderA+`"`)
	denied("taken over: the old holder carries the new stamp forward", a, stampB1, "IdentityMismatch")

	// Expired: pod-b stopped renewing a minute ago.
	setLease(ctx, t, ns, lease, holderB, 1, time.Now().Add(-time.Minute))
	denied("expired: the holder writes", b, stampB1, "LeaseExpired")

	// Released (ReleaseOnCancel): no holder.
	setLease(ctx, t, ns, lease, "", 1, time.Now())
	denied("released: the last holder writes", b, stampB1, "LeaseReleased")

	// Deleted.
	deleteLease(ctx, t, ns, lease)
	denied("deleted: the last holder writes", b, stampB1, "LeaseNotFound")

	// Re-created: a new uid, the count starts again at 0.
	l = setLease(ctx, t, ns, lease, holderA, 0, time.Now())
	if l.UID == uid1 {
		t.Fatal("the re-created Lease kept its uid")
	}
	denied("re-created: a stamp of the old Lease", b, stampB1, "LeaseRecreated")
	denied("re-created: the old Lease's term 0 stamp of the same holder", a, stampA0, "LeaseRecreated")
	admitted("re-created: the new holder writes", a, stampOf(t, l))

	if cached {
		t.Logf("cache lookups: %v", cacheLookups(ctx, t, wh))
	} else {
		// One quorum GET per decision (ok, or not_found once the Lease was
		// deleted), plus the readiness probe's.
		reads := counter(ctx, t, wh, "leasefence_lease_reads_total", nil)
		if reads < float64(step) {
			t.Errorf("strong source: %v Lease reads for %d decisions", reads, step)
		}
	}
}
