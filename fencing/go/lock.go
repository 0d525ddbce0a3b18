package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ErrNotLeader matches (errors.Is) every *NotLeaderError: Lock.Stamp and
// StampFor return one when this process must not write as the leader.
var ErrNotLeader = errors.New("leasefence: not the leader")

// NotLeaderError says why this process may not write as the leader of a
// Lease. errors.Is(err, ErrNotLeader) is true for it; errors.As gives the
// details.
type NotLeaderError struct {
	// Lease is "<namespace>/<name>".
	Lease string
	// Identity is this process's candidate identity.
	Identity string
	// Holder is the holder in the last record seen ("" for none).
	Holder string
	// Reason is one of the NotLeader* constants.
	Reason string
}

// Reasons of a NotLeaderError.
const (
	// NotLeaderNotRead: the Lease was not read yet.
	NotLeaderNotRead = "NotRead"
	// NotLeaderNoHolder: the last record has no holder (never held, or
	// released).
	NotLeaderNoHolder = "NoHolder"
	// NotLeaderOtherHolder: the last record names another holder.
	NotLeaderOtherHolder = "OtherHolder"
	// NotLeaderStopped: the elector stopped leading (it gave up renewing, or
	// its context ended) and has not become leader again.
	NotLeaderStopped = "StoppedLeading"
)

func (e *NotLeaderError) Error() string {
	switch e.Reason {
	case NotLeaderNotRead:
		return fmt.Sprintf("%v: Lease %s not read yet", ErrNotLeader, e.Lease)
	case NotLeaderNoHolder:
		return fmt.Sprintf("%v: Lease %s has no holder", ErrNotLeader, e.Lease)
	case NotLeaderStopped:
		return fmt.Sprintf("%v: the elector of %q stopped leading Lease %s", ErrNotLeader, e.Identity, e.Lease)
	default:
		return fmt.Sprintf("%v: Lease %s is held by %q, not %q", ErrNotLeader, e.Lease, e.Holder, e.Identity)
	}
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ErrNoHolder is returned (wrapped) by StampFromLease for a Lease without a
// holder (never acquired, or released).
var ErrNoHolder = errors.New("leasefence: the Lease has no holder")

// Lock is a resourcelock.Interface for client-go's leader elector
// (leaderelection.LeaderElectionConfig.Lock) on a coordination.k8s.io/v1
// Lease. It behaves exactly like client-go's resourcelock.LeaseLock, and in
// addition remembers, from every successful Get, Create and Update, the
// Lease's uid, holder and leaseTransitions, so that Stamp can tell which term
// the elector believes this process holds.
//
// A Lock is safe for concurrent use: the elector drives it from its own
// goroutine while controller goroutines call Stamp and Observed.
type Lock struct {
	namespace, name string
	identity        string
	client          coordinationv1client.LeasesGetter
	recorder        resourcelock.EventRecorder

	// Labels, when set before the elector starts, are put on the Lease when
	// this process creates or updates it, as resourcelock.LeaseLock's Labels.
	Labels map[string]string

	mu    sync.Mutex
	lease *coordinationv1.Lease // as last returned by the API server
	obs   Observation
	seen  bool
	// stopped is set when the elector records "stopped leading" and cleared
	// when it records "became leader": client-go's elector calls
	// RecordEvent with exactly these texts (tools/leaderelection), which is
	// how the Lock learns that the elector gave up without a callback.
	stopped bool
}

var _ resourcelock.Interface = (*Lock)(nil)

// NewLeaseLock returns a Lock on the Lease namespace/name for the candidate
// identity (client-go and controller-runtime use "<hostname>_<uuid>"; in a
// pod the hostname is the pod's name, which the webhook's identity check
// relies on). recorder may be nil, and can be set later with
// SetEventRecorder.
func NewLeaseLock(namespace, name, identity string, client coordinationv1client.LeasesGetter, recorder resourcelock.EventRecorder) *Lock {
	return &Lock{namespace: namespace, name: name, identity: identity, client: client, recorder: recorder}
}

// Observation is what a Lock last saw of its Lease.
type Observation struct {
	// LeaseUID is the Lease's metadata.uid.
	LeaseUID string
	// ResourceVersion is the Lease's metadata.resourceVersion.
	ResourceVersion string
	// Holder is spec.holderIdentity ("" when released or never held).
	Holder string
	// Term is spec.leaseTransitions (0 when absent).
	Term int32
	// LeaseDurationSeconds is spec.leaseDurationSeconds (0 when absent).
	LeaseDurationSeconds int32
	// RenewTime is spec.renewTime (zero when absent).
	RenewTime time.Time
	// OwnWrite is true when this record came from this process's own
	// acquire or renew (a successful Create or Update naming its identity),
	// false when it came from a Get or from a release.
	OwnWrite bool
	// ObservedAt is this process's clock when the record was seen.
	ObservedAt time.Time
}

// Observed returns what the Lock last saw of the Lease, and false when it
// has not seen it yet.
func (l *Lock) Observed() (Observation, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.obs, l.seen
}

// Stamp returns the stamp of the term this process believes it holds: the
// Lease uid and leaseTransitions of the last record the elector read or
// wrote through this Lock, with this process's identity as holder. It
// returns a *NotLeaderError (errors.Is(err, ErrNotLeader)) when no record
// was seen yet, when that record names another holder or none (including
// after a release), or when the elector stopped leading: client-go's elector
// gives up once it could not renew within its renew deadline, and records
// "stopped leading" through this Lock; from then on Stamp refuses until the
// elector records "became leader" again.
//
// Stamp reports the elector's belief faithfully, and that belief can be
// stale: a process that was paused still believes it leads until its
// elector runs again. That is what leasefence is for: the webhook checks the
// stamp against the live Lease and denies the stale write. Call Stamp just
// before each write (it is cheap) rather than keeping a stamp around.
func (l *Lock) Stamp() (Stamp, error) {
	l.mu.Lock()
	obs, seen, stopped := l.obs, l.seen, l.stopped
	l.mu.Unlock()
	nl := &NotLeaderError{Lease: l.Describe(), Identity: l.identity, Holder: obs.Holder}
	switch {
	case !seen:
		nl.Reason = NotLeaderNotRead
		return Stamp{}, nl
	case obs.Holder == "":
		nl.Reason = NotLeaderNoHolder
		return Stamp{}, nl
	case obs.Holder != l.identity:
		nl.Reason = NotLeaderOtherHolder
		return Stamp{}, nl
	case stopped:
		nl.Reason = NotLeaderStopped
		return Stamp{}, nl
	}
	s := Stamp{Term: obs.Term, LeaseUID: obs.LeaseUID, Holder: l.identity}
	if err := s.Validate(); err != nil {
		return Stamp{}, fmt.Errorf("leasefence: Lease %s/%s gives no valid stamp: %w", l.namespace, l.name, err)
	}
	return s, nil
}

// observe records lease as the last record seen. own says whether it came
// from this process's own Create or Update.
func (l *Lock) observe(lease *coordinationv1.Lease, own bool) {
	obs := observationOf(lease)
	obs.OwnWrite = own && obs.Holder == l.identity
	obs.ObservedAt = time.Now()
	l.mu.Lock()
	l.lease = lease
	l.obs = obs
	l.seen = true
	l.mu.Unlock()
}

func observationOf(lease *coordinationv1.Lease) Observation {
	o := Observation{LeaseUID: string(lease.UID), ResourceVersion: lease.ResourceVersion}
	if h := lease.Spec.HolderIdentity; h != nil {
		o.Holder = *h
	}
	if t := lease.Spec.LeaseTransitions; t != nil {
		o.Term = *t
	}
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		o.LeaseDurationSeconds = *d
	}
	if r := lease.Spec.RenewTime; r != nil {
		o.RenewTime = r.Time
	}
	return o
}

// Get reads the Lease and returns its election record, as
// resourcelock.LeaseLock.Get.
func (l *Lock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	lease, err := l.client.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.observe(lease, false)
	record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	recordBytes, err := json.Marshal(*record)
	if err != nil {
		return nil, nil, err
	}
	return record, recordBytes, nil
}

// Create creates the Lease with the record, as
// resourcelock.LeaseLock.Create.
func (l *Lock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      l.name,
			Namespace: l.namespace,
			Labels:    l.Labels,
		},
		Spec: resourcelock.LeaderElectionRecordToLeaseSpec(&ler),
	}
	created, err := l.client.Leases(l.namespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.observe(created, true)
	return nil
}

// Update writes the record into the Lease last read or written, as
// resourcelock.LeaseLock.Update.
func (l *Lock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	cur := l.lease
	l.mu.Unlock()
	if cur == nil {
		return errors.New("lease not initialized, call get or create first")
	}
	lease := cur.DeepCopy()
	lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&ler)
	if l.Labels != nil {
		if lease.Labels == nil {
			lease.Labels = map[string]string{}
		}
		for k, v := range l.Labels {
			lease.Labels[k] = v
		}
	}
	updated, err := l.client.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.observe(updated, true)
	return nil
}

// RecordEvent records a leader election event on the Lease, as
// resourcelock.LeaseLock.RecordEvent. client-go's elector calls it with
// "became leader" after acquiring and "stopped leading" when it gives up;
// the Lock follows both (see Stamp) whether or not it has a recorder.
func (l *Lock) RecordEvent(s string) {
	l.mu.Lock()
	switch s {
	case "stopped leading":
		l.stopped = true
	case "became leader":
		l.stopped = false
	}
	recorder := l.recorder
	meta := metav1.ObjectMeta{Namespace: l.namespace, Name: l.name}
	if l.lease != nil {
		meta = *l.lease.ObjectMeta.DeepCopy()
	}
	l.mu.Unlock()
	if recorder == nil {
		return
	}
	subject := &coordinationv1.Lease{ObjectMeta: meta}
	subject.Kind = "Lease"
	subject.APIVersion = coordinationv1.SchemeGroupVersion.String()
	recorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s", fmt.Sprintf("%v %v", l.identity, s))
}

// SetEventRecorder sets (or, with nil, removes) the recorder of leader
// election events, for a recorder that exists only after the Lock (a
// controller-runtime manager's, say). Safe to call while the elector runs.
func (l *Lock) SetEventRecorder(recorder resourcelock.EventRecorder) {
	l.mu.Lock()
	l.recorder = recorder
	l.mu.Unlock()
}

// Describe returns "<namespace>/<name>" of the Lease.
func (l *Lock) Describe() string {
	return fmt.Sprintf("%v/%v", l.namespace, l.name)
}

// Identity returns this candidate's identity.
func (l *Lock) Identity() string {
	return l.identity
}

// StampFromLease returns the stamp of lease's current holder: its uid,
// spec.leaseTransitions and spec.holderIdentity. It is for controllers that
// read the Lease themselves; such a controller must also check that the
// holder is itself (StampFor does). It returns an error wrapping ErrNoHolder
// for a Lease without a holder.
func StampFromLease(lease *coordinationv1.Lease) (Stamp, error) {
	if lease == nil {
		return Stamp{}, errors.New("leasefence: no Lease")
	}
	o := observationOf(lease)
	if o.Holder == "" {
		return Stamp{}, fmt.Errorf("%w: Lease %s/%s", ErrNoHolder, lease.Namespace, lease.Name)
	}
	s := Stamp{Term: o.Term, LeaseUID: o.LeaseUID, Holder: o.Holder}
	if err := s.Validate(); err != nil {
		return Stamp{}, fmt.Errorf("leasefence: Lease %s/%s gives no valid stamp: %w", lease.Namespace, lease.Name, err)
	}
	return s, nil
}

// StampFor is StampFromLease for the candidate identity: it returns a
// *NotLeaderError when lease is not held by identity.
func StampFor(lease *coordinationv1.Lease, identity string) (Stamp, error) {
	if lease == nil {
		return Stamp{}, errors.New("leasefence: no Lease")
	}
	o := observationOf(lease)
	if o.Holder != identity {
		reason := NotLeaderOtherHolder
		if o.Holder == "" {
			reason = NotLeaderNoHolder
		}
		return Stamp{}, &NotLeaderError{Lease: lease.Namespace + "/" + lease.Name, Identity: identity, Holder: o.Holder, Reason: reason}
	}
	return StampFromLease(lease)
}
