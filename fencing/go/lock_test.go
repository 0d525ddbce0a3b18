package fencing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

const (
	testNS   = "default"
	testName = "ctrl"
)

// newFakeClient returns a fake clientset that, like the API server, gives a
// created Lease a fresh uid and every write a new resourceVersion (the fake
// object tracker does neither).
func newFakeClient(t *testing.T) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset()
	var uids, rvs atomic.Int64
	cs.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease)
		lease.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", uids.Add(1)))
		lease.ResourceVersion = strconv.FormatInt(rvs.Add(1), 10)
		return false, nil, nil
	})
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		lease.ResourceVersion = strconv.FormatInt(rvs.Add(1), 10)
		return false, nil, nil
	})
	return cs
}

func electionRecord(holder string, transitions int, at time.Time) resourcelock.LeaderElectionRecord {
	return resourcelock.LeaderElectionRecord{
		HolderIdentity:       holder,
		LeaseDurationSeconds: 15,
		AcquireTime:          metav1.NewTime(at),
		RenewTime:            metav1.NewTime(at),
		LeaderTransitions:    transitions,
	}
}

func storedLease(t *testing.T, cs *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(testNS).Get(context.Background(), testName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the Lease: %v", err)
	}
	return l
}

func wantStamp(t *testing.T, l *Lock, want Stamp) {
	t.Helper()
	got, err := l.Stamp()
	if err != nil {
		t.Fatalf("%s: Stamp(): %v", l.Identity(), err)
	}
	if got != want {
		t.Fatalf("%s: Stamp() = %v, want %v", l.Identity(), got, want)
	}
}

func wantNotLeader(t *testing.T, l *Lock) {
	t.Helper()
	s, err := l.Stamp()
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("%s: Stamp() = %v, %v; want ErrNotLeader", l.Identity(), s, err)
	}
}

// wantNotLeaderReason checks the typed error and its reason.
func wantNotLeaderReason(t *testing.T, l *Lock, reason string) {
	t.Helper()
	_, err := l.Stamp()
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.Reason != reason || nl.Identity != l.Identity() || nl.Lease != l.Describe() {
		t.Fatalf("%s: Stamp() error %#v, want a *NotLeaderError for %s with reason %s", l.Identity(), err, l.Describe(), reason)
	}
}

// TestLockLearnsWhenTheElectorStops: client-go's elector records "stopped
// leading" through the Lock when it gives up renewing (or its context
// ends), and "became leader" when it acquires; Stamp follows both, with no
// callback to wire.
func TestLockLearnsWhenTheElectorStops(t *testing.T) {
	cs := newFakeClient(t)
	l := NewLeaseLock(testNS, testName, "a", cs.CoordinationV1(), nil)
	wantNotLeaderReason(t, l, NotLeaderNotRead)
	if err := l.Create(context.Background(), electionRecord("a", 0, time.Now())); err != nil {
		t.Fatal(err)
	}
	l.RecordEvent("became leader")
	before, err := l.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	// Another process takes the Lease while this one's elector has not run
	// (a paused process): Stamp still reports the stale belief, which is the
	// webhook's to deny.
	other := NewLeaseLock(testNS, testName, "b", cs.CoordinationV1(), nil)
	if _, _, err := other.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := other.Update(context.Background(), electionRecord("b", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	wantStamp(t, l, before)
	l.RecordEvent("stopped leading")
	wantNotLeaderReason(t, l, NotLeaderStopped)
	// The elector acquires again (term 2).
	if _, _, err := l.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background(), electionRecord("a", 2, time.Now())); err != nil {
		t.Fatal(err)
	}
	wantNotLeaderReason(t, l, NotLeaderStopped) // until it records "became leader"
	l.RecordEvent("became leader")
	if _, err := l.Stamp(); err != nil {
		t.Fatal(err)
	}
	// The recorder can be set once the Lock exists, and sees the events.
	rec := record.NewFakeRecorder(1)
	l.SetEventRecorder(rec)
	l.RecordEvent("stopped leading")
	if got := <-rec.Events; got != "Normal LeaderElection a stopped leading" {
		t.Fatalf("event %q", got)
	}
	if err := l.Update(context.Background(), electionRecord("", 0, time.Now())); err != nil {
		t.Fatal(err)
	}
	wantNotLeaderReason(t, l, NotLeaderNoHolder)
	if err := l.Update(context.Background(), electionRecord("b", 3, time.Now())); err != nil {
		t.Fatal(err)
	}
	wantNotLeaderReason(t, l, NotLeaderOtherHolder)
	if !errors.Is(fmt.Errorf("wrapped: %w", func() error { _, err := l.Stamp(); return err }()), ErrNotLeader) {
		t.Fatal("a wrapped *NotLeaderError does not match ErrNotLeader")
	}
}

func TestLockFollowsTheLease(t *testing.T) {
	ctx := context.Background()
	cs := newFakeClient(t)
	a := NewLeaseLock(testNS, testName, "a", cs.CoordinationV1(), nil)
	b := NewLeaseLock(testNS, testName, "b", cs.CoordinationV1(), nil)
	now := time.Now()

	// Nothing seen yet.
	wantNotLeader(t, a)
	if _, ok := a.Observed(); ok {
		t.Fatal("Observed() reports a record before any read")
	}
	if _, _, err := a.Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("Get of a missing Lease = %v, want NotFound", err)
	}
	wantNotLeader(t, a)
	if err := a.Update(ctx, electionRecord("a", 0, now)); err == nil {
		t.Fatal("Update before Get or Create succeeded")
	}

	// Acquire: a creates the Lease in term 0.
	if err := a.Create(ctx, electionRecord("a", 0, now)); err != nil {
		t.Fatal(err)
	}
	uid := string(storedLease(t, cs).UID)
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid, Holder: "a"})
	if o, _ := a.Observed(); !o.OwnWrite || o.Holder != "a" || o.LeaseDurationSeconds != 15 || o.RenewTime.Sub(now).Abs() > time.Millisecond {
		t.Fatalf("after Create: %+v", o)
	}

	// Renew: same term.
	if err := a.Update(ctx, electionRecord("a", 0, now.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid, Holder: "a"})
	if o, _ := a.Observed(); !o.OwnWrite || o.ResourceVersion != storedLease(t, cs).ResourceVersion {
		t.Fatalf("after renew: %+v", o)
	}

	// b reads: not the leader.
	rec, raw, err := b.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.HolderIdentity != "a" || len(raw) == 0 {
		t.Fatalf("b.Get() = %+v, %s", rec, raw)
	}
	wantNotLeader(t, b)
	if o, _ := b.Observed(); o.OwnWrite || o.Holder != "a" {
		t.Fatalf("b after Get: %+v", o)
	}

	// Takeover: b writes itself as holder in term 1. a, which has not read
	// the Lease since, still believes it leads: Stamp reports that belief.
	if err := b.Update(ctx, electionRecord("b", 1, now.Add(20*time.Second))); err != nil {
		t.Fatal(err)
	}
	wantStamp(t, b, Stamp{Term: 1, LeaseUID: uid, Holder: "b"})
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid, Holder: "a"})
	// Once a reads the Lease it knows.
	if _, _, err := a.Get(ctx); err != nil {
		t.Fatal(err)
	}
	wantNotLeader(t, a)
	if _, err := a.Stamp(); err == nil || !contains(err.Error(), `held by "b"`) {
		t.Fatalf("a.Stamp() error = %v, want it to name the holder", err)
	}
	if o, _ := a.Observed(); o.OwnWrite || o.Holder != "b" || o.Term != 1 {
		t.Fatalf("a after takeover: %+v", o)
	}

	// Release: b writes an empty holder; nobody leads.
	if err := b.Update(ctx, resourcelock.LeaderElectionRecord{LeaderTransitions: 1, LeaseDurationSeconds: 1,
		RenewTime: metav1.NewTime(now), AcquireTime: metav1.NewTime(now)}); err != nil {
		t.Fatal(err)
	}
	wantNotLeader(t, b)
	if o, _ := b.Observed(); o.OwnWrite || o.Holder != "" {
		t.Fatalf("b after release: %+v", o)
	}
	if _, _, err := a.Get(ctx); err != nil {
		t.Fatal(err)
	}
	wantNotLeader(t, a)

	// The Lease is deleted and re-created: a new uid, term 0 again.
	if err := cs.CoordinationV1().Leases(testNS).Delete(ctx, testName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("Get = %v, want NotFound", err)
	}
	if err := a.Create(ctx, electionRecord("a", 0, now)); err != nil {
		t.Fatal(err)
	}
	uid2 := string(storedLease(t, cs).UID)
	if uid2 == uid {
		t.Fatal("the re-created Lease kept its uid")
	}
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid2, Holder: "a"})
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// TestLockBehavesLikeLeaseLock drives client-go's LeaseLock and Lock through
// the same calls and compares what each returns and what each stores.
func TestLockBehavesLikeLeaseLock(t *testing.T) {
	ctx := context.Background()
	csRef, csOurs := newFakeClient(t), newFakeClient(t)
	labels := map[string]string{"app": "ctrl"}
	ref := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: testNS, Name: testName},
		Client:     csRef.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: "a"},
		Labels:     labels,
	}
	ours := NewLeaseLock(testNS, testName, "a", csOurs.CoordinationV1(), nil)
	ours.Labels = labels
	now := time.Now()

	same := func(step string, f func(l resourcelock.Interface) (any, error)) {
		t.Helper()
		r1, e1 := f(ref)
		r2, e2 := f(ours)
		if (e1 == nil) != (e2 == nil) || fmt.Sprint(r1) != fmt.Sprint(r2) {
			t.Fatalf("%s: LeaseLock gave %v, %v; Lock gave %v, %v", step, r1, e1, r2, e2)
		}
	}
	get := func(l resourcelock.Interface) (any, error) {
		rec, raw, err := l.Get(ctx)
		return fmt.Sprintf("%+v %s", rec, raw), err
	}
	same("Get of a missing Lease", get)
	same("Create", func(l resourcelock.Interface) (any, error) { return nil, l.Create(ctx, electionRecord("a", 0, now)) })
	same("Get after Create", get)
	rec := electionRecord("a", 0, now.Add(time.Second))
	rec.PreferredHolder = "b"
	rec.Strategy = coordinationv1.OldestEmulationVersion
	same("Update", func(l resourcelock.Interface) (any, error) { return nil, l.Update(ctx, rec) })
	same("Get after Update", get)
	same("Describe", func(l resourcelock.Interface) (any, error) { return l.Describe(), nil })
	same("Identity", func(l resourcelock.Interface) (any, error) { return l.Identity(), nil })
	l1, l2 := storedLease(t, csRef), storedLease(t, csOurs)
	if !reflect.DeepEqual(l1.Spec, l2.Spec) || !reflect.DeepEqual(l1.Labels, l2.Labels) {
		t.Fatalf("stored Leases differ:\nLeaseLock: %+v %v\nLock:      %+v %v", l1.Spec, l1.Labels, l2.Spec, l2.Labels)
	}
}

func TestLockRecordEvent(t *testing.T) {
	cs := newFakeClient(t)
	rec := record.NewFakeRecorder(4)
	l := NewLeaseLock(testNS, testName, "a", cs.CoordinationV1(), rec)
	l.RecordEvent("became leader") // before any read: must not panic
	if err := l.Create(context.Background(), electionRecord("a", 0, time.Now())); err != nil {
		t.Fatal(err)
	}
	l.RecordEvent("stopped leading")
	for _, want := range []string{"Normal LeaderElection a became leader", "Normal LeaderElection a stopped leading"} {
		if got := <-rec.Events; got != want {
			t.Errorf("event %q, want %q", got, want)
		}
	}
	NewLeaseLock(testNS, testName, "a", cs.CoordinationV1(), nil).RecordEvent("x") // no recorder
}

func TestStampFromLease(t *testing.T) {
	holder, term := "a", int32(4)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, UID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseTransitions: &term},
	}
	want := Stamp{Term: 4, LeaseUID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1", Holder: "a"}
	if s, err := StampFromLease(lease); err != nil || s != want {
		t.Fatalf("StampFromLease = %v, %v", s, err)
	}
	if s, err := StampFor(lease, "a"); err != nil || s != want {
		t.Fatalf("StampFor(a) = %v, %v", s, err)
	}
	if _, err := StampFor(lease, "b"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("StampFor(b) = %v, want ErrNotLeader", err)
	}
	lease.Spec.LeaseTransitions = nil
	if s, err := StampFromLease(lease); err != nil || s.Term != 0 {
		t.Fatalf("no leaseTransitions: %v, %v", s, err)
	}
	empty := ""
	lease.Spec.HolderIdentity = &empty
	if _, err := StampFromLease(lease); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("released Lease: %v, want ErrNoHolder", err)
	}
	lease.Spec.HolderIdentity = nil
	if _, err := StampFromLease(lease); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("never held Lease: %v, want ErrNoHolder", err)
	}
	lease.Spec.HolderIdentity = &holder
	lease.UID = ""
	if _, err := StampFromLease(lease); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Lease without uid: %v, want ErrMalformed", err)
	}
	if _, err := StampFromLease(nil); err == nil {
		t.Fatal("StampFromLease(nil) succeeded")
	}
}

// elector runs a real client-go LeaderElector on lock until stop is called.
type elector struct {
	started chan struct{} // closed on OnStartedLeading
	done    chan struct{} // closed when Run has returned
	cancel  context.CancelFunc
}

func runElector(t *testing.T, lock resourcelock.Interface, releaseOnCancel bool) *elector {
	t.Helper()
	e := &elector{started: make(chan struct{}), done: make(chan struct{})}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   time.Second,
		RenewDeadline:   500 * time.Millisecond,
		RetryPeriod:     50 * time.Millisecond,
		ReleaseOnCancel: releaseOnCancel,
		Name:            lock.Identity(),
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(e.started) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		le.Run(ctx)
	}()
	t.Cleanup(e.stop)
	return e
}

func (e *elector) stop() {
	e.cancel()
	<-e.done
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestLockWithLeaderElector runs client-go's elector on Locks and checks that
// Stamp follows what each elector believes, through acquire, renew, release,
// a takeover after expiry, and a stale ex-leader.
func TestLockWithLeaderElector(t *testing.T) {
	cs := newFakeClient(t)
	renewed := make(chan struct{}, 1)
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease); l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "a" {
			select {
			case renewed <- struct{}{}:
			default:
			}
		}
		return false, nil, nil
	})
	a := NewLeaseLock(testNS, testName, "a", cs.CoordinationV1(), nil)
	b := NewLeaseLock(testNS, testName, "b", cs.CoordinationV1(), nil)

	// Stamp from controller goroutines while the electors run (for -race).
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for _, l := range []*Lock{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
					_, _ = l.Stamp()
					_, _ = l.Observed()
				}
			}
		}()
	}
	defer func() { close(quit); wg.Wait() }()

	// a acquires: term 0.
	ea := runElector(t, a, true)
	waitFor(t, ea.started, "a to lead")
	uid := string(storedLease(t, cs).UID)
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid, Holder: "a"})

	// a renews: still term 0.
	for len(renewed) > 0 {
		<-renewed
	}
	waitFor(t, renewed, "a to renew")
	wantStamp(t, a, Stamp{Term: 0, LeaseUID: uid, Holder: "a"})
	if o, _ := a.Observed(); !o.OwnWrite {
		t.Fatalf("after renew: %+v", o)
	}

	// a releases on cancel: an empty holder; a no longer leads.
	ea.stop()
	wantNotLeader(t, a)
	if h := storedLease(t, cs).Spec.HolderIdentity; h == nil || *h != "" {
		t.Fatalf("after release the holder is %v", h)
	}

	// b acquires the released Lease: term 1.
	eb := runElector(t, b, false)
	waitFor(t, eb.started, "b to lead")
	wantStamp(t, b, Stamp{Term: 1, LeaseUID: uid, Holder: "b"})

	// b stops renewing without releasing (as a paused process would). a
	// takes over once the Lease expires: term 2.
	eb.stop()
	ea2 := runElector(t, a, true)
	waitFor(t, ea2.started, "a to take over")
	wantStamp(t, a, Stamp{Term: 2, LeaseUID: uid, Holder: "a"})
	if got := storedLease(t, cs); *got.Spec.HolderIdentity != "a" || *got.Spec.LeaseTransitions != 2 {
		t.Fatalf("stored Lease: %+v", got.Spec)
	}

	// b's elector stopped: Stamp refuses although b's last record named b
	// in term 1.
	wantNotLeaderReason(t, b, NotLeaderStopped)
	// On its next read b sees the new holder.
	if _, _, err := b.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantNotLeaderReason(t, b, NotLeaderOtherHolder)
	ea2.stop()
	wantNotLeader(t, a)
}
