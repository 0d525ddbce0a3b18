package leases

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCoalescing fires 200 AdmissionReviews at once for one Lease at the
// strong source (half from the current holder, half from the previous one)
// and checks that every decision is right while the webhook made far fewer
// than 200 quorum GETs: concurrent decisions share a read that started
// after they arrived.
func TestCoalescing(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	const ns, n = "coalesce", 200
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, "kube")
	setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	l := setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	current := stampOf(t, l)
	stale := stampText(0, l.UID, "pod-a_1")
	hc := reviewClient(wh, n)

	round := func(name string, maxReads float64) {
		t.Helper()
		before := cacheLookups(ctx, t, wh)
		beforeCoalesced := counter(ctx, t, wh, "leasefence_lease_reads_coalesced_total", nil)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wrong []string
		startGun := make(chan struct{})
		began := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				stamp, pod, want := current, "pod-b", "Current"
				if i%2 == 1 {
					stamp, pod, want = stale, "pod-a", "StaleTerm"
				}
				review := configMapUpdate(fmt.Sprintf("%s-%d", name, i), ns, fmt.Sprintf("cm-%d", i), "ctrl", stamp, pod)
				<-startGun
				resp, err := postReview(ctx, hc, wh, review)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					wrong = append(wrong, fmt.Sprintf("%d: %v", i, err))
				case reason(resp) != want || resp.Allowed != (want == "Current"):
					wrong = append(wrong, fmt.Sprintf("%d: allowed=%v reason=%s, want %s: %s", i, resp.Allowed, reason(resp), want, message(resp)))
				}
			}(i)
		}
		close(startGun)
		wg.Wait()
		took := time.Since(began)
		reads := cacheLookups(ctx, t, wh)["reads_ok"] - before["reads_ok"]
		coalesced := counter(ctx, t, wh, "leasefence_lease_reads_coalesced_total", nil) - beforeCoalesced
		for _, w := range wrong {
			t.Error(w)
		}
		t.Logf("%s: %d concurrent decisions on one Lease in %v: %v quorum GETs (leasefence_lease_reads_total{result=\"ok\"}), %v decisions answered by another's read (leasefence_lease_reads_coalesced_total)",
			name, n, took.Round(time.Millisecond), reads, coalesced)
		if reads < 1 || reads > maxReads {
			t.Errorf("%s: %v Lease reads for %d concurrent decisions; want between 1 and %v", name, reads, n, maxReads)
		}
		// Every decision either made a read or used one another decision
		// made: the two counters account for all of them.
		if coalesced != float64(n)-reads {
			t.Errorf("%s: %v decisions counted as coalesced, yet %v reads served %d", name, coalesced, reads, n)
		}
	}
	// The first round also opens the 200 connections: the TLS handshakes
	// spread the arrivals over a few hundred milliseconds, so more reads
	// start (13 to 51 in our runs). The second runs on kept-alive
	// connections, as from the API server, and is held to a quarter.
	round("cold", n/2)
	round("warm", n/4)
}
