package crfencing

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	clientgofake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fencing "leasefence.io/fencing/go"
)

const (
	ns    = "default"
	lease = "ctrl"
)

// leadingLock returns a Lock whose elector has acquired Lease default/ctrl
// as "a" in term 3.
func leadingLock(t *testing.T) *fencing.Lock {
	t.Helper()
	cs := clientgofake.NewClientset(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: lease, UID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1"}})
	l := fencing.NewLeaseLock(ns, lease, "a", cs.CoordinationV1(), nil)
	ctx := context.Background()
	if _, _, err := l.Get(ctx); err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now())
	if err := l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "a", LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now, LeaderTransitions: 3}); err != nil {
		t.Fatal(err)
	}
	l.RecordEvent("became leader")
	return l
}

// call is one request that reached the wrapped client.
type call struct {
	verb         string // Create, Update, Patch, Apply, Delete, SubResourceUpdate, ...
	name         string
	fieldManager string
	force        bool
	patchType    types.PatchType
	body         string // the patch body, or the object as sent
	stamp        string // the stamp annotation on the object as sent
	precondRV    string // Delete: the resourceVersion precondition
}

type calls struct{ calls []call }

func (r *calls) add(c call) { r.calls = append(r.calls, c) }

func protectedCM(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels:      map[string]string{"set": "x"},
		Annotations: map[string]string{fencing.AnnotationLease: lease}}, Data: map[string]string{"k": "v"}}
}

func plainCM(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"set": "x"}}}
}

// newClient returns the fenced client over a fake client holding objs, and
// the record of what reached the fake. Apply and subresource writes are
// recorded and not passed on (the fake does not serve them for ConfigMaps).
func newClient(t *testing.T, lock *fencing.Lock, objs ...client.Object) (client.Client, *calls) {
	t.Helper()
	rec := &calls{}
	annotationOf := func(obj client.Object) string { return obj.GetAnnotations()[fencing.AnnotationStamp] }
	inner := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			o := (&client.CreateOptions{}).ApplyOptions(opts)
			rec.add(call{verb: "Create", name: obj.GetName(), fieldManager: o.FieldManager, stamp: annotationOf(obj)})
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			o := (&client.UpdateOptions{}).ApplyOptions(opts)
			rec.add(call{verb: "Update", name: obj.GetName(), fieldManager: o.FieldManager, stamp: annotationOf(obj)})
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			o := (&client.PatchOptions{}).ApplyOptions(opts)
			data, err := patch.Data(obj)
			if err != nil {
				return err
			}
			rec.add(call{verb: "Patch", name: obj.GetName(), fieldManager: o.FieldManager, force: o.Force != nil && *o.Force,
				patchType: patch.Type(), body: string(data)})
			if patch.Type() == types.ApplyPatchType {
				return nil
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			o := (&client.ApplyOptions{}).ApplyOptions(opts)
			b, _ := json.Marshal(ac)
			rec.add(call{verb: "Apply", fieldManager: o.FieldManager, force: o.Force != nil && *o.Force, body: string(b)})
			return nil
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			o := (&client.DeleteOptions{}).ApplyOptions(opts)
			cl := call{verb: "Delete", name: obj.GetName()}
			if o.Preconditions != nil && o.Preconditions.ResourceVersion != nil {
				cl.precondRV = *o.Preconditions.ResourceVersion
			}
			rec.add(cl)
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			o := (&client.SubResourceCreateOptions{}).ApplyOptions(opts)
			rec.add(call{verb: "SubResourceCreate/" + sub, name: obj.GetName(), fieldManager: o.FieldManager})
			return nil
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			o := (&client.SubResourceUpdateOptions{}).ApplyOptions(opts)
			rec.add(call{verb: "SubResourceUpdate/" + sub, name: obj.GetName(), fieldManager: o.FieldManager})
			return nil
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			o := (&client.SubResourcePatchOptions{}).ApplyOptions(opts)
			rec.add(call{verb: "SubResourcePatch/" + sub, name: obj.GetName(), fieldManager: o.FieldManager,
				force: o.Force != nil && *o.Force, patchType: patch.Type()})
			return nil
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			o := (&client.SubResourceApplyOptions{}).ApplyOpts(opts)
			rec.add(call{verb: "SubResourceApply/" + sub, fieldManager: o.FieldManager, force: o.Force != nil && *o.Force})
			return nil
		},
	}).Build()
	return New(lock).Client(inner), rec
}

func get(t *testing.T, c client.Client, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestEveryWriteIsStamped sends each kind of write through the fenced
// client and checks what reached the API: the stamp in fieldManager on
// every request, and on the object (annotation) for main-resource writes.
func TestEveryWriteIsStamped(t *testing.T) {
	ctx := context.Background()
	lock := leadingLock(t)
	s, err := lock.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	fm := s.FieldManager()
	existing := protectedCM("p")
	fencing.StampObject(existing, s) // written before in this term
	c, rec := newClient(t, lock, existing, protectedCM("q"), protectedCM("r"), plainCM("u"), plainCM("w"))

	// One request per check; what reached the fake client is checked
	// right after.
	last := func(t *testing.T, verb string) call {
		t.Helper()
		if len(rec.calls) == 0 || rec.calls[len(rec.calls)-1].verb != verb {
			t.Fatalf("calls %+v, want the last to be %s", rec.calls, verb)
		}
		cl := rec.calls[len(rec.calls)-1]
		rec.calls = nil
		return cl
	}
	wantFM := func(t *testing.T, cl call) {
		t.Helper()
		if cl.fieldManager != fm {
			t.Errorf("%s %s: fieldManager %q, want the stamp %q", cl.verb, cl.name, cl.fieldManager, fm)
		}
	}
	wantBodyStamp := func(t *testing.T, cl call) {
		t.Helper()
		if !strings.Contains(cl.body, s.String()) {
			t.Errorf("%s %s (%s): body %s does not carry the stamp", cl.verb, cl.name, cl.patchType, cl.body)
		}
	}

	t.Run("Create", func(t *testing.T) {
		if err := c.Create(ctx, protectedCM("new"), client.FieldOwner("mine")); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Create")
		wantFM(t, cl)
		if cl.stamp != s.String() {
			t.Errorf("created with the stamp annotation %q", cl.stamp)
		}
	})
	t.Run("Update", func(t *testing.T) {
		cm := get(t, c, "q")
		cm.Data["k"] = "2"
		if err := c.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Update")
		wantFM(t, cl)
		if cl.stamp != s.String() {
			t.Errorf("updated with the stamp annotation %q", cl.stamp)
		}
	})
	// The carried-forward case: the cached copy already holds this term's
	// stamp, so client.MergeFrom's diff alone would not contain it.
	t.Run("MergeFrom", func(t *testing.T) {
		cm := get(t, c, "p")
		orig := cm.DeepCopy()
		cm.Data["k"] = "3"
		if d, _ := client.MergeFrom(orig).Data(cm); strings.Contains(string(d), fencing.AnnotationStamp) {
			t.Fatalf("precondition: the plain MergeFrom diff %s already has the stamp", d)
		}
		if err := c.Patch(ctx, cm, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Patch")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
		if !strings.Contains(cl.body, `"k":"3"`) {
			t.Errorf("the caller's change is lost: %s", cl.body)
		}
		if got := get(t, c, "p"); got.Annotations[fencing.AnnotationStamp] != s.String() || got.Data["k"] != "3" {
			t.Errorf("stored %v %v", got.Annotations, got.Data)
		}
	})
	t.Run("MergeFromWithOptimisticLock", func(t *testing.T) {
		cm := get(t, c, "p")
		orig := cm.DeepCopy()
		cm.Data["k"] = "4"
		if err := c.Patch(ctx, cm, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Patch")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
		if !strings.Contains(cl.body, `"resourceVersion"`) {
			t.Errorf("the optimistic lock is lost: %s", cl.body)
		}
	})
	t.Run("StrategicMergeFrom", func(t *testing.T) {
		cm := get(t, c, "p")
		orig := cm.DeepCopy()
		cm.Data["k"] = "5"
		if err := c.Patch(ctx, cm, client.StrategicMergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Patch")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
	})
	t.Run("JSONPatch", func(t *testing.T) {
		cm := get(t, c, "p")
		if err := c.Patch(ctx, cm, client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/data/k","value":"6"}]`))); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Patch")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
		if got := get(t, c, "p"); got.Data["k"] != "6" || got.Annotations[fencing.AnnotationStamp] != s.String() {
			t.Errorf("stored %v %v", got.Annotations, got.Data)
		}
	})
	t.Run("ApplyPatch", func(t *testing.T) {
		cm := protectedCM("p")
		cm.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
		if err := c.Patch(ctx, cm, client.Apply, client.FieldOwner("mine")); err != nil { //nolint:staticcheck // the apply patch is still part of the API
			t.Fatal(err)
		}
		cl := last(t, "Patch")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
		if !cl.force {
			t.Error("apply patch without Force: a new term's manager would conflict")
		}
	})
	t.Run("Apply", func(t *testing.T) {
		ac := corev1ac.ConfigMap("p", ns).WithAnnotations(map[string]string{fencing.AnnotationLease: lease}).WithData(map[string]string{"k": "7"})
		if err := c.Apply(ctx, ac); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Apply")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
		if !cl.force || !strings.Contains(cl.body, `"k":"7"`) {
			t.Errorf("apply %+v", cl)
		}
	})
	// An apply configuration that does not repeat the protection: the
	// stored object's decides.
	t.Run("ApplyWithoutProtectionInTheConfiguration", func(t *testing.T) {
		if err := c.Apply(ctx, corev1ac.ConfigMap("p", ns).WithData(map[string]string{"k": "8"})); err != nil {
			t.Fatal(err)
		}
		cl := last(t, "Apply")
		wantFM(t, cl)
		wantBodyStamp(t, cl)
	})
	t.Run("Status", func(t *testing.T) {
		cm := get(t, c, "p")
		if err := c.Status().Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourceUpdate/status"))
		if err := c.Status().Patch(ctx, cm, client.MergeFrom(cm.DeepCopy())); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourcePatch/status"))
		if err := c.Status().Patch(ctx, cm, client.Apply); err != nil { //nolint:staticcheck // the apply patch is still part of the API
			t.Fatal(err)
		}
		if cl := last(t, "SubResourcePatch/status"); cl.fieldManager != fm || !cl.force {
			t.Errorf("status apply patch %+v, want the stamp and Force", cl)
		}
		if err := c.Status().Apply(ctx, corev1ac.ConfigMap("p", ns)); err != nil {
			t.Fatal(err)
		}
		if cl := last(t, "SubResourceApply/status"); cl.fieldManager != fm || !cl.force {
			t.Errorf("status apply %+v, want the stamp and Force", cl)
		}
		if err := c.Status().Create(ctx, cm, &corev1.ConfigMap{}); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourceCreate/status"))
	})
	t.Run("SubResource", func(t *testing.T) {
		cm := get(t, c, "p")
		if err := c.SubResource("scale").Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourceUpdate/scale"))
		if err := c.SubResource("scale").Patch(ctx, cm, client.MergeFrom(cm.DeepCopy())); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourcePatch/scale"))
		if err := c.SubResource("eviction").Create(ctx, cm, &corev1.ConfigMap{}); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourceCreate/eviction"))
		if err := c.SubResource("scale").Apply(ctx, corev1ac.ConfigMap("p", ns)); err != nil {
			t.Fatal(err)
		}
		wantFM(t, last(t, "SubResourceApply/scale"))
	})
	// Delete by key alone: the protection is read, the object stamped,
	// then exactly the stamped version deleted.
	t.Run("Delete", func(t *testing.T) {
		if err := c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "q"}}); err != nil {
			t.Fatal(err)
		}
		if len(rec.calls) != 2 {
			t.Fatalf("calls %+v, want a stamping patch and a delete", rec.calls)
		}
		p, d := rec.calls[0], rec.calls[1]
		rec.calls = nil
		if p.verb != "Patch" || p.patchType != types.MergePatchType {
			t.Fatalf("first call %+v, want a merge patch", p)
		}
		wantFM(t, p)
		wantBodyStamp(t, p)
		if d.verb != "Delete" || d.precondRV == "" {
			t.Fatalf("second call %+v, want a delete with a resourceVersion precondition", d)
		}
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "q"}, cm); err == nil {
			t.Fatal("q still exists")
		}
	})
	t.Run("DeleteAllOf", func(t *testing.T) {
		if err := c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{"set": "x"}); err != nil {
			t.Fatal(err)
		}
		stamped := map[string]bool{}
		deleted := map[string]string{}
		for _, cl := range rec.calls {
			switch cl.verb {
			case "Patch":
				wantFM(t, cl)
				wantBodyStamp(t, cl)
				stamped[cl.name] = true
			case "Delete":
				deleted[cl.name] = cl.precondRV
			}
		}
		rec.calls = nil
		for _, n := range []string{"p", "r", "new"} {
			if !stamped[n] || deleted[n] == "" {
				t.Errorf("protected %s: stamped %v, deleted at %q; want both", n, stamped[n], deleted[n])
			}
		}
		for _, n := range []string{"u", "w"} {
			if _, ok := deleted[n]; !ok || stamped[n] {
				t.Errorf("unprotected %s: stamped %v, deleted %v; want deleted unstamped", n, stamped[n], ok)
			}
		}
		list := &corev1.ConfigMapList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil || len(list.Items) != 0 {
			t.Fatalf("left %d objects (%v)", len(list.Items), err)
		}
	})
}

// TestUnprotectedWritesPassThrough: objects that name no Lease are written
// as the caller wrote them.
// TestEveryProtectionFormIsStamped: an object is protected whatever form
// its protection annotation takes, a fencing mode included. A stamp sent to
// an object fenced by identity is judged as on a stamped one
// (docs/protocol.md, section 7a), so the client stamps it all the same.
func TestEveryProtectionFormIsStamped(t *testing.T) {
	ctx := context.Background()
	lock := leadingLock(t)
	s, err := lock.Stamp()
	if err != nil {
		t.Fatal(err)
	}
	for _, protection := range []string{lease, ns + "/" + lease, "stamp:" + lease, "identity:" + lease, "identity:" + ns + "/" + lease} {
		t.Run(protection, func(t *testing.T) {
			if _, err := fencing.ParseProtection(protection, ns); err != nil {
				t.Fatal(err)
			}
			stored := protectedCM("p")
			stored.Annotations[fencing.AnnotationLease] = protection
			c, rec := newClient(t, lock, stored)
			created := protectedCM("new")
			created.Annotations[fencing.AnnotationLease] = protection
			if err := c.Create(ctx, created); err != nil {
				t.Fatal(err)
			}
			cm := get(t, c, "p")
			orig := cm.DeepCopy()
			cm.Data["k"] = "2"
			if err := c.Patch(ctx, cm, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			if len(rec.calls) != 2 {
				t.Fatalf("calls %+v, want a Create and a Patch", rec.calls)
			}
			for _, cl := range rec.calls {
				if cl.fieldManager != s.FieldManager() {
					t.Errorf("%s %s: fieldManager %q, want the stamp %q", cl.verb, cl.name, cl.fieldManager, s.FieldManager())
				}
			}
			if rec.calls[0].stamp != s.String() || !strings.Contains(rec.calls[1].body, s.String()) {
				t.Errorf("the stamp is not on the object: %+v", rec.calls)
			}
		})
	}
}

func TestUnprotectedWritesPassThrough(t *testing.T) {
	ctx := context.Background()
	c, rec := newClient(t, leadingLock(t), plainCM("u"))
	cm := get(t, c, "u")
	orig := cm.DeepCopy()
	cm.Data = map[string]string{"k": "1"}
	if err := c.Patch(ctx, cm, client.MergeFrom(orig), client.FieldOwner("mine")); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, plainCM("v")); err != nil {
		t.Fatal(err)
	}
	for _, cl := range rec.calls {
		if strings.HasPrefix(cl.fieldManager, fencing.StampPrefix) || cl.stamp != "" || strings.Contains(cl.body, fencing.AnnotationStamp) {
			t.Errorf("unprotected write stamped: %+v", cl)
		}
	}
	if rec.calls[0].fieldManager != "mine" {
		t.Errorf("the caller's field owner is lost: %+v", rec.calls[0])
	}
}

// TestNotLeaderSendsNothing: once the elector stopped leading, no write to
// a protected object leaves the process, and each refusal is a
// *fencing.NotLeaderError.
func TestNotLeaderSendsNothing(t *testing.T) {
	ctx := context.Background()
	lock := leadingLock(t)
	c, rec := newClient(t, lock, protectedCM("p"), plainCM("u"))
	lock.RecordEvent("stopped leading")
	cm := get(t, c, "p")
	orig := cm.DeepCopy()
	cm.Data["k"] = "x"
	writes := map[string]error{
		"Create":          c.Create(ctx, protectedCM("new")),
		"Update":          c.Update(ctx, cm.DeepCopy()),
		"Patch":           c.Patch(ctx, cm.DeepCopy(), client.MergeFrom(orig)),
		"Apply":           c.Apply(ctx, corev1ac.ConfigMap("p", ns).WithAnnotations(map[string]string{fencing.AnnotationLease: lease})),
		"Delete":          c.Delete(ctx, cm.DeepCopy()),
		"DeleteAllOf":     c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns)),
		"Status().Update": c.Status().Update(ctx, cm.DeepCopy()),
		"Status().Patch":  c.Status().Patch(ctx, cm.DeepCopy(), client.MergeFrom(orig)),
		"Status().Apply":  c.Status().Apply(ctx, corev1ac.ConfigMap("p", ns)),
		"Status().Create": c.Status().Create(ctx, cm.DeepCopy(), &corev1.ConfigMap{}),
		"SubResource":     c.SubResource("scale").Update(ctx, cm.DeepCopy()),
	}
	for verb, err := range writes {
		var nl *fencing.NotLeaderError
		if !errors.Is(err, fencing.ErrNotLeader) || !errors.As(err, &nl) || nl.Reason != fencing.NotLeaderStopped {
			t.Errorf("%s: %v, want a *fencing.NotLeaderError (StoppedLeading)", verb, err)
		}
	}
	// DeleteAllOf deleted the unprotected object and stopped at the
	// protected one; nothing else reached the API.
	for _, cl := range rec.calls {
		if cl.name != "u" {
			t.Errorf("sent while not leading: %+v", cl)
		}
	}
	if got := get(t, c, "p"); got.Data["k"] != "v" {
		t.Errorf("p was written: %v", got.Data)
	}
}
