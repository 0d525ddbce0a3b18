package operator_test

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// The replicas' leader election (flags of the example operator).
const (
	leaseName     = "op"
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	skewTolerance = 500 * time.Millisecond // webhookArgs

	inputName   = "input"
	summaryName = "input-summary" // the example operator's summary of input
	inputLabel  = "example.leasefence.io/input"
)

// TestOperatorTrials runs LF_OPERATOR_TRIALS (default 2) split-brain trials
// of two example-operator replicas in each of three modes: the webhook with
// pod-bound tokens, the webhook with plain service-account tokens, and no
// webhook. In each trial the leader (replica a) summarises an input that a
// driver changes every few tens of milliseconds; then a's requests are
// held on their way to the API server (a wedged connection) for a random
// 100-400 ms, so that a reconcile is caught with its write in flight, and a
// is paused (SIGSTOP). The first trial of each mode, and two thirds of the
// others, pause a until replica b has taken the Lease; the rest pause it for
// less than the renew deadline. Then a's requests are let through, and a
// is resumed (SIGCONT) a random 300-800 ms later.
//
// Every write is judged against the Lease's history:
//
//   - stale_admitted: a version of the summary committed (by resourceVersion,
//     which orders it with the Lease's versions) while the Lease was in a
//     newer term than the stamp it carries. Must be 0 with the webhook; the
//     control must show some (else the trials produced no split brain).
//   - current_denied: a write denied although, when it reached the API
//     server, its stamp named the Lease's holder and term. A write sent
//     while a's requests were held reaches the API server when they are let
//     through. Must be 0, outside the documented window (a Lease that by the
//     webhook's rule expired before its holder renewed it, or changed hands
//     while the write was in flight) and the webhook failing closed when it
//     cannot read the Lease in time (LeaseUnavailable, seen on a machine
//     under heavy load), all printed separately as window.
//
// Identity fencing (docs/protocol.md, section 7a): two more modes run the
// operator with --fencing=identity, controller-runtime's own manager and
// elector with no stamp on any write, on summaries annotated
// "identity:<namespace>/op", with pod-bound tokens, with the webhook and
// without it (the control). No write carries a stamp, so the writer of
// each version, and when each write arrived, come from the API server's
// audit log (audit_test.go); a write is stale when it arrived while the
// Lease was held by another pod:
//
//   - stale_admitted: a version of the summary committed (by
//     resourceVersion) while another pod than its writer's held the Lease,
//     its write having arrived after that change was observed. A write
//     that arrived before it is printed as window: the webhook's read of
//     the Lease is not atomic with the commit, and identity fencing keeps
//     no per-object term to close that gap (section 7a.1). Must be 0 with
//     the webhook; the control must show some.
//   - current_denied: a write denied although it arrived from the holder's
//     pod, with the same window as above.
//
// One line per mode: trials=N takeovers writes stale_attempts stale_admitted
// current_denied window, and the mode's wall time.
func TestOperatorTrials(t *testing.T) {
	n := 2
	if v := os.Getenv("LF_OPERATOR_TRIALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("LF_OPERATOR_TRIALS=%q: want a positive number", v)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LF_TRIALS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("LF_OPERATOR_TRIALS=%d LF_TRIALS_SEED=%d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	modes := []struct {
		name    string
		tokens  tokenMode
		webhook bool
		fencing string // the operator's --fencing
	}{
		{"pod-bound tokens, webhook", podBound, true, "stamp"},
		{"plain service-account tokens, webhook", plainSA, true, "stamp"},
		{"no webhook (control)", plainSA, false, "stamp"},
		{"identity fencing, no stamps, webhook", podBound, true, "identity"},
		{"identity fencing, no stamps, no webhook (control)", podBound, false, "identity"},
	}
	var summaries []string
	for mi, m := range modes {
		ok := t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			if m.webhook {
				if err := harness.Register(ctx, cp, wh); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := harness.Unregister(context.Background(), cp); err != nil {
						t.Error(err)
					}
				}()
			}
			var total tally
			began := time.Now()
			for i := 0; i < n; i++ {
				p := trialParams{
					ns:         fmt.Sprintf("op-%d-%d", mi, i),
					tokens:     m.tokens,
					fencing:    m.fencing,
					takeover:   i == 0 || rng.IntN(3) != 0,
					shortPause: time.Duration(300+rng.IntN(1700)) * time.Millisecond,
					leadFor:    time.Duration(rng.IntN(1000)) * time.Millisecond,
					holdFor:    time.Duration(100+rng.IntN(300)) * time.Millisecond,
					resumeGap:  time.Duration(300+rng.IntN(500)) * time.Millisecond,
					interval:   time.Duration(30+rng.IntN(50)) * time.Millisecond,
				}
				tl, err := trial(t, p)
				if err != nil {
					t.Fatalf("trial %d (%+v): %v", i, p, err)
				}
				t.Logf("trial %d: takeover=%v hold %v resume gap %v, %d writes, %d stale attempts, %d stale denied, stale_admitted=%d current_denied=%d window=%d",
					i, tl.takeovers > 0, p.holdFor, p.resumeGap, tl.writes, tl.staleAttempts, tl.staleDenied, len(tl.staleAdmitted), len(tl.currentDenied), len(tl.window))
				total.add(tl)
			}
			for _, s := range total.window {
				t.Logf("window: %s", s)
			}
			for _, s := range total.staleFailed {
				t.Logf("stale write failed otherwise: %s", s)
			}
			summary := fmt.Sprintf("operator trials, %s: trials=%d stale_admitted=%d current_denied=%d window=%d (takeovers=%d writes=%d stale_attempts=%d stale_denied=%d, %.0fs)",
				m.name, n, len(total.staleAdmitted), len(total.currentDenied), len(total.window), total.takeovers, total.writes,
				total.staleAttempts, total.staleDenied, time.Since(began).Seconds())
			summaries = append(summaries, summary)
			for _, s := range total.currentDenied {
				t.Errorf("current leader's write denied: %s", s)
			}
			if m.webhook {
				for _, s := range total.staleAdmitted {
					t.Errorf("stale write admitted: %s", s)
				}
				if m.fencing == "identity" && total.staleDenied == 0 {
					t.Errorf("no stale write was denied: the trials made no split brain for identity fencing to stop")
				}
			} else {
				for _, s := range total.staleAdmitted {
					t.Logf("stale write landed (no webhook): %s", s)
				}
				if len(total.staleAdmitted) == 0 {
					t.Errorf("the control landed no stale write: the trials made no split brain")
				}
			}
		})
		if !ok {
			break
		}
	}
	for _, s := range summaries {
		t.Log(s)
		fmt.Println(s) // also without -v
	}
}

type trialParams struct {
	ns         string
	tokens     tokenMode
	fencing    string        // the operator's --fencing: stamp or identity
	takeover   bool          // pause a until b holds the Lease
	shortPause time.Duration // else: pause a this long (< renewDeadline)
	leadFor    time.Duration // how long a leads with the driver running before the hold
	holdFor    time.Duration // a's requests held this long before the pause
	resumeGap  time.Duration // a resumed this long after its requests are let through
	interval   time.Duration // the driver's input changes
}

type tally struct {
	writes, staleDenied, takeovers int
	staleAttempts                  int      // writes sent or arriving while another held the Lease
	staleFailed                    []string // stale attempts that failed otherwise (a conflict, say)
	staleAdmitted, currentDenied   []string
	window                         []string
}

func (t *tally) add(o tally) {
	t.writes += o.writes
	t.staleDenied += o.staleDenied
	t.staleAttempts += o.staleAttempts
	t.staleFailed = append(t.staleFailed, o.staleFailed...)
	t.takeovers += o.takeovers
	t.staleAdmitted = append(t.staleAdmitted, o.staleAdmitted...)
	t.currentDenied = append(t.currentDenied, o.currentDenied...)
	t.window = append(t.window, o.window...)
}

// version is one committed version of the summary.
type version struct {
	rv    int64
	stamp string
}

// watchSummary records every version of the summary ConfigMap.
func watchSummary(ctx context.Context, ns string) (func() []version, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var out []version
	done := make(chan struct{})
	cms := cp.Client.CoreV1().ConfigMaps(ns)
	sel := fields.OneTermEqualSelector("metadata.name", summaryName).String()
	list, err := cms.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	rv := list.ResourceVersion
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
			if err != nil {
				time.Sleep(100 * time.Millisecond) // retry backoff, as harness.WatchLease
				continue
			}
			for ev := range w.ResultChan() {
				cm, ok := ev.Object.(*corev1.ConfigMap)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				rv = cm.ResourceVersion
				n, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
				mu.Lock()
				out = append(out, version{rv: n, stamp: cm.Annotations[fencing.AnnotationStamp]})
				mu.Unlock()
			}
			w.Stop()
		}
	}()
	get := func() []version {
		mu.Lock()
		defer mu.Unlock()
		return append([]version(nil), out...)
	}
	stop := func() { cancel(); <-done }
	return get, stop, nil
}

// drive changes the input every interval until stop is closed.
func drive(ctx context.Context, ns string, interval time.Duration, stop <-chan struct{}) <-chan error {
	errc := make(chan error, 1)
	go func() {
		cms := cp.Client.CoreV1().ConfigMaps(ns)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				errc <- nil
				return
			case <-tick.C:
			}
			patch := fmt.Sprintf(`{"data":{"n":"%d"}}`, i)
			if _, err := cms.Patch(ctx, inputName, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
				errc <- fmt.Errorf("driver: %w", err)
				return
			}
		}
	}()
	return errc
}

func trial(t *testing.T, p trialParams) (tally, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(workDir, p.ns)
	if _, err := cp.CreateNamespace(ctx, p.ns, nil); err != nil {
		return tally{}, err
	}
	hist, err := harness.WatchLease(ctx, cp.Client, p.ns, leaseName)
	if err != nil {
		return tally{}, err
	}
	defer hist.Stop()
	versions, stopVersions, err := watchSummary(ctx, p.ns)
	if err != nil {
		return tally{}, err
	}
	defer stopVersions()
	if _, err := cp.Client.CoreV1().ConfigMaps(p.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: inputName, Labels: map[string]string{inputLabel: "true"}},
		Data:       map[string]string{"n": "start"},
	}, metav1.CreateOptions{}); err != nil {
		return tally{}, err
	}

	a, err := startReplica(ctx, dir, p.ns, "op-a", p.tokens, p.fencing)
	if err != nil {
		return tally{}, err
	}
	defer a.kill()
	led, err := hist.WaitFor(ctx, 30*time.Second, "a leads", a.holds)
	if err != nil {
		return tally{}, err
	}
	a.identity = led.Holder
	if err := cluster.Poll(ctx, 30*time.Second, 20*time.Millisecond, func(context.Context) (bool, string, error) {
		return len(versions()) > 0, "waiting for a's first summary", nil
	}); err != nil {
		return tally{}, err
	}
	b, err := startReplica(ctx, dir, p.ns, "op-b", p.tokens, p.fencing)
	if err != nil {
		return tally{}, err
	}
	defer b.kill()
	// client-go's elector logs through klog, as plain text.
	if err := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		b, err := os.ReadFile(b.logPath)
		return err == nil && strings.Contains(string(b), "Attempting to acquire leader lease"), "waiting for b's first try for the Lease", nil
	}); err != nil {
		return tally{}, err
	}

	stopDriver := make(chan struct{})
	driverErr := drive(ctx, p.ns, p.interval, stopDriver)
	// a leads for a random while, then its requests are held for a random
	// while before it is paused: these sleeps are the random timing under
	// test, not waits for a condition.
	time.Sleep(p.leadFor)
	heldAt := time.Now()
	a.gate.Hold()
	time.Sleep(p.holdFor)
	if err := a.pause(); err != nil {
		return tally{}, err
	}
	if p.takeover {
		took, err := hist.WaitFor(ctx, 30*time.Second, "b takes over", b.holds)
		if err != nil {
			return tally{}, err
		}
		b.identity = took.Holder
	} else {
		time.Sleep(p.shortPause) // the pause under test
	}
	// The connection heals first, while a is still paused: its held writes
	// reach the API server and are decided there. a is resumed a random
	// while later (the random timing under test; resumed at once, a would
	// exit on its lost election and close its connections, which can abort
	// the requests the API server is still processing).
	releasedAt := time.Now()
	a.gate.Release()
	time.Sleep(p.resumeGap)
	if err := a.resume(); err != nil {
		return tally{}, err
	}
	// Done when b has written since a was resumed (b leads), or a has
	// written twice since (a kept the Lease). controller-runtime's manager
	// exits once its elector has lost the Lease.
	if err := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		na, nb, err := wroteSince(p, a, b, releasedAt)
		return nb >= 1 || na >= 2, fmt.Sprintf("writes since the resume: b %d, a %d", nb, na), err
	}); err != nil {
		return tally{}, err
	}
	close(stopDriver)
	if err := <-driverErr; err != nil {
		return tally{}, err
	}
	if p.fencing == "identity" {
		// Stopped once the leader has summarised the driver's last input,
		// the replicas have, as a rule, no write in flight to cut off
		// (see auditAfterBarrier).
		if err := awaitSummarised(ctx, p.ns); err != nil {
			return tally{}, err
		}
	}
	a.kill()
	b.kill()
	if p.fencing == "identity" {
		vs, writes, err := auditAfterBarrier(ctx, auditLog, p.ns, versions)
		if err != nil {
			return tally{}, err
		}
		return judgeIdentity(hist, vs, writes), nil
	}
	// The last versions of the summary reach the watch: await the newest
	// resourceVersion a write reported.
	newest := int64(0)
	for _, w := range append(a.writes(), b.writes()...) {
		if rv, _ := strconv.ParseInt(w.RV, 10, 64); rv > newest {
			newest = rv
		}
	}
	if err := awaitVersion(ctx, versions, newest); err != nil {
		return tally{}, err
	}
	return judge(hist, versions(), []*replica{a, b}, a, heldAt, releasedAt), nil
}

// awaitSummarised waits until the summary in ns is of the input as it is
// now.
func awaitSummarised(ctx context.Context, ns string) error {
	cms := cp.Client.CoreV1().ConfigMaps(ns)
	input, err := cms.Get(ctx, inputName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return cluster.Poll(ctx, 10*time.Second, 20*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		summary, err := cms.Get(ctx, summaryName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return summary.Data["source"] == input.ResourceVersion,
			fmt.Sprintf("the summary is of input version %s, not %s", summary.Data["source"], input.ResourceVersion), nil
	})
}

// wroteSince counts the writes of a and b admitted since t: from their
// logs when they stamp, from the audit log when they do not.
func wroteSince(p trialParams, a, b *replica, t time.Time) (int, int, error) {
	if p.fencing == "identity" {
		writes, _, err := readAudit(auditLog, p.ns)
		n := map[string]int{}
		for _, w := range writes {
			if w.RV != 0 && w.Arrived.After(t) {
				n[w.Pod]++
			}
		}
		return n[a.pod], n[b.pod], err
	}
	count := func(r *replica) int {
		n := 0
		for _, l := range r.writes() {
			if sent, err := parseTime(l.Sent); err == nil && l.Error == "" && sent.After(t) {
				n++
			}
		}
		return n
	}
	return count(a), count(b), nil
}

func awaitVersion(ctx context.Context, versions func() []version, rv int64) error {
	return cluster.Poll(ctx, 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, string, error) {
		for _, v := range versions() {
			if v.rv >= rv {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("the summary's version %d has not reached the watch", rv), nil
	})
}

// judge classifies the trial's writes (see TestOperatorTrials).
func judge(hist *harness.LeaseHistory, versions []version, replicas []*replica, held *replica, heldAt, releasedAt time.Time) tally {
	var tl tally
	recs := hist.Records()
	for i := 1; i < len(recs); i++ {
		if recs[i].Term != recs[i-1].Term {
			tl.takeovers++
		}
	}
	// Committed versions: the stamp each carries against the Lease at its
	// resourceVersion.
	for _, v := range versions {
		s, err := fencing.ParseStamp(v.stamp)
		if err != nil {
			tl.staleAdmitted = append(tl.staleAdmitted, fmt.Sprintf("rv %d committed without a valid stamp (%q)", v.rv, v.stamp))
			continue
		}
		at, ok := hist.AtRV(v.rv)
		if ok && at.UID == s.LeaseUID && s.Term < at.Term {
			tl.staleAttempts++
			tl.staleAdmitted = append(tl.staleAdmitted, fmt.Sprintf("rv %d stamped %s term %d, committed while the Lease was held by %s in term %d",
				v.rv, harness.ShortIdentity(s.Holder), s.Term, harness.ShortIdentity(at.Holder), at.Term))
		}
	}
	// Denials: judged when the write reached the API server.
	for _, r := range replicas {
		for _, w := range r.writes() {
			tl.writes++
			if !strings.Contains(w.Error, "denied the request") {
				continue
			}
			sent, err := parseTime(w.Sent)
			if err != nil {
				continue
			}
			done, _ := parseTime(w.Done)
			arrived := sent
			if r == held && !sent.Before(heldAt) && sent.Before(releasedAt) {
				arrived = releasedAt
			}
			at, ok := hist.AtTime(arrived)
			if !ok {
				continue
			}
			desc := fmt.Sprintf("%s %s %s term %d sent %s: %s (Lease at arrival: %s term %d)", harness.ShortIdentity(w.Holder), w.Verb, w.Object, *w.Term,
				sent.Format("15:04:05.000"), w.Error, harness.ShortIdentity(at.Holder), at.Term)
			if at.Holder != w.Holder || at.Term != *w.Term || at.UID != w.LeaseUID {
				tl.staleDenied++
				tl.staleAttempts++
				continue
			}
			tl.holderDenied(recs, at, w.Error, done, desc)
		}
	}
	return tl
}

// holderDenied files a denial of the holder's write, which arrived while
// the Lease was at and was answered at answered: in the documented window
// (the webhook failed closed, the Lease expired by the webhook's rule
// before its holder renewed it, or it changed hands while the request was
// in flight), else among the current holder's wrongful denials.
func (tl *tally) holderDenied(recs []harness.LeaseRecord, at harness.LeaseRecord, message string, answered time.Time, desc string) {
	expiresAt := at.RenewTime.Add(at.Duration - skewTolerance)
	next, changed := harness.NextChange(recs, at)
	switch {
	case strings.Contains(message, "(LeaseUnavailable)"):
		tl.window = append(tl.window, "holder's write denied: the webhook could not read the Lease in time and failed closed: "+desc)
	case strings.Contains(message, "(LeaseExpired)") && !answered.Before(expiresAt):
		tl.window = append(tl.window, "holder's write denied: by the webhook's rule its Lease expired before it renewed: "+desc)
	case changed && !next.Observed.After(answered.Add(time.Second)):
		tl.window = append(tl.window, "holder's write denied: the Lease changed hands while the request was in flight: "+desc)
	default:
		tl.currentDenied = append(tl.currentDenied, desc)
	}
}

// judgeIdentity classifies the writes of a trial without stamps (see
// TestOperatorTrials): by the audit log, each write's pod and arrival, and
// each version's writer.
func judgeIdentity(hist *harness.LeaseHistory, versions []version, writes []auditWrite) tally {
	var tl tally
	recs := hist.Records()
	for i := 1; i < len(recs); i++ {
		if recs[i].Term != recs[i-1].Term {
			tl.takeovers++
		}
	}
	byRV := map[int64]auditWrite{}
	for _, w := range writes {
		if w.RV != 0 {
			byRV[w.RV] = w
		}
	}
	// Committed versions: the writer's pod against the Lease's holder at
	// the version's resourceVersion.
	for _, v := range versions {
		w, ok := byRV[v.rv]
		if !ok {
			// A write cut off by the kill committed unanswered: its pod is
			// the writer if only one pod had such a write; else the version
			// counts as stale, so that no doubt passes for fencing.
			pods := map[string]bool{}
			for _, u := range writes {
				if u.unanswered() {
					pods[u.Pod] = true
					w = u
				}
			}
			if len(pods) != 1 {
				tl.staleAdmitted = append(tl.staleAdmitted, fmt.Sprintf("rv %d: no audit event names its writer (unanswered writes of %d pods)", v.rv, len(pods)))
				continue
			}
		}
		at, ok := hist.AtRV(v.rv)
		if !ok || harness.ShortIdentity(at.Holder) == w.Pod {
			continue
		}
		changed := tenureStart(recs, at)
		desc := fmt.Sprintf("rv %d written by %s (%s arrived %s), committed while the Lease was held by %s in term %d (since %s)",
			v.rv, w.Pod, w.Verb, w.Arrived.Format("15:04:05.000"), harness.ShortIdentity(at.Holder), at.Term, changed.Observed.Format("15:04:05.000"))
		if w.Arrived.Before(changed.Observed) {
			tl.window = append(tl.window, "a write that arrived before the Lease changed hands committed after: "+desc)
			continue
		}
		tl.staleAdmitted = append(tl.staleAdmitted, desc)
	}
	// Every write: judged when it arrived at the API server.
	for _, w := range writes {
		tl.writes++
		at, ok := hist.AtTime(w.Arrived)
		if !ok {
			continue
		}
		desc := fmt.Sprintf("%s %s arrived %s: %s (Lease at arrival: %s term %d)", w.Pod, w.Verb,
			w.Arrived.Format("15:04:05.000"), w.Message, harness.ShortIdentity(at.Holder), at.Term)
		if harness.ShortIdentity(at.Holder) != w.Pod {
			tl.staleAttempts++
			switch {
			case w.denied():
				tl.staleDenied++
			case w.RV == 0:
				tl.staleFailed = append(tl.staleFailed, desc)
			}
			continue
		}
		if !w.denied() {
			continue
		}
		tl.holderDenied(recs, at, w.Message, w.Answered, desc)
	}
	return tl
}

// tenureStart returns the first record of at's tenure (its holder and
// term): the Lease's change to that holder, as the watch observed it.
func tenureStart(recs []harness.LeaseRecord, at harness.LeaseRecord) harness.LeaseRecord {
	start := at
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.RV > at.RV {
			continue
		}
		if r.Holder != at.Holder || r.Term != at.Term {
			break
		}
		start = r
	}
	return start
}
