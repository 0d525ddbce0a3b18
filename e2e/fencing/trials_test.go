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
// run at once. Measured on the 2-CPU machine (docs/benchmarks.md, section
// 6): 200 trials 16 at once put 2 of 4 076 writes in the window, 24 at once
// 14 of 3 840 (a holder's renewal or the test's watch late on a saturated
// machine); 12 keeps clear of that and runs 1 000 trials in 12 minutes.
const defaultTrialsParallel = 12

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
// Faults fall while the trials run (trials_faults_test.go): every
// LF_TRIALS_FAULT_PERIOD (default 4 s, or 40 ms per trial if longer) the
// next of a webhook replica killed and replaced, the cached replica's Lease
// watch cut, and kube-apiserver restarted; and one trial in four runs an
// elector whose clock is off by up to 400 ms. LF_TRIALS_FAULTS=0 leaves the
// faults out (the clock offsets stay).
//
// Every write the electors sent is classified:
//
//   - stale_admitted: admitted although its stamped term was older than the
//     Lease's term when it was sent. "When it was sent" is judged by the
//     Lease history as the test's watch observed it: a takeover observed
//     before the write was sent had certainly committed by then (the watch
//     delivers after the commit). Must be 0.
//   - current_denied: refused although, when it was sent, its stamp named
//     the Lease's holder and term and the Lease had not expired by the
//     webhook's rule. Must be 0 outside the window and the faults below.
//   - window: what the protocol documents as its honest limits, each printed
//     with its reason: a stale write sent before the takeover was observed
//     but committed after it (the Lease read is not atomic with the write;
//     found by comparing resourceVersions, see LeaseHistory.AtRV), and a
//     holder's write denied because its Lease had, by the webhook's rule
//     (renewTime + duration - tolerance), expired before it renewed, or
//     changed hands while the request was in flight.
//   - fail_closed (per fault kind): a holder's write refused while a fault
//     kept the webhook from its decision (the API server could not call it,
//     or it could not read the Lease: LeaseUnavailable), its request in
//     flight between the fault's start and the moment every replica it
//     concerns decided by a Lease read again. G7: fenced writes fail
//     closed. The same refusal outside a fault is current_denied.
//
// It prints one summary line (see tally.summary).
func TestRandomisedTrials(t *testing.T) {
	n := envPositive(t, "LF_TRIALS", 12)
	parallel := envPositive(t, "LF_TRIALS_PARALLEL", defaultTrialsParallel)
	period := max(4*time.Second, time.Duration(n)*40*time.Millisecond)
	if v := os.Getenv("LF_TRIALS_FAULT_PERIOD"); v != "" {
		var err error
		if period, err = time.ParseDuration(v); err != nil || period <= 0 {
			t.Fatalf("LF_TRIALS_FAULT_PERIOD=%q: want a positive duration", v)
		}
	}
	faults := registered && os.Getenv("LF_TRIALS_FAULTS") != "0"
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LF_TRIALS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("LF_TRIALS_SEED=%q: want a number", v)
		}
	}
	// LF_TRIALS_FENCING=identity: the electors write without stamps on a
	// ConfigMap fenced by identity (docs/protocol.md, section 7a); each
	// write is judged as ever, by the term its elector believed it held.
	fencingMode := os.Getenv("LF_TRIALS_FENCING")
	switch fencingMode {
	case "", "stamp":
		fencingMode, trialElectorArgs = "stamp", nil
	case "identity":
		trialElectorArgs = []string{"--no-stamp", "--fencing=identity"}
	default:
		t.Fatalf("LF_TRIALS_FENCING=%q: want stamp or identity", fencingMode)
	}
	t.Logf("LF_TRIALS=%d LF_TRIALS_PARALLEL=%d LF_TRIALS_SEED=%d LF_TRIALS_FENCING=%s faults=%v every %v", n, parallel, seed, fencingMode, faults, period)
	rng := rand.New(rand.NewPCG(seed, 0))
	params := make([]trialParams, n)
	for i := range params {
		params[i] = drawTrial(rng, i)
	}

	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tw *trialWebhook
	var (
		mu      sync.Mutex
		results []trialResult
		failed  []string
	)
	fail := func(s string) {
		mu.Lock()
		failed = append(failed, s)
		mu.Unlock()
		cancel() // no new trials; those running end with ctx
	}
	var faultsDone chan struct{}
	if faults {
		tw = startTrialWebhook(ctx, t)
		faultsDone = make(chan struct{})
		go func() {
			defer close(faultsDone)
			if err := tw.runFaults(ctx, period); err != nil {
				fail(err.Error())
			}
		}()
	}
	jobs := make(chan trialParams)
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				r, err := trial(ctx, p, tw)
				if err != nil {
					fail(fmt.Sprintf("trial %d (%s): %v", p.i, p, err))
					continue
				}
				mu.Lock()
				results = append(results, r)
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
	cancel()
	if faultsDone != nil {
		<-faultsDone // every fault span is closed before the writes are judged
	}

	var total tally
	for _, r := range results {
		tl := classify(r, tw)
		t.Logf("trial %3d: %s: %d writes, %d stale denied, takeovers=%d, stale_admitted=%d current_denied=%d window=%d fail_closed=%d",
			r.p.i, r.p, tl.writes, tl.staleDenied, tl.takeovers, len(tl.staleAdmitted), len(tl.currentDenied), len(tl.window), tl.failClosedTotal())
		total.add(tl)
	}
	for _, s := range failed {
		t.Error(s)
	}
	for _, s := range total.window {
		t.Logf("window: %s", s)
	}
	for _, s := range total.failClosedWrites {
		t.Logf("fail_closed: %s", s)
	}
	for _, s := range total.staleAdmitted {
		t.Errorf("stale write admitted: %s", s)
	}
	for _, s := range total.currentDenied {
		t.Errorf("current leader's write refused: %s", s)
	}
	summary := total.summary(tw, time.Since(began))
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
	i             int
	ns            string
	pause         time.Duration   // of the first leader
	intervals     []time.Duration // write interval per elector; two or three electors
	leadFor       time.Duration   // how long the first leader leads before the pause
	offsetElector int             // the elector whose clock is off, or -1
	offset        time.Duration
}

func drawTrial(rng *rand.Rand, i int) trialParams {
	p := trialParams{i: i, ns: fmt.Sprintf("trial-%d", i), offsetElector: -1}
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
	ms := int(maxClockOffset / time.Millisecond)
	offset := time.Duration(rng.IntN(2*ms+1)-ms) * time.Millisecond
	if i%4 == 1 {
		p.offsetElector, p.offset = rng.IntN(electors), offset
	}
	return p
}

func (p trialParams) String() string {
	s := fmt.Sprintf("%d electors, lead %v, pause %.2fs, intervals %v", len(p.intervals), p.leadFor, p.pause.Seconds(), p.intervals)
	if p.offsetElector >= 0 {
		s += fmt.Sprintf(", %s's clock %+v", electorNames[p.offsetElector], p.offset)
	}
	return s
}

type tally struct {
	trials                 int
	writes, staleAttempts  int
	staleDenied, takeovers int
	staleAdmitted          []string
	currentDenied          []string
	window                 []string
	failClosed             map[string]int // by fault kind
	failClosedWrites       []string
	clockOffsets           int // trials with an elector's clock off
}

func (t *tally) add(o tally) {
	t.trials++
	t.writes += o.writes
	t.staleAttempts += o.staleAttempts
	t.staleDenied += o.staleDenied
	t.takeovers += o.takeovers
	t.clockOffsets += o.clockOffsets
	t.staleAdmitted = append(t.staleAdmitted, o.staleAdmitted...)
	t.currentDenied = append(t.currentDenied, o.currentDenied...)
	t.window = append(t.window, o.window...)
	t.failClosedWrites = append(t.failClosedWrites, o.failClosedWrites...)
	for k, v := range o.failClosed {
		if t.failClosed == nil {
			t.failClosed = map[string]int{}
		}
		t.failClosed[k] += v
	}
}

func (t *tally) failClosedTotal() int {
	n := 0
	for _, v := range t.failClosed {
		n += v
	}
	return n
}

// summary is the line the README and docs/benchmarks.md quote.
func (t *tally) summary(tw *trialWebhook, wall time.Duration) string {
	var fc []string
	for _, k := range []string{faultAPIServer, faultWebhook, faultWatchCut} {
		if t.failClosed[k] > 0 {
			fc = append(fc, fmt.Sprintf("%s=%d", k, t.failClosed[k]))
		}
	}
	if len(fc) == 0 {
		fc = []string{"0"}
	}
	return fmt.Sprintf("trials=%d takeovers=%d writes=%d stale_attempts=%d stale_denied=%d stale_admitted=%d current_denied=%d window=%d fail_closed=%s faults=%s,%s=%d wall=%v",
		t.trials, t.takeovers, t.writes, t.staleAttempts, t.staleDenied, len(t.staleAdmitted), len(t.currentDenied), len(t.window),
		strings.Join(fc, ","), tw.injected(), faultClock, t.clockOffsets, wall.Round(time.Second))
}

// trialResult is what a trial leaves to be judged once every fault span is
// known.
type trialResult struct {
	p      trialParams
	hist   *harness.LeaseHistory
	writes []harness.ElectorLine
}

var electorNames = []string{"ctrl-a", "ctrl-b", "ctrl-c"}

// trialElectorArgs are added to every elector's flags (LF_TRIALS_FENCING).
var trialElectorArgs []string

// trial runs one trial. tw, when not nil, holds API server restarts off
// its setup.
func trial(ctx context.Context, p trialParams, tw *trialWebhook) (trialResult, error) {
	r := trialResult{p: p}
	var electors []*harness.Elector
	defer func() {
		for _, e := range electors {
			e.Kill()
		}
		if r.hist != nil {
			r.hist.Stop() // idempotent; Records stay readable
		}
	}()
	if tw != nil {
		tw.setup.RLock()
	}
	a, err := setUpTrial(ctx, p, &r, &electors)
	if tw != nil {
		tw.setup.RUnlock()
	}
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// A leads for a random while; this sleep is the random write timing under
	// test, not a wait for a condition.
	time.Sleep(p.leadFor)
	// An elector that lost its Lease to a fault (an API server down for
	// longer than RenewDeadline) has stopped leading and exited; the trial
	// goes on with what is left.
	if err := a.Pause(); err != nil && !a.Exited() {
		return r, err
	}
	time.Sleep(p.pause) // the pause under test
	resumed := time.Now()
	if err := a.Resume(); err != nil && !a.Exited() {
		return r, err
	}
	// Done when A has given up, or, if it still leads, once it wrote twice
	// more on its ticker after the burst.
	if !a.Exited() {
		if _, err := a.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool {
			return l.Time.After(resumed) && (l.Event == "stopped_leading" || l.Event == "write" && l.Trigger == "tick" && l.Seq >= 2 &&
				a.CountLines(func(m harness.ElectorLine) bool {
					return m.Event == "write" && m.Trigger == "tick" && m.Time.After(resumed)
				}) >= 2)
		}); err != nil {
			return r, err
		}
	}
	for _, e := range electors {
		e.Kill()
		r.writes = append(r.writes, e.Writes("")...)
	}
	return r, nil
}

// setUpTrial creates the trial's namespace and Lease watch and starts its
// electors, returning the first leader once the others have seen it lead.
func setUpTrial(ctx context.Context, p trialParams, r *trialResult, electors *[]*harness.Elector) (*harness.Elector, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := cp.CreateNamespace(ctx, p.ns, nil); err != nil {
		return nil, err
	}
	var err error
	// The watch lives as long as the trial, not this setup.
	if r.hist, err = harness.WatchLease(context.WithoutCancel(ctx), cp.Client, p.ns, "ctrl"); err != nil {
		return nil, err
	}
	start := func(i int) (*harness.Elector, error) {
		args := []string{"--interval", p.intervals[i].String(),
			"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(),
			"--retry-period", "500ms"}
		args = append(args, trialElectorArgs...)
		if i == p.offsetElector {
			args = append(args, "--clock-offset", p.offset.String())
		}
		e, err := harness.StartElector(ctx, harness.ElectorOptions{
			Bin: electorBin, Cluster: cp, Dir: filepath.Join(workDir, p.ns), Namespace: p.ns, Pod: electorNames[i], Args: args,
		})
		if err == nil {
			*electors = append(*electors, e)
		}
		return e, err
	}
	a, err := start(0)
	if err != nil {
		return nil, err
	}
	if _, err := a.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool { return l.Event == "started_leading" }); err != nil {
		return nil, err
	}
	for i := 1; i < len(p.intervals); i++ {
		e, err := start(i)
		if err != nil {
			return nil, err
		}
		if _, err := e.WaitLine(ctx, 20*time.Second, func(l harness.ElectorLine) bool {
			return l.Event == "new_leader" && l.Leader == a.Identity
		}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// classify judges each write against the Lease history and the fault spans
// (see TestRandomisedTrials).
func classify(r trialResult, tw *trialWebhook) tally {
	var tl tally
	if r.p.offsetElector >= 0 {
		tl.clockOffsets = 1
	}
	recs := r.hist.Records()
	for i := 1; i < len(recs); i++ {
		if recs[i].Term != recs[i-1].Term {
			tl.takeovers++
		}
	}
	for _, w := range r.writes {
		if w.Term == nil {
			continue
		}
		tl.writes++
		atSend, ok := r.hist.AtTime(w.Time)
		if !ok {
			continue // sent before the Lease existed for the watch: cannot happen for a stamped write
		}
		desc := fmt.Sprintf("%s: %s (Lease at send: %s term %d, renewed %s before)", r.p.ns, w, harness.ShortIdentity(atSend.Holder), atSend.Term,
			w.Time.Sub(atSend.RenewTime).Round(time.Millisecond))
		staleAtSend := *w.Term < atSend.Term
		if staleAtSend {
			tl.staleAttempts++
		}
		current := atSend.Holder == w.Identity && *w.Term == atSend.Term
		// A fault that kept the webhook from deciding: the API server could
		// not call it (an error, not a denial), or it could not read the
		// Lease.
		done := w.Done
		if done.IsZero() {
			done = w.Time
		}
		unreachable := w.Result == "error" || w.Result == "denied" && strings.Contains(w.Message, "(LeaseUnavailable)")
		fault, inFault := tw.during(w.Time, done)
		switch {
		case w.Result == "admitted":
			if staleAtSend {
				tl.staleAdmitted = append(tl.staleAdmitted, desc)
				continue
			}
			rv, _ := strconv.ParseInt(w.RV, 10, 64)
			if atCommit, ok := r.hist.AtRV(rv); ok && atCommit.Term > *w.Term {
				tl.staleAttempts++
				tl.window = append(tl.window, "stale write sent before the takeover was observed, committed after it (Lease read not atomic with the write): "+desc)
			}
		case !current:
			tl.staleDenied++ // refused, by the webhook or by a fault
		default:
			expiresAt := atSend.RenewTime.Add(atSend.Duration - skewTolerance)
			next, changed := harness.NextChange(recs, atSend)
			switch {
			case strings.Contains(w.Message, "(LeaseExpired)") && !w.Done.Before(expiresAt):
				tl.window = append(tl.window, fmt.Sprintf("holder's write denied: by the webhook's rule its Lease expired at renewTime+%v-%v, before it renewed: %s",
					atSend.Duration, skewTolerance, desc))
			case w.Result == "denied" && changed && !next.Observed.After(w.Done.Add(time.Second)):
				tl.window = append(tl.window, "holder's write denied: the Lease changed hands while the request was in flight: "+desc)
			case unreachable && inFault:
				if tl.failClosed == nil {
					tl.failClosed = map[string]int{}
				}
				tl.failClosed[fault]++
				tl.failClosedWrites = append(tl.failClosedWrites, fault+": "+desc)
			default:
				tl.currentDenied = append(tl.currentDenied, desc)
			}
		}
	}
	return tl
}
