package fencing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"leasefence.io/e2e/harness"
)

// The electors' timing in the trials (flags of cmd/elector).
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	skewTolerance = 500 * time.Millisecond // webhookArgs
)

// TestRandomisedTrials runs LF_TRIALS (default 12) split-brain trials with
// random pause lengths (about a third shorter than RenewDeadline, so A stays
// leader; the rest longer than LeaseDuration, so B takes over) and random
// write intervals, and classifies every write the two electors sent:
//
//   - stale_admitted: admitted although its stamped term was older than the
//     Lease's term when it was sent. "When it was sent" is judged by the
//     Lease history as the test's watch observed it: a takeover observed
//     before the write was sent had certainly committed by then (the watch
//     delivers after the commit). Must be 0.
//   - current_denied: denied although, when it was sent, its stamp named the
//     Lease's holder and term and the Lease had not expired by the webhook's
//     rule. Must be 0 outside the window below.
//   - window: what the protocol documents as its honest limits, each printed
//     with its reason: a stale write sent before the takeover was observed
//     but committed after it (the Lease read is not atomic with the write;
//     found by comparing resourceVersions, see LeaseHistory.AtRV), and a
//     holder's write denied because its Lease had, by the webhook's rule
//     (renewTime + duration - tolerance), expired before it renewed, or
//     changed hands while the request was in flight.
//
// It prints one summary line: trials=N stale_admitted=X current_denied=Y window=Z.
func TestRandomisedTrials(t *testing.T) {
	n := 12
	if v := os.Getenv("LF_TRIALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("LF_TRIALS=%q: want a positive number", v)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LF_TRIALS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("LF_TRIALS=%d LF_TRIALS_SEED=%d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	var total tally
	for i := 0; i < n; i++ {
		var pause time.Duration
		if rng.IntN(3) == 0 {
			pause = time.Duration(300+rng.IntN(2400)) * time.Millisecond // < RenewDeadline
		} else {
			pause = leaseDuration + time.Duration(500+rng.IntN(3000))*time.Millisecond
		}
		p := trialParams{
			ns:        fmt.Sprintf("trial-%d", i),
			pause:     pause,
			intervalA: time.Duration(100+rng.IntN(300)) * time.Millisecond,
			intervalB: time.Duration(100+rng.IntN(300)) * time.Millisecond,
			leadFor:   time.Duration(rng.IntN(1000)) * time.Millisecond,
		}
		tl, err := trial(t, p)
		if err != nil {
			t.Fatalf("trial %d (%+v): %v", i, p, err)
		}
		t.Logf("trial %2d: pause %5.2fs, intervals %v/%v: %d writes, %d stale denied, takeover=%v, stale_admitted=%d current_denied=%d window=%d",
			i, pause.Seconds(), p.intervalA, p.intervalB, tl.writes, tl.staleDenied, tl.takeovers > 0,
			len(tl.staleAdmitted), len(tl.currentDenied), len(tl.window))
		total.add(tl)
	}
	for _, s := range total.window {
		t.Logf("window: %s", s)
	}
	for _, s := range total.staleAdmitted {
		t.Errorf("stale write admitted: %s", s)
	}
	for _, s := range total.currentDenied {
		t.Errorf("current leader's write denied: %s", s)
	}
	summary := fmt.Sprintf("trials=%d stale_admitted=%d current_denied=%d window=%d",
		n, len(total.staleAdmitted), len(total.currentDenied), len(total.window))
	t.Log(summary)
	fmt.Println(summary) // also without -v: the figure the README quotes
}

type trialParams struct {
	ns                   string
	pause                time.Duration
	intervalA, intervalB time.Duration
	leadFor              time.Duration // how long A leads before the pause
}

type tally struct {
	writes, staleDenied, takeovers int
	staleAdmitted                  []string
	currentDenied                  []string
	window                         []string
}

func (t *tally) add(o tally) {
	t.writes += o.writes
	t.staleDenied += o.staleDenied
	t.takeovers += o.takeovers
	t.staleAdmitted = append(t.staleAdmitted, o.staleAdmitted...)
	t.currentDenied = append(t.currentDenied, o.currentDenied...)
	t.window = append(t.window, o.window...)
}

func trial(t *testing.T, p trialParams) (tally, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := cp.CreateNamespace(ctx, p.ns, nil); err != nil {
		return tally{}, err
	}
	hist, err := harness.WatchLease(ctx, cp.Client, p.ns, "ctrl")
	if err != nil {
		return tally{}, err
	}
	defer hist.Stop()
	start := func(pod string, interval time.Duration) (*harness.Elector, error) {
		return harness.StartElector(ctx, harness.ElectorOptions{
			Bin: electorBin, Cluster: cp, Dir: filepath.Join(workDir, p.ns), Namespace: p.ns, Pod: pod,
			Args: []string{"--interval", interval.String(),
				"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(),
				"--retry-period", "500ms"},
		})
	}
	a, err := start("ctrl-a", p.intervalA)
	if err != nil {
		return tally{}, err
	}
	defer a.Kill()
	if _, err := a.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool { return l.Event == "started_leading" }); err != nil {
		return tally{}, err
	}
	b, err := start("ctrl-b", p.intervalB)
	if err != nil {
		return tally{}, err
	}
	defer b.Kill()
	if _, err := b.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool {
		return l.Event == "new_leader" && l.Leader == a.Identity
	}); err != nil {
		return tally{}, err
	}
	// A leads for a random while; this sleep is the random write timing under
	// test, not a wait for a condition.
	time.Sleep(p.leadFor)
	if err := a.Pause(); err != nil {
		return tally{}, err
	}
	time.Sleep(p.pause) // the pause under test
	resumed := time.Now()
	if err := a.Resume(); err != nil {
		return tally{}, err
	}
	// Done when A has given up, or, if it still leads, once it wrote twice
	// more on its ticker after the burst.
	if _, err := a.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool {
		return l.Time.After(resumed) && (l.Event == "stopped_leading" || l.Event == "write" && l.Trigger == "tick" && l.Seq >= 2 &&
			a.CountLines(func(m harness.ElectorLine) bool {
				return m.Event == "write" && m.Trigger == "tick" && m.Time.After(resumed)
			}) >= 2)
	}); err != nil {
		return tally{}, err
	}
	a.Kill()
	b.Kill()
	return classify(hist, append(a.Writes(""), b.Writes("")...)), nil
}

// classify judges each write against the Lease history (see
// TestRandomisedTrials).
func classify(hist *harness.LeaseHistory, writes []harness.ElectorLine) tally {
	var tl tally
	recs := hist.Records()
	for i := 1; i < len(recs); i++ {
		if recs[i].Term != recs[i-1].Term {
			tl.takeovers++
		}
	}
	for _, w := range writes {
		if w.Term == nil {
			continue
		}
		tl.writes++
		atSend, ok := hist.AtTime(w.Time)
		if !ok {
			continue // sent before the Lease existed for the watch: cannot happen for a stamped write
		}
		desc := fmt.Sprintf("%s (Lease at send: %s term %d, renewed %s before)", w, harness.ShortIdentity(atSend.Holder), atSend.Term,
			w.Time.Sub(atSend.RenewTime).Round(time.Millisecond))
		staleAtSend := *w.Term < atSend.Term
		switch w.Result {
		case "admitted":
			if staleAtSend {
				tl.staleAdmitted = append(tl.staleAdmitted, desc)
				continue
			}
			rv, _ := strconv.ParseInt(w.RV, 10, 64)
			if atCommit, ok := hist.AtRV(rv); ok && atCommit.Term > *w.Term {
				tl.window = append(tl.window, "stale write sent before the takeover was observed, committed after it (Lease read not atomic with the write): "+desc)
			}
		case "denied":
			current := atSend.Holder == w.Identity && *w.Term == atSend.Term
			if !current {
				tl.staleDenied++
				continue
			}
			expiresAt := atSend.RenewTime.Add(atSend.Duration - skewTolerance)
			next, changed := harness.NextChange(recs, atSend)
			switch {
			case strings.Contains(w.Message, "(LeaseExpired)") && !w.Done.Before(expiresAt):
				tl.window = append(tl.window, fmt.Sprintf("holder's write denied: by the webhook's rule its Lease expired at renewTime+%v-%v, before it renewed: %s",
					atSend.Duration, skewTolerance, desc))
			case changed && !next.Observed.After(w.Done.Add(time.Second)):
				tl.window = append(tl.window, "holder's write denied: the Lease changed hands while the request was in flight: "+desc)
			default:
				tl.currentDenied = append(tl.currentDenied, desc)
			}
		}
	}
	return tl
}
