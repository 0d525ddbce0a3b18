package fencing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	fencing "leasefence.io/fencing/go"
)

// writerRules let a test controller write everything the tests protect.
func writerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/status"}, Verbs: []string{"*"}},
		{APIGroups: []string{cluster.WidgetGVR.Group}, Resources: []string{"widgets", "widgets/status"}, Verbs: []string{"*"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch"}},
	}
}

// env is one namespace with a Lease "ctrl" that the test drives directly as
// the admin (faster and more precise than electors), and pod identities that
// write as the holder would.
type env struct {
	t   *testing.T
	ctx context.Context
	ns  string
}

func newEnv(t *testing.T, ns string) *env {
	ctx := testCtx(t, 3*time.Minute)
	if _, err := cp.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, ns: ns}
}

// pod creates a pod identity named name that may write the protected kinds.
func (e *env) pod(name string) (*cluster.PodIdentity, dynamic.Interface) {
	e.t.Helper()
	id, err := cp.NewPodIdentity(e.ctx, e.ns, name, name, writerRules(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(id.Config)
	if err != nil {
		e.t.Fatal(err)
	}
	return id, dyn
}

// setLease makes holder the holder of Lease ctrl in term, renewed now with a
// 30 s duration (so it does not expire during a test), creating the Lease if
// needed. It returns the holder's current stamp.
func (e *env) setLease(holder string, term int32) fencing.Stamp {
	return e.setLeaseAt(holder, term, time.Now(), 30)
}

func (e *env) setLeaseAt(holder string, term int32, renew time.Time, durationSeconds int32) fencing.Stamp {
	e.t.Helper()
	leases := cp.Client.CoordinationV1().Leases(e.ns)
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(holder),
		LeaseDurationSeconds: ptr.To(durationSeconds),
		AcquireTime:          &metav1.MicroTime{Time: renew},
		RenewTime:            &metav1.MicroTime{Time: renew},
		LeaseTransitions:     ptr.To(term),
	}
	l, err := leases.Get(e.ctx, "ctrl", metav1.GetOptions{})
	if err == nil {
		l.Spec = spec
		l, err = leases.Update(e.ctx, l, metav1.UpdateOptions{})
	} else {
		l, err = leases.Create(e.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "ctrl"}, Spec: spec}, metav1.CreateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := fencing.StampFromLease(l)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// admitted fails the test when err is not nil.
func admitted(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want admitted, got %v", what, err)
	}
}

// denied fails the test unless err is leasefence's denial with reason.
func denied(t *testing.T, what string, err error, reason string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: admitted, want denied (%s)", what, reason)
	case !strings.Contains(err.Error(), "denied the request") || !strings.Contains(err.Error(), "leasefence"):
		t.Errorf("%s: want leasefence's denial (%s), got %v", what, reason, err)
	case !strings.Contains(err.Error(), "("+reason+")"):
		t.Errorf("%s: want reason %s, got %v", what, reason, err)
	}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func nowMinus(seconds int) time.Time { return time.Now().Add(-time.Duration(seconds) * time.Second) }
