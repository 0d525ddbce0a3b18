package fencing_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// Faults injected while trials run. The trials' webhook is two replicas
// behind one registration: the registration's URL is a harness.Proxy that
// plays their Service (each connection to the next replica in turn, a
// refusing one skipped). Replica 0 reads Leases strongly (--lease-source
// kube), replica 1 from its cache (kube-cached), its path to the API server
// through a second Proxy, so that its connections, the Lease watch among
// them, can be cut. Mixed sources are what a rolling change of
// --lease-source runs through; each replica decides by its own source.
const (
	faultAPIServer = "apiserver_restart" // kube-apiserver stopped (SIGTERM) and started again, etcd kept
	faultWebhook   = "webhook_restart"   // one replica killed (SIGKILL), a new one started in its place
	faultWatchCut  = "watch_cut"         // every connection of the cached replica to the API server closed
	faultClock     = "clock_offset"      // one elector of a trial writes renewTime and acquireTime off the host's clock, within the tolerance
)

// maxClockOffset bounds the electors' clock offsets: within the webhook's
// skew tolerance (protocol section 6), with room for the time a renewal
// takes to reach it.
const maxClockOffset = 400 * time.Millisecond

// faultSpan is one fault from its injection until the webhook decided
// with Lease reads again, on every replica it concerns.
type faultSpan struct {
	kind     string
	from, to time.Time
}

// trialWebhook is the trials' pair of replicas and the faults done to them.
type trialWebhook struct {
	certs    *harness.CertFiles
	service  *harness.Proxy // the registration's URL
	apiPath  *harness.Proxy // replica 1's path to the API server
	replicas [2]*harness.Webhook
	killNext int // the replica the next webhook fault kills
	logf     func(string, ...any)

	// setup is held for reading by every trial while it sets up (namespace,
	// pod identities, electors started and agreeing on the first leader),
	// and for writing by an API server restart: the restart falls on trials
	// while they write, never on their scaffolding.
	setup sync.RWMutex

	mu     sync.Mutex
	spans  []faultSpan
	counts map[string]int
}

func replicaOptions(i int, certs *harness.CertFiles, apiPath *harness.Proxy) harness.WebhookOptions {
	o := harness.WebhookOptions{Cluster: cp, Dir: filepath.Join(workDir, fmt.Sprintf("replica-%d", i)), Certs: certs, Args: webhookArgs}
	if i == 1 {
		o.LeaseSource, o.APIServer = "kube-cached", apiPath.Addr()
	}
	return o
}

// startTrialWebhook starts the two replicas and registers their Service in
// place of the package's webhook, until the test ends.
func startTrialWebhook(ctx context.Context, t *testing.T) *trialWebhook {
	tw := &trialWebhook{counts: map[string]int{}, logf: t.Logf}
	var err error
	if tw.certs, err = harness.Certs(filepath.Join(workDir, "replica-certs")); err != nil {
		t.Fatal(err)
	}
	if tw.apiPath, err = harness.NewProxy(fmt.Sprintf("127.0.0.1:%d", cp.APIServerPort())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tw.apiPath.Close)
	for i := range tw.replicas {
		if tw.replicas[i], err = harness.StartWebhook(ctx, replicaOptions(i, tw.certs, tw.apiPath)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, r := range tw.replicas {
			tw.logConnections(context.Background(), r)
			if err := r.Stop(); err != nil {
				t.Error(err)
			}
		}
	})
	if tw.service, err = harness.NewProxy(tw.replicas[0].Addr(), tw.replicas[1].Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tw.service.Close()
		t.Logf("the replicas' Service: %+v", tw.service.Stats())
	})
	if err := harness.RegisterAt(ctx, cp, tw.service.Port(), tw.certs.CAPEM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := harness.Register(context.Background(), cp, wh); err != nil {
			t.Errorf("registering the package's webhook again: %v", err)
		}
	})
	return tw
}

// inject runs one fault of kind to its end and records it.
func (tw *trialWebhook) inject(ctx context.Context, kind string) error {
	from := time.Now()
	var err error
	switch kind {
	case faultAPIServer:
		err = tw.restartAPIServer(ctx)
	case faultWebhook:
		err = tw.restartReplica(ctx)
	case faultWatchCut:
		err = tw.cutWatch(ctx)
	default:
		err = fmt.Errorf("no fault %q", kind)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	tw.record(faultSpan{kind: kind, from: from, to: time.Now()})
	return nil
}

func (tw *trialWebhook) record(s faultSpan) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.spans = append(tw.spans, s)
	tw.counts[s.kind]++
}

// restartAPIServer restarts kube-apiserver and ends once it calls the
// webhook again and both replicas read Leases again.
func (tw *trialWebhook) restartAPIServer(ctx context.Context) error {
	tw.setup.Lock()
	defer tw.setup.Unlock()
	if err := cp.RestartAPIServer(ctx); err != nil {
		return err
	}
	if err := harness.WaitEnforced(ctx, cp); err != nil {
		return err
	}
	return awaitLeaseReads(ctx, tw.replicas[:]...)
}

// restartReplica kills one replica (they take turns) and starts a new one
// in its place, on new ports as a new pod would be.
func (tw *trialWebhook) restartReplica(ctx context.Context) error {
	i := tw.killNext
	tw.killNext = 1 - i
	tw.logConnections(ctx, tw.replicas[i])
	tw.replicas[i].Kill()
	r, err := harness.StartWebhook(ctx, replicaOptions(i, tw.certs, tw.apiPath))
	if err != nil {
		return err
	}
	tw.replicas[i] = r
	tw.service.SetBackends(tw.replicas[0].Addr(), tw.replicas[1].Addr())
	return awaitLeaseReads(ctx, r)
}

// cutWatch closes the cached replica's connections to the API server and
// ends once it has listed again and reads Leases again.
func (tw *trialWebhook) cutWatch(ctx context.Context) error {
	r := tw.replicas[1]
	before, err := r.Counter(ctx, "leasefence_lease_relists_total", nil)
	if err != nil {
		return err
	}
	// Its watch is open but for a moment after a fault (a backoff before it
	// lists again): the cut waits for a connection to cut.
	if err := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		return tw.apiPath.Cut("") > 0, "the cached replica has no connection to the API server", nil
	}); err != nil {
		return err
	}
	if err := cluster.Poll(ctx, 60*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		n, err := r.Counter(ctx, "leasefence_lease_relists_total", nil)
		return err == nil && n > before, fmt.Sprintf("relists %v (before the cut %v) %v", n, before, err), nil
	}); err != nil {
		return fmt.Errorf("no re-list after the cut: %w", err)
	}
	return awaitLeaseReads(ctx, r)
}

// awaitLeaseReads waits until each replica has twice in a row decided a
// write by a Lease read that reached the API server (a broken pooled
// connection can fail one read after the fault is over; that read is still
// the fault's).
func awaitLeaseReads(ctx context.Context, replicas ...*harness.Webhook) error {
	for _, r := range replicas {
		ok := 0
		err := cluster.Poll(ctx, 60*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			reason, err := r.ProbeLeaseRead(ctx, harness.ProbeNamespace, "absent")
			if err != nil || reason != "LeaseNotFound" {
				ok = 0
				return false, fmt.Sprintf("replica %s: %s %v", r.Addr(), reason, err), nil
			}
			ok++
			return ok >= 2, "", nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// logConnections logs the connections r closed on its own (a phase's
// timeout, or refused at accept), which a client that sent a request on
// such a connection at that moment sees fail.
func (tw *trialWebhook) logConnections(ctx context.Context, r *harness.Webhook) {
	text, err := r.Metrics(ctx)
	if err != nil {
		tw.logf("replica %s: no metrics: %v", r.Addr(), err)
		return
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "leasefence_connections_timed_out_total") || strings.HasPrefix(l, "leasefence_connections_refused_total") {
			lines = append(lines, l)
		}
	}
	tw.logf("replica %s: %s", r.Addr(), strings.Join(lines, "; "))
}

// during returns the kind of a fault whose span overlaps [from, to], if
// any.
func (tw *trialWebhook) during(from, to time.Time) (string, bool) {
	if tw == nil {
		return "", false
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	for _, s := range tw.spans {
		if !to.Before(s.from) && !from.After(s.to) {
			return s.kind, true
		}
	}
	return "", false
}

// injected is "kind=n,..." for the faults runFaults injects, in a fixed
// order.
func (tw *trialWebhook) injected() string {
	var parts []string
	for _, k := range []string{faultAPIServer, faultWebhook, faultWatchCut} {
		n := 0
		if tw != nil {
			tw.mu.Lock()
			n = tw.counts[k]
			tw.mu.Unlock()
		}
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	return strings.Join(parts, ",")
}

// runFaults injects the next fault (webhook, watch, API server, in turn)
// every period while the trials run, so that faults fall on trials in all
// their phases (an API server restart waits for the setups under way and
// holds new ones off, see setup). A fault begun runs to its end, whatever
// ctx does (a half-restarted API server would fail the package's other
// tests). It returns when ctx ends, or at the first fault that could not be
// carried out.
func (tw *trialWebhook) runFaults(ctx context.Context, period time.Duration) error {
	kinds := []string{faultWebhook, faultWatchCut, faultAPIServer}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for next := 0; ; next++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		kind := kinds[next%len(kinds)]
		from := time.Now()
		if err := tw.inject(context.WithoutCancel(ctx), kind); err != nil {
			return err
		}
		tw.logf("fault %s at %s: %v until the webhook read Leases again", kind, from.Format("15:04:05.000"), time.Since(from).Round(time.Millisecond))
	}
}

// TestElectorClockOffset shows that cmd/elector's --clock-offset moves the
// times it writes into the Lease, as a clock that is off would: an elector
// 2 s ahead (beyond the webhook's 500 ms tolerance) writes a renewTime the
// watch sees seconds before it comes, and the webhook denies its writes
// (ClockSkew); the trials' offsets stay within the tolerance.
func TestElectorClockOffset(t *testing.T) {
	if !registered {
		t.Skip("LF_NO_WEBHOOK=1")
	}
	ctx := testCtx(t, 2*time.Minute)
	const ns = "clock-offset"
	if _, err := cp.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	hist, err := harness.WatchLease(ctx, cp.Client, ns, "ctrl")
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Stop()
	e, err := harness.StartElector(ctx, harness.ElectorOptions{
		Bin: electorBin, Cluster: cp, Dir: filepath.Join(workDir, ns), Namespace: ns, Pod: "ctrl-a",
		Args: []string{"--clock-offset", "2s", "--lease-duration", leaseDuration.String(),
			"--renew-deadline", renewDeadline.String(), "--retry-period", "500ms"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Kill()
	if _, err := e.WaitLine(ctx, 30*time.Second, func(l harness.ElectorLine) bool { return l.Event == "write" && l.Seq >= 2 }); err != nil {
		t.Fatal(err)
	}
	e.Kill()
	for _, w := range e.Writes("") {
		if w.Result != "denied" || !strings.Contains(w.Message, "(ClockSkew)") {
			t.Errorf("a write of an elector 2 s ahead: want denied ClockSkew, got %s", w)
		}
	}
	recs := hist.Records()
	if len(recs) == 0 {
		t.Fatal("the watch saw no Lease")
	}
	for _, r := range recs {
		if ahead := r.RenewTime.Sub(r.Observed); ahead < time.Second {
			t.Errorf("Lease version %d: renewTime %v after the watch delivered it, want more than 1 s (2 s ahead, less the delivery)", r.RV, ahead)
		}
	}
}
