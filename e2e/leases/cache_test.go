package leases

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// The cache's promise (--cache-max-staleness, default 3 s): a Lease is
// answered from the cache only if that copy arrived within the bound, its
// renewTime is within the bound of now, and the watch proved itself alive
// within 7 s.
const maxStaleness = 3 * time.Second

// eventuallyDenied polls write(dryRun=true) until leasefence denies it for
// reason, within bound, then checks that the real write is denied too. It
// returns how long the dry runs took to be denied.
func eventuallyDenied(ctx context.Context, t *testing.T, what string, bound time.Duration, write func(dryRun bool) error, reason string) time.Duration {
	t.Helper()
	start := time.Now()
	err := cluster.Poll(ctx, bound, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		err := write(true)
		return isDenial(err, reason), fmt.Sprintf("dry run: %v", err), nil
	})
	if err != nil {
		t.Fatalf("%s: not denied (%s) within %v: %v", what, reason, bound, err)
	}
	took := time.Since(start)
	wantDenied(t, what, write(false), reason)
	return took
}

// waitCacheServes waits until a dry-run write with stamp is admitted from
// the cache (a hit), so the webhook's cache holds the Lease.
func waitCacheServes(ctx context.Context, t *testing.T, wh *harness.Webhook, write func(dryRun bool) error) {
	t.Helper()
	err := cluster.Poll(ctx, 20*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		before := cacheLookups(ctx, t, wh)
		err := write(true)
		after := cacheLookups(ctx, t, wh)
		return err == nil && after["hit"] > before["hit"], fmt.Sprintf("write %v, lookups %v", err, delta(after, before)), nil
	})
	if err != nil {
		t.Fatalf("the cache never served the Lease: %v", err)
	}
}

// TestCacheStaleCopyGoesLive: a Lease nobody renews stays in the cache, but
// once its copy is older than --cache-max-staleness the webhook no longer
// decides on it: the lookup is a miss_stale and the decision reads live. The
// first such miss comes no earlier than the bound after the last change.
func TestCacheStaleCopyGoesLive(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	const ns = "stale"
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, "kube-cached")
	register(ctx, t, wh)
	a := newWriter(ctx, t, ns, "pod-a")
	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	stamp := stampOf(t, l)
	write := func(dryRun bool) error { return writeCM(ctx, a.Client, ns, "cm", "ctrl", stamp, "x", dryRun) }
	waitCacheServes(ctx, t, wh, write)

	// Renew; from the moment the renewal is written, its copy can be at most
	// as old as the time since then.
	renewed := time.Now()
	setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, renewed)
	var hits, firstStale time.Duration
	polls := 0
	err := cluster.Poll(ctx, maxStaleness+5*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		polls++
		before := cacheLookups(ctx, t, wh)
		sent := time.Since(renewed)
		if err := write(true); err != nil {
			return false, "", fmt.Errorf("a current write was denied at %v: %v", sent, err)
		}
		d := delta(cacheLookups(ctx, t, wh), before)
		switch {
		case d["miss_stale"] >= 1:
			if d["reads_ok"] < 1 {
				return false, "", fmt.Errorf("miss_stale without a live read: %v", d)
			}
			firstStale = sent
			return true, "", nil
		case d["hit"] >= 1:
			hits = time.Since(renewed)
		}
		return false, fmt.Sprintf("lookups %v at %v", d, sent), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copy served from the cache until %v after the renewal; first miss_stale (live read) at %v (%d polls)", hits.Round(time.Millisecond), firstStale.Round(time.Millisecond), polls)
	if hits > maxStaleness+500*time.Millisecond {
		t.Errorf("a copy was served %v after the renewal, beyond the %v promised", hits, maxStaleness)
	}
	if firstStale < maxStaleness-200*time.Millisecond {
		t.Errorf("miss_stale at %v, before the copy could be %v old", firstStale, maxStaleness)
	}
	// Still stale and unrenewed: the real write is decided live and admitted.
	wantAdmitted(t, "a current write on a stale copy", write(false))
}

// TestCacheWedgedWatchAndCut puts a proxy between the cached webhook and the
// API server.
//
// Wedged: the proxy freezes the open watch (no more bytes reach the
// webhook), and the Lease is taken over. The new holder's first write must
// be admitted at once, necessarily without the cache, whose copy is the
// old term (TermAhead, then a live read; or a miss). The old holder's stamp
// may be admitted from the cached copy only while that copy is within the
// promised 3 s; afterwards the decision goes live and denies it. The wedged
// stream then times out, the watch restarts, and the cache catches up.
//
// Cut: the proxy closes every connection; the watch fails, the webhook
// re-lists, and decisions from the cache are right again.
func TestCacheWedgedWatchAndCut(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns = "wedge"
	newNamespace(ctx, t, ns)
	p, wh := cachedBehindProxy(ctx, t, "reader-wedge")
	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")

	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	stampA := stampOf(t, l)
	oldA := func(dryRun bool) error { return writeCM(ctx, a.Client, ns, "old", "ctrl", stampA, "a", dryRun) }
	waitCacheServes(ctx, t, wh, oldA)
	wantAdmitted(t, "the holder writes", oldA(false))

	// Wedge the watch, then take the Lease over.
	frozenAt := time.Now()
	if n := p.Freeze(); n < 1 {
		t.Fatalf("the proxy had no connection to freeze")
	}
	base := cacheLookups(ctx, t, wh)
	l = setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	stampB := stampOf(t, l)
	wantAdmitted(t, "the new holder's first write, watch wedged", writeCM(ctx, b.Client, ns, "new", "ctrl", stampB, "b", false))
	d := delta(cacheLookups(ctx, t, wh), base)
	t.Logf("new holder's write with the watch wedged: lookups %v", d)
	if d["live_requested"]+d["miss_stale"]+d["miss_watch_down"]+d["miss_absent"] < 1 || d["reads_ok"] < 1 {
		t.Fatalf("the new term was admitted without a live read: %v", d)
	}

	// The old holder, against the copy the cache still holds.
	var admitted int
	var lastAdmitted time.Duration
	err := cluster.Poll(ctx, maxStaleness+10*time.Second, 100*time.Millisecond, func(context.Context) (bool, string, error) {
		sent := time.Since(frozenAt)
		err := oldA(true)
		switch {
		case err == nil:
			admitted++
			lastAdmitted = sent
			return false, "still admitted", nil
		case isDenial(err, "StaleTerm"):
			return true, "", nil
		}
		return false, "", fmt.Errorf("unexpected answer: %v", err)
	})
	if err != nil {
		t.Fatal(err)
	}
	d = delta(cacheLookups(ctx, t, wh), base)
	t.Logf("old holder's stamp: admitted %d times from the cached copy, the last sent %v after the freeze; then denied live; lookups %v",
		admitted, lastAdmitted.Round(time.Millisecond), d)
	if admitted > 0 && lastAdmitted >= maxStaleness {
		t.Errorf("the cache decided on a copy older than %v: admitted a stale stamp %v after the watch was wedged", maxStaleness, lastAdmitted)
	}
	if d["miss_stale"]+d["miss_watch_down"] < 1 {
		t.Errorf("the denial did not come from a live read after a stale or watch-down miss: %v", d)
	}
	wantDenied(t, "the old holder writes, watch wedged", oldA(false), "StaleTerm")

	// The wedged stream times out (8 s after it began) and the watch resumes
	// on a new connection; the cache then has term 1 and denies from a hit.
	err = cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		now := cacheLookups(ctx, t, wh)
		return now["watch_restarts_total"] > base["watch_restarts_total"], fmt.Sprintf("lookups %v", delta(now, base)), nil
	})
	if err != nil {
		t.Fatalf("the wedged watch was never restarted: %v", err)
	}
	// The cache decides only on a recently renewed copy; pod-b renews.
	stopRenew := keepRenewing(ctx, t, ns, "ctrl", 500*time.Millisecond)
	waitHitDenies(ctx, t, wh, oldA, "StaleTerm")
	stopRenew()
	t.Logf("wedged watch restarted after %v", time.Since(frozenAt).Round(time.Millisecond))

	// Cut every connection.
	base = cacheLookups(ctx, t, wh)
	if n := p.Cut(); n < 1 {
		t.Fatalf("the proxy had no connection to cut")
	}
	err = cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		now := cacheLookups(ctx, t, wh)
		return now["relists_total"] > base["relists_total"] && now["watch_restarts_total"] > base["watch_restarts_total"],
			fmt.Sprintf("lookups %v", delta(now, base)), nil
	})
	if err != nil {
		t.Fatalf("no watch restart and re-list after the cut: %v", err)
	}
	l = setLease(ctx, t, ns, "ctrl", "pod-a_3", 2, time.Now())
	stampA2 := stampOf(t, l)
	wantAdmitted(t, "after the cut: the new holder writes", writeCM(ctx, a.Client, ns, "new", "ctrl", stampA2, "a2", false))
	eventuallyDenied(ctx, t, "after the cut: the old holder writes", maxStaleness+2*time.Second,
		func(dryRun bool) error { return writeCM(ctx, b.Client, ns, "new", "ctrl", stampB, "b2", dryRun) }, "StaleTerm")
	t.Logf("after the cut: lookups %v", delta(cacheLookups(ctx, t, wh), base))
}

// cachedBehindProxy starts and registers a cached webhook whose reads go
// through a TCP proxy to the API server, as the Lease reader reader, with
// the extra flags args.
func cachedBehindProxy(ctx context.Context, t *testing.T, reader string, args ...string) (*proxy, *harness.Webhook) {
	t.Helper()
	p, err := newProxy(fmt.Sprintf("127.0.0.1:%d", c.APIServerPort()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	_, token := leaseReader(ctx, t, "lf-readers", reader)
	kc := kubeconfigFor(t, filepath.Join(t.TempDir(), "kubeconfig"), p.URL(), "", &clientcmdapi.AuthInfo{Token: token})
	wh := startWebhook(ctx, t, "kube-cached", append([]string{"--kubeconfig", kc}, args...)...)
	register(ctx, t, wh)
	return p, wh
}

// waitHitDenies waits until write (a dry run) is denied for reason by a
// decision answered from the cache.
func waitHitDenies(ctx context.Context, t *testing.T, wh *harness.Webhook, write func(bool) error, reason string) {
	t.Helper()
	err := cluster.Poll(ctx, 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		before := cacheLookups(ctx, t, wh)
		err := write(true)
		d := delta(cacheLookups(ctx, t, wh), before)
		return isDenial(err, reason) && d["hit"] >= 1 && d["live_requested"] == 0,
			fmt.Sprintf("write %v, lookups %v", err, d), nil
	})
	if err != nil {
		t.Fatalf("the cache never caught up: %v", err)
	}
}

// TestAPIServerRestart stops kube-apiserver under a cached webhook and
// starts it again (same flags, ports, certificates and etcd). While it is
// down, both sources fail closed (LeaseUnavailable; the cached one once its
// copy is past the staleness bound). The watch breaks, the webhook re-lists
// once the server is back, and decisions are right afterwards, from the
// cache as well as live.
func TestAPIServerRestart(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns = "restart"
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, "kube-cached")
	register(ctx, t, wh)
	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")
	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	stampA := stampOf(t, l)
	writeA := func(dryRun bool) error { return writeCM(ctx, a.Client, ns, "cm", "ctrl", stampA, "a", dryRun) }
	waitCacheServes(ctx, t, wh, writeA)
	wantAdmitted(t, "before the restart: the holder writes", writeA(false))

	// A strong webhook next to it, asked directly (no registration).
	strong := startWebhook(ctx, t, "kube")
	hc := reviewClient(wh, 1)
	defer hc.CloseIdleConnections()
	hcStrong := reviewClient(strong, 1)
	defer hcStrong.CloseIdleConnections()
	review := func(n int) *admissionv1.AdmissionReview {
		return configMapUpdate(fmt.Sprintf("down-%d", n), ns, "cm", "ctrl", stampA, "pod-a")
	}

	base := cacheLookups(ctx, t, wh)
	var downRestarts float64
	start := time.Now()
	if err := restartAPIServer(ctx, func() {
		// While the server is down, the watch has failed.
		cluster.Poll(ctx, 10*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			downRestarts = cacheLookups(ctx, t, wh)["watch_restarts_total"]
			return downRestarts > base["watch_restarts_total"], "", nil
		})
		// G7, fail closed: the strong source cannot read the Lease and
		// denies at once; the cached one may answer from its copy only
		// within the staleness bound, then denies too.
		resp, err := postReview(ctx, hcStrong, strong, review(0))
		if err != nil || resp.Allowed || reason(resp) != "LeaseUnavailable" {
			t.Errorf("strong source, API server down: %+v %v", resp, err)
		} else {
			t.Logf("strong source, API server down: %s", message(resp))
		}
		n := 0
		if err := cluster.Poll(ctx, maxStaleness+3*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			n++
			resp, err := postReview(ctx, hc, wh, review(n))
			if err != nil {
				return false, "", err
			}
			return !resp.Allowed && reason(resp) == "LeaseUnavailable", reason(resp) + ": " + message(resp), nil
		}); err != nil {
			t.Errorf("cached source, API server down: not denied within the staleness bound: %v", err)
		}
	}); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	t.Logf("kube-apiserver restarted in %v", time.Since(start).Round(time.Millisecond))
	if downRestarts <= base["watch_restarts_total"] {
		t.Errorf("no watch restart counted while the API server was down")
	}
	err := cluster.Poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		now := cacheLookups(ctx, t, wh)
		return now["relists_total"] > base["relists_total"], fmt.Sprintf("lookups %v", delta(now, base)), nil
	})
	if err != nil {
		t.Fatalf("the webhook did not re-list after the restart: %v", err)
	}
	t.Logf("re-listed %v after the restart began; lookups %v", time.Since(start).Round(time.Millisecond), delta(cacheLookups(ctx, t, wh), base))

	// The webhook configuration is read again by the new server; a write
	// must reach the webhook before we judge decisions (a stamp of no Lease:
	// OtherLease).
	if err := cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		err := writeCM(ctx, a.Client, ns, "cm", "ctrl", "lf1:0:x:y", "probe", true)
		return isDenial(err, "OtherLease"), fmt.Sprint(err), nil
	}); err != nil {
		t.Fatalf("the restarted API server does not call the webhook: %v", err)
	}
	l = setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	stampB := stampOf(t, l)
	wantAdmitted(t, "after the restart: the new holder writes", writeCM(ctx, b.Client, ns, "cm", "ctrl", stampB, "b", false))
	eventuallyDenied(ctx, t, "after the restart: the old holder writes", maxStaleness+2*time.Second, writeA, "StaleTerm")
	// The cache decides only on a recently renewed copy; pod-b renews.
	keepRenewing(ctx, t, ns, "ctrl", 500*time.Millisecond)
	waitHitDenies(ctx, t, wh, writeA, "StaleTerm")
}
