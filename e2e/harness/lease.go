package harness

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"leasefence.io/e2e/cluster"
)

// LeaseRecord is one version of a Lease as the watch delivered it.
type LeaseRecord struct {
	RV          int64 // metadata.resourceVersion (an etcd revision here)
	UID         string
	Holder      string
	Term        int32 // spec.leaseTransitions
	Duration    time.Duration
	AcquireTime time.Time
	RenewTime   time.Time
	Observed    time.Time // this process's clock when the event arrived
	Deleted     bool
}

// LeaseHistory records every version of one Lease from the moment it is
// started, through a watch (renewals included).
type LeaseHistory struct {
	mu     sync.Mutex
	recs   []LeaseRecord
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchLease starts recording Lease ns/name.
func WatchLease(ctx context.Context, client kubernetes.Interface, ns, name string) (*LeaseHistory, error) {
	ctx, cancel := context.WithCancel(ctx)
	h := &LeaseHistory{cancel: cancel, done: make(chan struct{})}
	leases := client.CoordinationV1().Leases(ns)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	// list records the Lease as it is now and returns the revision to watch
	// from.
	list := func() (string, error) {
		list, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			h.add(&list.Items[i], false)
		}
		return list.ResourceVersion, nil
	}
	rv, err := list()
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(h.done)
		for ctx.Err() == nil {
			if rv == "" {
				// The revision was lost (410 Gone: a restarted API server's
				// watch cache begins at the revision it started from).
				// Listing again records the Lease as it is now; versions
				// committed in between are missed, which can only make the
				// history older than the truth for a moment.
				var err error
				if rv, err = list(); err != nil {
					rv = ""
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			w, err := leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					rv = ""
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					rv = ""
					break
				}
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					continue
				}
				rv = l.ResourceVersion
				switch ev.Type {
				case watch.Added, watch.Modified:
					h.add(l, false)
				case watch.Deleted:
					h.add(l, true)
				}
			}
			w.Stop()
		}
	}()
	return h, nil
}

func (h *LeaseHistory) add(l *coordinationv1.Lease, deleted bool) {
	r := LeaseRecord{UID: string(l.UID), Observed: time.Now(), Deleted: deleted}
	r.RV, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
	if l.Spec.HolderIdentity != nil {
		r.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		r.Term = *l.Spec.LeaseTransitions
	}
	if l.Spec.LeaseDurationSeconds != nil {
		r.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	if l.Spec.AcquireTime != nil {
		r.AcquireTime = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		r.RenewTime = l.Spec.RenewTime.Time
	}
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
}

// Stop ends the watch.
func (h *LeaseHistory) Stop() {
	h.cancel()
	<-h.done
}

// Records returns a copy of what was recorded, oldest first.
func (h *LeaseHistory) Records() []LeaseRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LeaseRecord(nil), h.recs...)
}

// Latest returns the newest record.
func (h *LeaseHistory) Latest() (LeaseRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) == 0 {
		return LeaseRecord{}, false
	}
	return h.recs[len(h.recs)-1], true
}

// WaitFor polls until the newest record satisfies cond and returns it.
func (h *LeaseHistory) WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(LeaseRecord) bool) (LeaseRecord, error) {
	var got LeaseRecord
	err := cluster.Poll(ctx, timeout, 20*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		r, ok := h.Latest()
		if ok && cond(r) {
			got = r
			return true, "", nil
		}
		return false, fmt.Sprintf("waiting for Lease: %s; latest %+v", what, r), nil
	})
	return got, err
}

// AtRV returns the Lease as it stood at etcd revision rv: the newest record
// with RV <= rv. The Lease and the objects written under it live in the same
// etcd, whose one revision counter orders every write; resourceVersions are
// those revisions (an assumption about kube-apiserver's etcd3 storage that
// holds for v1.36, not a documented API guarantee).
func (h *LeaseHistory) AtRV(rv int64) (LeaseRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best LeaseRecord
	found := false
	for _, r := range h.recs {
		if r.RV <= rv && (!found || r.RV > best.RV) {
			best, found = r, true
		}
	}
	return best, found
}

// AtTime returns the newest record observed at or before t.
func (h *LeaseHistory) AtTime(t time.Time) (LeaseRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best LeaseRecord
	found := false
	for _, r := range h.recs {
		if !r.Observed.After(t) {
			best, found = r, true
		}
	}
	return best, found
}

// NextChange returns the first record of recs after r (by resourceVersion)
// with another holder or term: when the Lease next changed hands. The trials
// use it to tell a current holder's write denied because the Lease changed
// while the request was in flight from one denied wrongly.
func NextChange(recs []LeaseRecord, r LeaseRecord) (LeaseRecord, bool) {
	for _, n := range recs {
		if n.RV > r.RV && (n.Holder != r.Holder || n.Term != r.Term) {
			return n, true
		}
	}
	return LeaseRecord{}, false
}

// ShortIdentity is a holder identity without its "_<uuid>" part, for logs.
func ShortIdentity(identity string) string {
	if i := strings.IndexByte(identity, '_'); i > 0 {
		return identity[:i]
	}
	return identity
}
