package features

// Coordinated leader election: kube-apiserver runs the election controller
// (pkg/controlplane/controller/leaderelection): it picks the holder among the
// LeaseCandidates and hands the Lease over by setting spec.holderIdentity,
// leaving leaseTransitions as it is. A holder change then does not raise the
// term; the holder, compared in every form of the stamp (the full one, and
// the holder hash of the short fieldManager form), is what tells the old
// tenure from the new one.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// replicaRules: what a coordinated elector and the controller it runs need.
var replicaRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leasecandidates"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/status"}, Verbs: []string{"get", "create", "update", "patch"}},
}

// replica is one controller replica: a service account of the Lease's
// namespace (a token not bound to a pod, so identity binding cannot stand in
// for the stamp), a LeaseCandidate and a coordinated client-go elector.
type replica struct {
	name    string // identity, candidate name and service account
	client  kubernetes.Interface
	leading atomic.Bool
	stop    context.CancelFunc
	done    chan struct{}
}

func startReplica(ctx context.Context, t *testing.T, ns, name, emulationVersion string) *replica {
	t.Helper()
	if _, err := c.CreateServiceAccount(ctx, ns, name, replicaRules); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(c.TokenConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, client: client, done: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	r.stop = cancel
	candidate, _, err := leaderelection.NewCandidate(client, ns, name, "ctrl", "1.36.0", emulationVersion, coordinationv1.OldestEmulationVersion)
	if err != nil {
		t.Fatal(err)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: "ctrl"},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: name},
		},
		LeaseDuration: 4 * time.Second,
		RenewDeadline: 3 * time.Second,
		RetryPeriod:   500 * time.Millisecond,
		Coordinated:   true,
		Name:          name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { r.leading.Store(true) },
			OnStoppedLeading: func() { r.leading.Store(false) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go candidate.Run(rctx)
	go func() {
		defer close(r.done)
		le.Run(rctx)
	}()
	t.Cleanup(func() { r.stop(); <-r.done })
	return r
}

// waitHolder waits until Lease ns/ctrl is held by holder and holder's
// elector leads, and returns the Lease.
func waitHolder(ctx context.Context, t *testing.T, ns string, r *replica, timeout time.Duration) *coordinationv1.Lease {
	t.Helper()
	var l *coordinationv1.Lease
	err := cluster.Poll(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		var err error
		l, err = c.Client.CoordinationV1().Leases(ns).Get(ctx, "ctrl", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return ptr.Deref(l.Spec.HolderIdentity, "") == r.name && r.leading.Load(),
			fmt.Sprintf("holder %q, term %d, preferred %q, %s leading %v", ptr.Deref(l.Spec.HolderIdentity, ""),
				ptr.Deref(l.Spec.LeaseTransitions, 0), ptr.Deref(l.Spec.PreferredHolder, ""), r.name, r.leading.Load()), nil
	})
	if err != nil {
		t.Fatalf("Lease %s/ctrl never held by a leading %s: %v", ns, r.name, err)
	}
	return l
}

func stampOf(t *testing.T, l *coordinationv1.Lease) fencing.Stamp {
	t.Helper()
	s, err := fencing.StampFromLease(l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deployment(s fencing.Stamp) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shared", Annotations: map[string]string{
			harness.AnnotationLease: "ctrl", harness.AnnotationStamp: s.String(),
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shared"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shared"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

// stampDeployment is the main-resource write of a helper: the stamp on the
// object and in fieldManager.
func stampDeployment(ctx context.Context, client kubernetes.Interface, ns string, s fencing.Stamp, value string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,"value":%q}}}`, harness.AnnotationStamp, s.String(), value)
	_, err := client.AppsV1().Deployments(ns).Patch(ctx, "shared", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: s.FieldManager()})
	return err
}

// writeStatus is a /status write; its only stamp is fieldManager.
func writeStatus(ctx context.Context, client kubernetes.Interface, ns, fieldManager string, generation int64) error {
	patch := fmt.Sprintf(`{"status":{"observedGeneration":%d}}`, generation)
	_, err := client.AppsV1().Deployments(ns).Patch(ctx, "shared", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: fieldManager}, "status")
	return err
}

func wantDenied(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "leasefence denied") || !strings.Contains(err.Error(), "("+reason+")") {
		t.Errorf("%s: want leasefence's denial (%s), got %v", what, reason, err)
		return
	}
	t.Logf("%s: %v", what, err)
}

func wantAdmitted(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want admitted, got %v", what, err)
	}
}

// TestCoordinatedHandover: two replicas of a controller elect through
// coordinated leader election. The first, alone, is elected; it stamps a
// protected Deployment. The second joins with an older emulation version,
// which the election strategy (OldestEmulationVersion) prefers: the
// election controller marks the Lease's preferredHolder, the first holder's
// elector stops renewing ("end of term"), and once its Lease has expired
// the controller sets the second as holder. The term (leaseTransitions)
// does not change; the holder does.
//
// Then the ex-holder's in-flight writes, as it would send them, are denied
// NotHolder: a write to the Deployment and one to its /status. Twice: with
// short identities, whose full stamp fits fieldManager, and with long ones
// (as the names of kubebuilder projects' Deployments make them), for which
// the helper sends the short form (holder hash). The new holder's writes
// are admitted.
func TestCoordinatedHandover(t *testing.T) {
	for _, tc := range []struct {
		name, ns, suffix string
		short            bool // the fieldManager stamp is the short form
	}{
		{"full stamp", "coordinated-full", "", false},
		{"short form", "coordinated-short", "-" + strings.Repeat("x", 100), true},
	} {
		t.Run(tc.name, func(t *testing.T) { coordinatedHandover(t, tc.ns, tc.suffix, tc.short) })
	}
}

func coordinatedHandover(t *testing.T, ns, suffix string, short bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	// LeaseCandidate names are the holder identities: DNS names.
	a := startReplica(ctx, t, ns, "replica-a"+suffix, "1.36.0")
	la := waitHolder(ctx, t, ns, a, time.Minute)
	stampA := stampOf(t, la)
	if isShort := stampA.FieldManager() != stampA.String(); isShort != short {
		t.Fatalf("fieldManager stamp %q: short form %v, want %v", stampA.FieldManager(), isShort, short)
	}
	t.Logf("elected %s in term %d; its fieldManager stamp is %q", a.name, stampA.Term, stampA.FieldManager())
	if _, err := a.client.AppsV1().Deployments(ns).Create(ctx, deployment(stampA), metav1.CreateOptions{FieldManager: stampA.FieldManager()}); err != nil {
		t.Fatalf("the holder creates the protected Deployment: %v", err)
	}
	wantAdmitted(t, "the holder's status write", writeStatus(ctx, a.client, ns, stampA.FieldManager(), 1))

	// The second replica joins; the election controller hands over.
	start := time.Now()
	b := startReplica(ctx, t, ns, "replica-b"+suffix, "1.35.0")
	lb := waitHolder(ctx, t, ns, b, 2*time.Minute)
	stampB := stampOf(t, lb)
	t.Logf("handed over to %s in %v: term %d (was %d)", b.name, time.Since(start).Round(time.Millisecond), stampB.Term, stampA.Term)
	if stampB.Term != stampA.Term || stampB.LeaseUID != stampA.LeaseUID {
		t.Fatalf("the handover changed the term or the Lease: %v, was %v", stampB, stampA)
	}
	if a.leading.Load() {
		t.Errorf("the ex-holder's elector still leads")
	}

	wantAdmitted(t, "the new holder's write", stampDeployment(ctx, b.client, ns, stampB, "b"))
	wantAdmitted(t, "the new holder's status write", writeStatus(ctx, b.client, ns, stampB.FieldManager(), 2))
	wantDenied(t, "the ex-holder's write, same term", stampDeployment(ctx, a.client, ns, stampA, "a"), "NotHolder")
	wantDenied(t, "the ex-holder's status write, same term", writeStatus(ctx, a.client, ns, stampA.FieldManager(), 3), "NotHolder")
}
