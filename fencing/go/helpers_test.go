package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var testStamp = Stamp{Term: 3, LeaseUID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1", Holder: "ctrl-a_5b0b2c3e"}

func TestStampObject(t *testing.T) {
	cm := &corev1.ConfigMap{}
	StampObject(cm, testStamp)
	if got := cm.Annotations[AnnotationStamp]; got != testStamp.String() {
		t.Fatalf("annotation = %q", got)
	}
	cm.Annotations["other"] = "x"
	next := Stamp{Term: 4, LeaseUID: testStamp.LeaseUID, Holder: "ctrl-b"}
	StampObject(cm, next)
	if cm.Annotations[AnnotationStamp] != next.String() || cm.Annotations["other"] != "x" || len(cm.Annotations) != 2 {
		t.Fatalf("annotations = %v", cm.Annotations)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}
	StampObject(u, testStamp)
	if got := u.GetAnnotations()[AnnotationStamp]; got != testStamp.String() {
		t.Fatalf("unstructured annotation = %q", got)
	}
}

func TestMergePatchKeepsTheRestAsWritten(t *testing.T) {
	in := []byte(`{"spec":{"n":9007199254740993,"f":1.50,"s":"<&>"},"metadata":{"annotations":{"x":null}}}`)
	out, err := MergePatch(in, testStamp)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Spec     json.RawMessage `json:"spec"`
		Metadata struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Spec) != `{"n":9007199254740993,"f":1.50,"s":"<&>"}` {
		t.Errorf("spec changed: %s", got.Spec)
	}
	if a := got.Metadata.Annotations; a["x"] != nil || a[AnnotationStamp] == nil || *a[AnnotationStamp] != testStamp.String() {
		t.Errorf("annotations: %s", out)
	}
}

func TestPatchesRefuseInvalidInput(t *testing.T) {
	for _, in := range []string{`[`, `{"metadata":`, `"x"`, `5`, `{"metadata":[]}`} {
		if out, err := MergePatch([]byte(in), testStamp); err == nil {
			t.Errorf("MergePatch(%s) = %s, want an error", in, out)
		}
	}
	for _, in := range []string{`[`, `{}`, `"x"`, `[1,`} {
		if out, err := JSONPatch([]byte(in), true, testStamp); err == nil {
			t.Errorf("JSONPatch(%s) = %s, want an error", in, out)
		}
	}
	if _, err := MergePatch(nil, Stamp{Term: 1, LeaseUID: "u"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("MergePatch with a short stamp: %v, want ErrMalformed", err)
	}
}

func TestOptions(t *testing.T) {
	fm := testStamp.FieldManager()
	dry := []string{metav1.DryRunAll}
	if o := UpdateOptions(testStamp, metav1.UpdateOptions{DryRun: dry}); o.FieldManager != fm || len(o.DryRun) != 1 {
		t.Errorf("UpdateOptions = %+v", o)
	}
	if o := PatchOptions(testStamp, metav1.PatchOptions{FieldManager: "old"}); o.FieldManager != fm {
		t.Errorf("PatchOptions = %+v", o)
	}
	if o := CreateOptions(testStamp, metav1.CreateOptions{}); o.FieldManager != fm {
		t.Errorf("CreateOptions = %+v", o)
	}
	if o := ApplyOptions(testStamp, metav1.ApplyOptions{Force: true}); o.FieldManager != fm || !o.Force {
		t.Errorf("ApplyOptions = %+v", o)
	}
	if o := StatusApplyOptions(testStamp); o.FieldManager != fm || !o.Force {
		t.Errorf("StatusApplyOptions = %+v", o)
	}
	long := Stamp{Term: 3, LeaseUID: testStamp.LeaseUID, Holder: strings.Repeat("p", 100)}
	if o := UpdateOptions(long, metav1.UpdateOptions{}); o.FieldManager != "lf1:3:"+testStamp.LeaseUID+":#"+HolderHash(long.Holder) {
		t.Errorf("UpdateOptions with a long holder = %q, want the short form", o.FieldManager)
	}
	d := DeleteOptions("42")
	if d.Preconditions == nil || d.Preconditions.ResourceVersion == nil || *d.Preconditions.ResourceVersion != "42" || d.Preconditions.UID != nil {
		t.Errorf("DeleteOptions = %+v", d)
	}
}

var cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// fakeServer is a dynamic fake client that behaves like the API server where
// fenced deletes depend on it: every write gets a new resourceVersion, a
// merge patch of annotations is applied, and a delete honours its
// resourceVersion precondition.
type fakeServer struct {
	*dynamicfake.FakeDynamicClient
	rv int
	// Per object name: an error to answer its patch with, and writes that
	// "someone else" makes right after its patch.
	patchErr    map[string]error
	writesAfter map[string]int
	recreated   map[string]bool // re-created under the same name before the patch
	deleteOpts  map[string]metav1.DeleteOptions
	patchesSeen map[string][]byte
	// patchManagers: the fieldManager of each stamping patch.
	patchManagers map[string]string
	patchedRVs    map[string]string
}

func newFakeServer(t *testing.T, names ...string) *fakeServer {
	t.Helper()
	var objs []runtime.Object
	for _, n := range names {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetNamespace("default")
		u.SetName(n)
		u.SetAnnotations(map[string]string{AnnotationLease: "ctrl"})
		u.SetResourceVersion("1")
		u.SetUID(types.UID("uid-" + n))
		objs = append(objs, u)
	}
	f := &fakeServer{
		FakeDynamicClient: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{cmGVR: "ConfigMapList"}, objs...),
		rv: 1, patchErr: map[string]error{}, writesAfter: map[string]int{}, recreated: map[string]bool{},
		deleteOpts: map[string]metav1.DeleteOptions{}, patchesSeen: map[string][]byte{}, patchManagers: map[string]string{}, patchedRVs: map[string]string{},
	}
	tracker := f.Tracker()
	f.PrependReactor("patch", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		name := p.GetName()
		if err := f.patchErr[name]; err != nil {
			return true, nil, err
		}
		if p.GetPatchType() != types.MergePatchType {
			t.Errorf("patch type %s, want merge", p.GetPatchType())
		}
		f.patchesSeen[name] = p.GetPatch()
		f.patchManagers[name] = a.(k8stesting.PatchActionImpl).PatchOptions.FieldManager
		var patch struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &patch); err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		stored, err := tracker.Get(cmGVR, p.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		u := stored.(*unstructured.Unstructured).DeepCopy()
		if f.recreated[name] {
			u.SetUID(types.UID("recreated-" + name))
		}
		ann := u.GetAnnotations()
		for k, v := range patch.Metadata.Annotations {
			ann[k] = v
		}
		u.SetAnnotations(ann)
		f.rv++
		u.SetResourceVersion(strconv.Itoa(f.rv))
		if err := tracker.Update(cmGVR, u, p.GetNamespace()); err != nil {
			return true, nil, err
		}
		f.patchedRVs[name] = u.GetResourceVersion()
		result := u.DeepCopy()
		for i := 0; i < f.writesAfter[name]; i++ {
			f.rv++
			u.SetResourceVersion(strconv.Itoa(f.rv))
			if err := tracker.Update(cmGVR, u, p.GetNamespace()); err != nil {
				return true, nil, err
			}
		}
		return true, result, nil
	})
	f.PrependReactor("delete", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		f.deleteOpts[d.GetName()] = d.DeleteOptions
		stored, err := tracker.Get(cmGVR, d.GetNamespace(), d.GetName())
		if err != nil {
			return true, nil, err
		}
		if pc := d.DeleteOptions.Preconditions; pc != nil && pc.ResourceVersion != nil &&
			*pc.ResourceVersion != stored.(*unstructured.Unstructured).GetResourceVersion() {
			return true, nil, apierrors.NewConflict(cmGVR.GroupResource(), d.GetName(), errors.New("the resourceVersion in the precondition does not match"))
		}
		if pc := d.DeleteOptions.Preconditions; pc != nil && pc.UID != nil &&
			*pc.UID != stored.(*unstructured.Unstructured).GetUID() {
			return true, nil, apierrors.NewConflict(cmGVR.GroupResource(), d.GetName(), errors.New("the uid in the precondition does not match"))
		}
		return false, nil, nil
	})
	return f
}

func (f *fakeServer) exists(t *testing.T, name string) bool {
	t.Helper()
	_, err := f.Tracker().Get(cmGVR, "default", name)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, "cm", "busy", "fenced")
	client := f.Resource(cmGVR).Namespace("default")

	// The usual case: stamp, then delete exactly the stamped version.
	if err := DeleteWithOptions(ctx, client, "cm", testStamp, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	if f.exists(t, "cm") {
		t.Fatal("cm still exists")
	}
	want, _ := MergePatch(nil, testStamp)
	if string(f.patchesSeen["cm"]) != string(want) {
		t.Errorf("patch %s, want %s", f.patchesSeen["cm"], want)
	}
	// The stamping write carries the stamp per request too.
	if got := f.patchManagers["cm"]; got != testStamp.FieldManager() {
		t.Errorf("stamping patch with fieldManager %q, want %q", got, testStamp.FieldManager())
	}
	o := f.deleteOpts["cm"]
	if o.Preconditions == nil || *o.Preconditions.ResourceVersion != f.patchedRVs["cm"] ||
		o.PropagationPolicy == nil || *o.PropagationPolicy != metav1.DeletePropagationForeground {
		t.Errorf("delete options %+v, want the precondition %s and the caller's propagation policy", o, f.patchedRVs["cm"])
	}

	// Someone writes the object between the two steps: the delete fails
	// with a Conflict and nothing is deleted.
	f.writesAfter["busy"] = 1
	if err := Delete(ctx, client, "busy", testStamp); !apierrors.IsConflict(err) {
		t.Fatalf("Delete of a rewritten object = %v, want a Conflict", err)
	}
	if !f.exists(t, "busy") {
		t.Fatal("busy was deleted")
	}

	// The webhook denies the stamping write (a stale ex-leader): no delete.
	f.patchErr["fenced"] = apierrors.NewForbidden(cmGVR.GroupResource(), "fenced", errors.New("leasefence: StaleTerm"))
	if err := Delete(ctx, client, "fenced", testStamp); !apierrors.IsForbidden(err) {
		t.Fatalf("Delete when fenced = %v, want Forbidden", err)
	}
	if _, ok := f.deleteOpts["fenced"]; ok || !f.exists(t, "fenced") {
		t.Fatal("a fenced writer's delete was sent")
	}

	// An invalid stamp is refused before any request.
	if err := Delete(ctx, client, "busy", Stamp{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Delete with an empty stamp = %v, want ErrMalformed", err)
	}
}

func TestDeleteCollection(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, "a", "b", "c")
	client := f.Resource(cmGVR).Namespace("default")
	// b vanishes before it is stamped: skipped.
	f.patchErr["b"] = apierrors.NewNotFound(cmGVR.GroupResource(), "b")
	if err := DeleteCollection(ctx, client, metav1.ListOptions{}, testStamp); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "c"} {
		if f.exists(t, n) {
			t.Errorf("%s still exists", n)
		}
		if o := f.deleteOpts[n]; o.Preconditions == nil || *o.Preconditions.ResourceVersion != f.patchedRVs[n] ||
			o.Preconditions.UID == nil || *o.Preconditions.UID != types.UID("uid-"+n) {
			t.Errorf("%s deleted with %+v, want the preconditions %s and uid-%s", n, o.Preconditions, f.patchedRVs[n], n)
		}
		if got := f.patchManagers[n]; got != testStamp.FieldManager() {
			t.Errorf("%s stamped with fieldManager %q, want %q", n, got, testStamp.FieldManager())
		}
	}

	// An object re-created under the same name after the listing is not
	// deleted.
	f = newFakeServer(t, "a", "b")
	client = f.Resource(cmGVR).Namespace("default")
	f.recreated["a"] = true
	if err := DeleteCollection(ctx, client, metav1.ListOptions{}, testStamp); !apierrors.IsConflict(err) {
		t.Fatalf("DeleteCollection of a re-created object = %v, want a Conflict", err)
	}
	if !f.exists(t, "a") {
		t.Fatal("the re-created object was deleted")
	}

	// A denial stops the whole run.
	f = newFakeServer(t, "a", "b", "c")
	client = f.Resource(cmGVR).Namespace("default")
	f.patchErr["a"] = apierrors.NewForbidden(cmGVR.GroupResource(), "a", errors.New("leasefence: StaleTerm"))
	if err := DeleteCollection(ctx, client, metav1.ListOptions{}, testStamp); !apierrors.IsForbidden(err) {
		t.Fatalf("DeleteCollection when fenced = %v, want Forbidden", err)
	}
	if len(f.deleteOpts) != 0 {
		t.Fatalf("deletes were sent after a denial: %v", f.deleteOpts)
	}
	if err := DeleteCollection(ctx, client, metav1.ListOptions{}, Stamp{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DeleteCollection with an empty stamp = %v, want ErrMalformed", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDeleteTyped(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: "cm", ResourceVersion: "7", Annotations: map[string]string{AnnotationLease: "ctrl"}}})
	var deleteOpts *metav1.DeleteOptions
	var stampSeen string
	cs.PrependReactor("delete", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		o := a.(k8stesting.DeleteActionImpl).DeleteOptions
		deleteOpts = &o
		cm, err := cs.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "default", "cm")
		if err == nil {
			stampSeen = cm.(*corev1.ConfigMap).Annotations[AnnotationStamp]
		}
		return false, nil, nil
	})
	// The type argument is inferred from the typed client.
	if err := DeleteTyped(ctx, cs.CoreV1().ConfigMaps("default"), "cm", testStamp, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if stampSeen != testStamp.String() {
		t.Errorf("the object was deleted with the stamp %q, want %q", stampSeen, testStamp.String())
	}
	if deleteOpts == nil || deleteOpts.Preconditions == nil || deleteOpts.Preconditions.ResourceVersion == nil || *deleteOpts.Preconditions.ResourceVersion == "" {
		t.Fatalf("delete options %+v, want a resourceVersion precondition", deleteOpts)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "cm", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after DeleteTyped: %v, want NotFound", err)
	}
}
