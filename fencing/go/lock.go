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

// ErrNotLeader is returned (wrapped) by Lock.Stamp and StampFor when this
// process's identity is not the holder in the last Lease record it saw.
var ErrNotLeader = errors.New("leasefence: not the leader")

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
}

var _ resourcelock.Interface = (*Lock)(nil)

// NewLeaseLock returns a Lock on the Lease namespace/name for the candidate
// identity (client-go and controller-runtime use "<hostname>_<uuid>"; in a
// pod the hostname is the pod's name, which the webhook's identity check
// relies on). recorder may be nil.
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
// returns an error wrapping ErrNotLeader when that record names another
// holder or none (including after a release), or when no record was seen
// yet.
//
// Stamp reports the elector's belief faithfully, and that belief can be
// stale: a process that was paused still believes it leads until its next
// read of the Lease. That is what leasefence is for: the webhook checks the
// stamp against the live Lease and denies the stale write. Call Stamp just
// before each write (it is cheap) rather than keeping a stamp around, and
// stop writing when the elector's OnStoppedLeading runs.
func (l *Lock) Stamp() (Stamp, error) {
	l.mu.Lock()
	obs, seen := l.obs, l.seen
	l.mu.Unlock()
	if !seen {
		return Stamp{}, fmt.Errorf("%w: Lease %s/%s not read yet", ErrNotLeader, l.namespace, l.name)
	}
	if obs.Holder != l.identity {
		if obs.Holder == "" {
			return Stamp{}, fmt.Errorf("%w: Lease %s/%s has no holder", ErrNotLeader, l.namespace, l.name)
		}
		return Stamp{}, fmt.Errorf("%w: Lease %s/%s is held by %q, not %q", ErrNotLeader, l.namespace, l.name, obs.Holder, l.identity)
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
// resourcelock.LeaseLock.RecordEvent.
func (l *Lock) RecordEvent(s string) {
	if l.recorder == nil {
		return
	}
	l.mu.Lock()
	meta := metav1.ObjectMeta{Namespace: l.namespace, Name: l.name}
	if l.lease != nil {
		meta = *l.lease.ObjectMeta.DeepCopy()
	}
	l.mu.Unlock()
	subject := &coordinationv1.Lease{ObjectMeta: meta}
	subject.Kind = "Lease"
	subject.APIVersion = coordinationv1.SchemeGroupVersion.String()
	l.recorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s", fmt.Sprintf("%v %v", l.identity, s))
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

// StampFor is StampFromLease for the candidate identity: it returns an error
// wrapping ErrNotLeader when lease is not held by identity.
func StampFor(lease *coordinationv1.Lease, identity string) (Stamp, error) {
	if lease == nil {
		return Stamp{}, errors.New("leasefence: no Lease")
	}
	o := observationOf(lease)
	if o.Holder != identity {
		return Stamp{}, fmt.Errorf("%w: Lease %s/%s is held by %q, not %q", ErrNotLeader, lease.Namespace, lease.Name, o.Holder, identity)
	}
	return StampFromLease(lease)
}
