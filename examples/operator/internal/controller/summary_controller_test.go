package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgofake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fencing "leasefence.io/fencing/go"
	"leasefence.io/fencing/go/crfencing"
)

// TestSummaryWritesAreStamped reconciles an input twice through the fenced
// client (as the manager from crfencing.NewManager gives it) and checks
// that the reconciler's plain Create and MergeFrom patch reach the API with
// the stamp in fieldManager and on the summary.
func TestSummaryWritesAreStamped(t *testing.T) {
	ctx := context.Background()
	cs := clientgofake.NewClientset(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "op", UID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1"}})
	lock := fencing.NewLeaseLock("ops", "op", "op-a_1", cs.CoordinationV1(), nil)
	if _, _, err := lock.Get(ctx); err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now())
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "op-a_1", LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now, LeaderTransitions: 2}); err != nil {
		t.Fatal(err)
	}
	lock.RecordEvent("became leader")
	s, err := lock.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	input := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "in", UID: "u1", Labels: map[string]string{InputLabel: "true"}}, Data: map[string]string{"a": "1"}}
	var managers []string
	inner := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(input).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			managers = append(managers, (&client.CreateOptions{}).ApplyOptions(opts).FieldManager)
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			managers = append(managers, (&client.PatchOptions{}).ApplyOptions(opts).FieldManager)
			if data, _ := patch.Data(obj); !strings.Contains(string(data), s.String()) {
				t.Errorf("patch %s without the stamp", data)
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}).Build()
	r := &SummaryReconciler{Client: crfencing.New(lock).Client(inner), Scheme: scheme.Scheme, Lease: lock.Describe()}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(input)}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	input.Data["b"] = "2"
	if err := inner.Update(ctx, input); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if len(managers) != 2 || managers[0] != s.FieldManager() || managers[1] != s.FieldManager() {
		t.Fatalf("fieldManagers %q, want the create and the patch stamped %q", managers, s.FieldManager())
	}
	summary := &corev1.ConfigMap{}
	if err := inner.Get(ctx, client.ObjectKey{Namespace: "ops", Name: "in" + SummarySuffix}, summary); err != nil {
		t.Fatal(err)
	}
	if summary.Annotations[fencing.AnnotationStamp] != s.String() || summary.Annotations[fencing.AnnotationLease] != "ops/op" || summary.Data["keys"] != "2" {
		t.Fatalf("summary %v %v", summary.Annotations, summary.Data)
	}
}
