package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"leasefence.io/e2e/cluster"
)

// SplitBrainOptions configures SplitBrain.
type SplitBrainOptions struct {
	Cluster   *cluster.Cluster
	ElectorBn string // from BuildElector
	Dir       string
	Namespace string // created; must not exist
	// ElectorArgs are extra flags for both electors.
	ElectorArgs []string
	// Progress, when set, is told each step as it happens.
	Progress func(what string)
}

// SplitBrainResult is what happened.
type SplitBrainResult struct {
	A, B          *Elector
	Start         time.Time
	History       []LeaseRecord
	TermA, TermB  int32     // the term A led in, and B's after the takeover
	PausedAt      time.Time // SIGSTOP to A
	TakeoverSeen  time.Time // the watch delivered B's takeover
	ResumedAt     time.Time // SIGCONT to A
	AWrites       []ElectorLine
	BWrites       []ElectorLine
	StaleWrites   []ElectorLine // A's writes sent after it was resumed (B held the Lease)
	StaleAdmitted []ElectorLine
	StaleDenied   []ElectorLine
}

// SplitBrain plays the scenario leasefence exists for, with real electors in
// separate processes: A leads and writes; A is paused (SIGSTOP) past its
// Lease duration; B takes over (the Lease names B, leaseTransitions + 1) and
// writes; A is resumed (SIGCONT) and at once writes with the stamp of its old
// term. Whether A's writes land depends on whether the webhook is registered;
// the result records every write, and the caller judges.
func SplitBrain(ctx context.Context, o SplitBrainOptions) (*SplitBrainResult, error) {
	say := func(f string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(f, a...))
		}
	}
	c := o.Cluster
	r := &SplitBrainResult{Start: time.Now()}
	if _, err := c.CreateNamespace(ctx, o.Namespace, nil); err != nil {
		return nil, err
	}
	hist, err := WatchLease(ctx, c.Client, o.Namespace, "ctrl")
	if err != nil {
		return nil, err
	}
	defer hist.Stop()
	dir := filepath.Join(o.Dir, o.Namespace)
	start := func(pod string) (*Elector, error) {
		return StartElector(ctx, ElectorOptions{Bin: o.ElectorBn, Cluster: c, Dir: dir,
			Namespace: o.Namespace, Pod: pod, Args: o.ElectorArgs})
	}
	if r.A, err = start("ctrl-a"); err != nil {
		return nil, err
	}
	defer r.A.Kill()
	first, err := hist.WaitFor(ctx, 30*time.Second, "held by ctrl-a", func(l LeaseRecord) bool { return l.Holder == r.A.Identity })
	if err != nil {
		return nil, err
	}
	r.TermA = first.Term
	say("ctrl-a leads (term %d)", r.TermA)
	// B starts only now, so that A is the first leader.
	if r.B, err = start("ctrl-b"); err != nil {
		return nil, err
	}
	defer r.B.Kill()
	if _, err := r.A.WaitLine(ctx, 20*time.Second, func(l ElectorLine) bool {
		return l.Event == "write" && l.Result == "admitted" && l.Seq >= 2
	}); err != nil {
		return nil, fmt.Errorf("ctrl-a never wrote twice: %w", err)
	}
	if _, err := r.B.WaitLine(ctx, 20*time.Second, func(l ElectorLine) bool {
		return l.Event == "new_leader" && l.Leader == r.A.Identity
	}); err != nil {
		return nil, fmt.Errorf("ctrl-b never saw ctrl-a lead: %w", err)
	}

	r.PausedAt = time.Now()
	if err := r.A.Pause(); err != nil {
		return nil, err
	}
	say("ctrl-a paused (SIGSTOP)")
	took, err := hist.WaitFor(ctx, 30*time.Second, "taken over by ctrl-b", func(l LeaseRecord) bool {
		return l.Holder == r.B.Identity
	})
	if err != nil {
		return nil, err
	}
	r.TakeoverSeen, r.TermB = took.Observed, took.Term
	if r.TermB != r.TermA+1 {
		return nil, fmt.Errorf("ctrl-b took over in term %d, want %d", r.TermB, r.TermA+1)
	}
	say("ctrl-b took over (term %d)", r.TermB)
	if _, err := r.B.WaitLine(ctx, 20*time.Second, func(l ElectorLine) bool {
		return l.Event == "write" && l.Result == "admitted" && l.Term != nil && *l.Term == r.TermB
	}); err != nil {
		return nil, fmt.Errorf("ctrl-b never wrote in its term: %w", err)
	}
	say("ctrl-b wrote in term %d", r.TermB)

	r.ResumedAt = time.Now()
	if err := r.A.Resume(); err != nil {
		return nil, err
	}
	say("ctrl-a resumed (SIGCONT)")
	// The burst is done once its writes are logged, and A has given up once
	// its elector noticed B (stopped_leading after RenewDeadline).
	if _, err := r.A.WaitLine(ctx, 20*time.Second, func(l ElectorLine) bool { return l.Event == "stopped_leading" }); err != nil {
		return nil, fmt.Errorf("ctrl-a never stopped leading: %w", err)
	}
	say("ctrl-a stopped leading")
	r.A.Kill()
	r.B.Kill()
	r.History = hist.Records()
	r.AWrites, r.BWrites = r.A.Writes(""), r.B.Writes("")
	for _, w := range r.AWrites {
		if w.Time.After(r.ResumedAt) {
			r.StaleWrites = append(r.StaleWrites, w)
			switch w.Result {
			case "admitted":
				r.StaleAdmitted = append(r.StaleAdmitted, w)
			case "denied":
				r.StaleDenied = append(r.StaleDenied, w)
			}
		}
	}
	return r, nil
}
