package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigEnv names a kubeconfig of a test cluster (cluster admin). When it
// is set, TestAPIServer checks the helper against that real API server, for
// example the control plane of e2e/cmd/lfcluster:
//
//	LEASEFENCE_KUBECONFIG=/tmp/cp/kubeconfig go test -run TestAPIServer -v ./...
//
// It creates a namespace of its own and deletes it at the end.
const kubeconfigEnv = "LEASEFENCE_KUBECONFIG"

// TestAPIServer checks, against a real kube-apiserver without the webhook,
// what the helper relies on: the Lease uid the Lock remembers, every kind of
// stamped write landing where the webhook will read it, fieldManager values
// the API server accepts, status apply needing Force across terms, and the
// two-step delete.
func TestAPIServer(t *testing.T) {
	path := os.Getenv(kubeconfigEnv)
	if path == "" {
		t.Skipf("set %s to a test cluster's kubeconfig to run this test", kubeconfigEnv)
	}
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(config)
	dyn := dynamic.NewForConfigOrDie(config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ns := "lfgo-" + string(uuid.NewUUID())[:8]
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})

	// Leader election on the real API server.
	identity := "ctrl-a_" + string(uuid.NewUUID())
	lock := NewLeaseLock(ns, "ctrl", identity, cs.CoordinationV1(), nil)
	e := runElector(t, lock, true)
	waitFor(t, e.started, "the elector to lead")
	s, err := lock.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, "ctrl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want, err := StampFor(lease, identity); err != nil || s != want {
		t.Fatalf("lock.Stamp() = %v, the Lease gives %v, %v", s, want, err)
	}
	if s.LeaseUID != string(lease.UID) || s.Term != 0 {
		t.Fatalf("stamp %v for Lease uid %s", s, lease.UID)
	}

	cms := cs.CoreV1().ConfigMaps(ns)
	wantAnnotation := func(name string, want Stamp) *corev1.ConfigMap {
		t.Helper()
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := cm.Annotations[AnnotationStamp]; got != want.String() {
			t.Fatalf("%s: stamp annotation %q, want %q", name, got, want.String())
		}
		return cm
	}
	s2 := Stamp{Term: s.Term + 1, LeaseUID: s.LeaseUID, Holder: "ctrl-b_1"}

	t.Run("create and update", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cu", Annotations: map[string]string{AnnotationLease: "ctrl"}}}
		StampObject(cm, s)
		cm, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantAnnotation("cu", s)
		StampObject(cm, s2)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		wantAnnotation("cu", s2)
	})

	t.Run("patches", func(t *testing.T) {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// JSON patch on an object without annotations adds the map.
		ops, err := JSONPatch([]byte(`[{"op":"add","path":"/data","value":{"k":"1"}}]`), false, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cms.Patch(ctx, "p", types.JSONPatchType, ops, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		wantAnnotation("p", s)
		// JSON patch on an object with annotations replaces the stamp.
		if ops, err = JSONPatch(nil, true, s2); err != nil {
			t.Fatal(err)
		}
		if _, err := cms.Patch(ctx, "p", types.JSONPatchType, ops, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		wantAnnotation("p", s2)
		for i, pt := range []types.PatchType{types.MergePatchType, types.StrategicMergePatchType} {
			st := Stamp{Term: int32(10 + i), LeaseUID: s.LeaseUID, Holder: s.Holder}
			body, err := MergePatch([]byte(`{"data":{"k":"2"}}`), st)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cms.Patch(ctx, "p", pt, body, metav1.PatchOptions{}); err != nil {
				t.Fatalf("%s: %v", pt, err)
			}
			if cm := wantAnnotation("p", st); cm.Data["k"] != "2" {
				t.Fatalf("%s: data %v", pt, cm.Data)
			}
		}
		// A server-side apply body.
		body, err := MergePatch([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"p"},"data":{"k":"3"}}`), s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cms.Patch(ctx, "p", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "ctrl", Force: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		wantAnnotation("p", s)
	})

	deploys := cs.AppsV1().Deployments(ns)
	newDeployment := func(name string) *appsv1.Deployment {
		t.Helper()
		labels := map[string]string{"app": name}
		d, err := deploys.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnotationLease: "ctrl"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	statusManagers := func(d *appsv1.Deployment) []string {
		var out []string
		for _, m := range d.ManagedFields {
			if m.Subresource == "status" {
				out = append(out, m.Manager)
			}
		}
		return out
	}

	t.Run("status update carries the stamp in fieldManager", func(t *testing.T) {
		d := newDeployment("st")
		d.Status.ObservedGeneration = 1
		d, err := deploys.UpdateStatus(ctx, d, UpdateOptions(s, metav1.UpdateOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		if m := statusManagers(d); len(m) != 1 || m[0] != s.String() {
			t.Fatalf("status managers %q, want the full stamp", m)
		}
		// A holder too long for fieldManager: the short form.
		long := Stamp{Term: s.Term, LeaseUID: s.LeaseUID, Holder: strings.Repeat("h", 100)}
		d.Status.ObservedGeneration = 2
		if d, err = deploys.UpdateStatus(ctx, d, UpdateOptions(long, metav1.UpdateOptions{})); err != nil {
			t.Fatal(err)
		}
		if m := statusManagers(d); len(m) != 1 || m[0] != long.FieldManager() || strings.Count(m[0], ":") != 2 {
			t.Fatalf("status managers %q, want the short form", m)
		}
		// The API server refuses a fieldManager with a rune it does not
		// count as printable; FieldManager falls back to the short form.
		odd := Stamp{Term: s.Term, LeaseUID: s.LeaseUID, Holder: "ctrl\u00a0a"}
		d.Status.ObservedGeneration = 3
		if _, err := deploys.UpdateStatus(ctx, d, metav1.UpdateOptions{FieldManager: odd.String()}); !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
			t.Fatalf("fieldManager %q: %v, want the API server to refuse it", odd.String(), err)
		}
		if _, err := deploys.UpdateStatus(ctx, d, UpdateOptions(odd, metav1.UpdateOptions{})); err != nil {
			t.Fatalf("UpdateOptions(%q): %v", odd.FieldManager(), err)
		}
		// Over 128 bytes is refused too.
		if _, err := deploys.UpdateStatus(ctx, d, metav1.UpdateOptions{FieldManager: long.String()}); err == nil {
			t.Fatal("the API server accepted a fieldManager over 128 bytes")
		}
	})

	t.Run("status apply needs Force across terms", func(t *testing.T) {
		newDeployment("sa")
		apply := func(replicas int32) *appsv1ac.DeploymentApplyConfiguration {
			return appsv1ac.Deployment("sa", ns).WithStatus(appsv1ac.DeploymentStatus().WithReplicas(replicas))
		}
		if _, err := deploys.ApplyStatus(ctx, apply(1), StatusApplyOptions(s)); err != nil {
			t.Fatal(err)
		}
		// The next term applies under another manager name: without Force
		// it conflicts with the fields the previous term owns.
		if _, err := deploys.ApplyStatus(ctx, apply(2), ApplyOptions(s2, metav1.ApplyOptions{})); !apierrors.IsConflict(err) {
			t.Fatalf("apply without Force in the next term: %v, want a Conflict", err)
		}
		d, err := deploys.ApplyStatus(ctx, apply(2), StatusApplyOptions(s2))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.Replicas != 2 {
			t.Fatalf("status %+v", d.Status)
		}
		found := false
		for _, m := range statusManagers(d) {
			found = found || m == s2.FieldManager()
		}
		if !found {
			t.Fatalf("status managers %q, want %q among them", statusManagers(d), s2.FieldManager())
		}
	})

	t.Run("delete", func(t *testing.T) {
		// A finalizer keeps the deleted object visible, to see which version
		// was deleted.
		const finalizer = "test.leasefence.io/hold"
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "d", Finalizers: []string{finalizer}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A stale precondition is refused.
		if err := cms.Delete(ctx, "d", DeleteOptions(cm.ResourceVersion+"0")); !apierrors.IsConflict(err) {
			t.Fatalf("delete at a wrong resourceVersion: %v, want a Conflict", err)
		}
		if err := DeleteTyped(ctx, cms, "d", s, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		cm = wantAnnotation("d", s)
		if cm.DeletionTimestamp == nil {
			t.Fatal("the object was stamped but not deleted")
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": nil}})
		if _, err := cms.Patch(ctx, "d", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}

		// Dynamic client, one object and a collection.
		res := dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace(ns)
		for i := 0; i < 3; i++ {
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("dc%d", i), Labels: map[string]string{"set": "dc"}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := Delete(ctx, res, "dc0", s); err != nil {
			t.Fatal(err)
		}
		if err := DeleteCollection(ctx, res, metav1.ListOptions{LabelSelector: "set=dc", Limit: 1}, s); err != nil {
			t.Fatal(err)
		}
		list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "set=dc"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Fatalf("%d objects left", len(list.Items))
		}
		if err := Delete(ctx, res, "dc0", s); !apierrors.IsNotFound(err) {
			t.Fatalf("Delete of a missing object: %v, want NotFound", err)
		}
	})

	// Release on cancel: the Lease has no holder and the Lock knows it.
	e.stop()
	if _, err := lock.Stamp(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("after release: %v, want ErrNotLeader", err)
	}
	lease, err = cs.CoordinationV1().Leases(ns).Get(ctx, "ctrl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StampFromLease(lease); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("released Lease: %v, want ErrNoHolder", err)
	}
}
