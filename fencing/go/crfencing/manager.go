// Package crfencing fences a controller-runtime manager's writes with
// leasefence: every write the manager's client makes to a protected object
// carries the stamp of the term the manager's leader election holds, in the
// request itself (fieldManager) and, for main-resource writes, on the
// object (the leasefence.io/stamp annotation). The leasefence webhook then
// denies the writes of a stale ex-leader.
//
// In a kubebuilder main.go, replace ctrl.NewManager with NewManager:
//
//	mgr, err := crfencing.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
//		LeaderElection:   true,
//		LeaderElectionID: "my-operator.example.com",
//		...
//	})
//
// and keep everything else: reconcilers built with mgr.GetClient() stamp
// every Create, Update, Patch (merge, JSON, strategic merge, apply), Apply,
// Delete, DeleteAllOf, Status() and SubResource() write, with no call per
// write.
//
// This package is a Go module of its own (leasefence.io/fencing/go/crfencing)
// so that client-go-only users of leasefence.io/fencing/go do not depend on
// controller-runtime.
package crfencing

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	fencing "leasefence.io/fencing/go"
)

// controller-runtime's defaults for the manager's leader election
// (pkg/manager: defaultRenewDeadline).
const defaultRenewDeadline = 10 * time.Second

// NewManager is ctrl.NewManager with the manager's writes fenced:
//
//   - the leader-election lock is a *fencing.Lock built by NewLock, so the
//     manager elects exactly as it would on its own (same Lease, identity,
//     client settings) while the Lock remembers the Lease's uid and term;
//   - its leader-election events go to the manager's event recorder, as
//     controller-runtime's own lock's do;
//   - the manager's client (mgr.GetClient(), and every client built by
//     opts.NewClient) is wrapped by Fence.Client;
//   - the manager's logger (opts.Logger, opts.Controller.Logger) reports a
//     reconcile that failed only because this process does not lead as a
//     V(1) message instead of a "Reconciler error" (see QuietNotLeader).
//
// opts.LeaderElection must be true, and opts.LeaderElectionResourceLock ""
// or "leases" (leasefence fences with a Lease); an
// opts.LeaderElectionResourceLockInterface is refused, since the manager
// would elect on it instead of the Lock.
func NewManager(cfg *rest.Config, opts manager.Options) (manager.Manager, *Fence, error) {
	if opts.LeaderElectionResourceLockInterface != nil {
		return nil, nil, errors.New("leasefence: NewManager builds the leader-election lock itself; leave LeaderElectionResourceLockInterface unset")
	}
	lock, err := NewLock(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	fence := New(lock)
	opts.LeaderElectionResourceLockInterface = lock
	newClient := opts.NewClient
	if newClient == nil {
		newClient = client.New
	}
	opts.NewClient = func(config *rest.Config, o client.Options) (client.Client, error) {
		c, err := newClient(config, o)
		if err != nil {
			return nil, err
		}
		return fence.Client(c), nil
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = log.Log // the manager's own default
	}
	opts.Logger = QuietNotLeader(opts.Logger)
	if opts.Controller.Logger.GetSink() != nil {
		opts.Controller.Logger = QuietNotLeader(opts.Controller.Logger)
	}
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	// controller-runtime gives its own lock the recorder
	// GetEventRecorderFor(identity) of the manager's provider.
	lock.SetEventRecorder(mgr.GetEventRecorderFor(lock.Identity())) //nolint:staticcheck // the recorder controller-runtime's own lock uses
	return mgr, fence, nil
}

// NewLock builds the manager's leader-election lock from a rest.Config and
// the manager's options, exactly as controller-runtime builds its own: it
// calls controller-runtime's leaderelection.NewResourceLock (the Lease
// opts.LeaderElectionID in opts.LeaderElectionNamespace, which defaults to
// the pod's namespace when running in a cluster; the identity
// "<hostname>_<uuid>"; a client with the user agent suffix
// "leader-election" and a per-request timeout of max(RenewDeadline/2, 1s);
// opts.LeaderElectionLabels on the Lease), on opts.LeaderElectionConfig when
// set, and returns the same settings as a *fencing.Lock.
//
// The returned Lock has no event recorder; NewManager gives it the
// manager's. Set one with Lock.SetEventRecorder when using NewLock alone
// (as opts.LeaderElectionResourceLockInterface).
func NewLock(cfg *rest.Config, opts manager.Options) (*fencing.Lock, error) {
	if !opts.LeaderElection {
		return nil, errors.New("leasefence: fencing needs leader election: set LeaderElection to true")
	}
	if k := opts.LeaderElectionResourceLock; k != "" && k != resourcelock.LeasesResourceLock {
		return nil, fmt.Errorf("leasefence: LeaderElectionResourceLock %q: fencing needs a Lease (%q)", k, resourcelock.LeasesResourceLock)
	}
	leaderConfig := cfg
	if opts.LeaderElectionConfig != nil {
		leaderConfig = opts.LeaderElectionConfig
	}
	renewDeadline := defaultRenewDeadline
	if opts.RenewDeadline != nil {
		renewDeadline = *opts.RenewDeadline
	}
	rl, err := leaderelection.NewResourceLock(rest.CopyConfig(leaderConfig), noRecorder{}, leaderelection.Options{
		LeaderElection:             true,
		LeaderElectionResourceLock: resourcelock.LeasesResourceLock,
		LeaderElectionID:           opts.LeaderElectionID,
		LeaderElectionNamespace:    opts.LeaderElectionNamespace,
		RenewDeadline:              renewDeadline,
		LeaderLabels:               opts.LeaderElectionLabels,
	})
	if err != nil {
		return nil, err
	}
	ll, ok := rl.(*resourcelock.LeaseLock)
	if !ok {
		return nil, fmt.Errorf("leasefence: controller-runtime built a %T, not a Lease lock", rl)
	}
	lock := fencing.NewLeaseLock(ll.LeaseMeta.Namespace, ll.LeaseMeta.Name, ll.LockConfig.Identity, ll.Client, nil)
	lock.Labels = ll.Labels
	return lock, nil
}

// noRecorder is the recorder.Provider given to NewResourceLock, which asks
// it only for GetEventRecorderFor; the real recorder is set on the Lock
// once the manager exists. Embedding the interface keeps this type a
// Provider across controller-runtime versions whose other methods differ.
type noRecorder struct{ recorder.Provider }

func (noRecorder) GetEventRecorderFor(string) record.EventRecorder { return nil }
