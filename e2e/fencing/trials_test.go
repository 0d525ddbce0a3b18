package fencing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// defaultTrialsParallel is LF_TRIALS_PARALLEL's default: how many trials
// run at once. Measured on a 2-CPU machine (docs/benchmarks.md): beyond it
// the machine saturates, and the electors' renewals and the test's own
// watch fall seconds behind.
const defaultTrialsParallel = 8

// TestRandomisedTrials runs LF_TRIALS (default 12) split-brain trials,
// LF_TRIALS_PARALLEL (default defaultTrialsParallel) at once on the one
// control plane, each in a namespace of its own with its own Lease,
// ConfigMap and electors: a pair, or (one trial in three) a trio. The first
// elector leads for a random while and is paused (SIGSTOP) for a random
// time: about a third of the pauses are shorter than RenewDeadline, so it
// stays leader; the rest longer than LeaseDuration, so another takes over.
// Write intervals are random. LF_TRIALS_SEED replays the same trials (each
// trial's parameters are drawn up front, whatever the order they run in).
//
// Every write the electors sent is classified:
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
// It prints one summary line (see trialTotals.summary).
func TestRandomisedTrials(t *testing.T) {
	n := envPositive(t, "LF_TRIALS", 12)
	parallel := envPositive(t, "LF_TRIALS_PARALLEL", defaultTrialsParallel)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LF_TRIALS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("LF_TRIALS_SEED=%q: want a number", v)
		}
	}
	t.Logf("LF_TRIALS=%d LF_TRIALS_PARALLEL=%d LF_TRIALS_SEED=%d", n, parallel, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	params := make([]trialParams, n)
	for i := range params {
		params[i] = drawTrial(rng, i)
	}

	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		total  tally
		failed []string
	)
	jobs := make(chan trialParams)
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				tl, err := trial(ctx, p)
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("trial %d (%s): %v", p.i, p, err))
					cancel() // no new trials; those running end with ctx
				} else {
					t.Logf("trial %3d: %s: %d writes, %d stale denied, takeovers=%d, stale_admitted=%d current_denied=%d window=%d",
						p.i, p, tl.writes, tl.staleDenied, tl.takeovers, len(tl.staleAdmitted), len(tl.currentDenied), len(tl.window))
					total.add(tl)
					total.trials++
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, p := range params {
		select {
		case jobs <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()

	for _, s := range failed {
		t.Error(s)
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
	summary := total.summary(time.Since(began))
	t.Log(summary)
	fmt.Println(summary) // also without -v: the figures the README quotes
}

func envPositive(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// trialParams are one trial's random choices.
type trialParams struct {
	i         int
	ns        string
	pause     time.Duration   // of the first leader
	intervals []time.Duration // write interval per elector; two or three electors
	leadFor   time.Duration   // how long the first leader leads before the pause
}

func drawTrial(rng *rand.Rand, i int) trialParams {
	p := trialParams{i: i, ns: fmt.Sprintf("trial-%d", i)}
	if rng.IntN(3) == 0 {
		p.pause = time.Duration(300+rng.IntN(2400)) * time.Millisecond // < RenewDeadline
	} else {
		p.pause = leaseDuration + time.Duration(500+rng.IntN(3000))*time.Millisecond
	}
	electors := 2
	if rng.IntN(3) == 0 {
		electors = 3
	}
	for e := 0; e < electors; e++ {
		p.intervals = append(p.intervals, time.Duration(100+rng.IntN(300))*time.Millisecond)
	}
	p.leadFor = time.Duration(rng.IntN(1000)) * time.Millisecond
	return p
}

func (p trialParams) String() string {
	return fmt.Sprintf("%d electors, lead %v, pause %.2fs, intervals %v", len(p.intervals), p.leadFor, p.pause.Seconds(), p.intervals)
}

type tally struct {
	trials                 int
	writes, staleAttempts  int
	staleDenied, takeovers int
	staleAdmitted          []string
	currentDenied          []string
	window                 []string
}

func (t *tally) add(o tally) {
	t.writes += o.writes
	t.staleAttempts += o.staleAttempts
	t.staleDenied += o.staleDenied
	t.takeovers += o.takeovers
	t.staleAdmitted = append(t.staleAdmitted, o.staleAdmitted...)
	t.currentDenied = append(t.currentDenied, o.currentDenied...)
	t.window = append(t.window, o.window...)
}

// summary is the line the README and docs/benchmarks.md quote.
func (t *tally) summary(wall time.Duration) string {
	return fmt.Sprintf("trials=%d takeovers=%d writes=%d stale_attempts=%d stale_denied=%d stale_admitted=%d current_denied=%d window=%d wall=%v",
		t.trials, t.takeovers, t.writes, t.staleAttempts, t.staleDenied, len(t.staleAdmitted), len(t.currentDenied), len(t.window),
		wall.Round(time.Second))
}

var electorNames = []string{"ctrl-a", "ctrl-b", "ctrl-c"}

func trial(ctx context.Context, p trialParams) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, err := cp.CreateNamespace(ctx, p.ns, nil); err != nil {
		return tally{}, err
	}
	hist, err := harness.WatchLease(ctx, cp.Client, p.ns, "ctrl")
	if err != nil {
		return tally{}, err
	}
	defer hist.Stop()
	var electors []*harness.Elector
	defer func() {
		for _, e := range electors {
			e.Kill()
		}
	}()
	start := func(i int) (*harness.Elector, error) {
		e, err := harness.StartElector(ctx, harness.ElectorOptions{
			Bin: electorBin, Cluster: cp, Dir: filepath.Join(workDir, p.ns), Namespace: p.ns, Pod: electorNames[i],
			Args: []string{"--interval", p.intervals[i].String(),
				"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(),
				"--retry-period", "500ms"},
		})
		if err == nil {
			electors = append(electors, e)
		}
		return e, err
	}
	a, err := start(0)
	if err != nil {
		return tally{}, err
	}
	if _, err := a.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool { return l.Event == "started_leading" }); err != nil {
		return tally{}, err
	}
	for i := 1; i < len(p.intervals); i++ {
		e, err := start(i)
		if err != nil {
			return tally{}, err
		}
		if _, err := e.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool {
			return l.Event == "new_leader" && l.Leader == a.Identity
		}); err != nil {
			return tally{}, err
		}
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
	var writes []harness.ElectorLine
	for _, e := range electors {
		e.Kill()
		writes = append(writes, e.Writes("")...)
	}
	return classify(hist, writes), nil
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
		if staleAtSend {
			tl.staleAttempts++
		}
		switch w.Result {
		case "admitted":
			if staleAtSend {
				tl.staleAdmitted = append(tl.staleAdmitted, desc)
				continue
			}
			rv, _ := strconv.ParseInt(w.RV, 10, 64)
			if atCommit, ok := hist.AtRV(rv); ok && atCommit.Term > *w.Term {
				tl.staleAttempts++
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
