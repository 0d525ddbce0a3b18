package fencing_test

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

type kind struct {
	name      string
	gvr       schema.GroupVersionResource
	body      func(name string) map[string]any // apiVersion, kind, spec...
	status    func(n int64) map[string]any     // nil: no /status test
	strategic bool                             // strategic merge patch applies (built-in kinds only)
}

var kinds = []kind{
	{
		name: "ConfigMap", gvr: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, strategic: true,
		body: func(string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"k": "v"}}
		},
	},
	{
		name: "Deployment", gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, strategic: true,
		body: func(name string) map[string]any {
			labels := map[string]any{"app": name}
			return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "spec": map[string]any{
				"replicas": int64(1),
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "pause"}}},
				},
			}}
		},
		status: func(n int64) map[string]any { return map[string]any{"replicas": int64(0), "collisionCount": int32(n)} },
	},
	{
		name: "Widget", gvr: cluster.WidgetGVR,
		body: func(string) map[string]any {
			return map[string]any{"apiVersion": "test.leasefence.io/v1", "kind": "Widget", "spec": map[string]any{"replicas": int64(1)}}
		},
		status: func(n int64) map[string]any { return map[string]any{"replicas": n} },
	},
}

// object builds a protected object of kind k stamped with s (no stamp when
// s is nil), labelled set=<set>.
func (k kind) object(name, set string, s *fencing.Stamp) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: k.body(name)}
	o.SetName(name)
	o.SetLabels(map[string]string{"set": set})
	ann := map[string]string{harness.AnnotationLease: "ctrl"}
	if s != nil {
		ann[harness.AnnotationStamp] = s.String()
	}
	o.SetAnnotations(ann)
	return o
}

// TestEveryWrite: for a ConfigMap, a Deployment and the Widget custom
// resource, each kind of write is admitted with the current stamp and denied
// with a stale one (StaleTerm). The Lease is driven by the admin: term 1 held
// by ctrl-w_one, then term 2 held by ctrl-w_two; the writer is the pod ctrl-w
// (both holders are that pod, so only the term differs).
func TestEveryWrite(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { everyWrite(t, k) })
	}
}

func everyWrite(t *testing.T, k kind) {
	e := newEnv(t, "kinds-"+k.gvr.Resource)
	ctx := e.ctx
	_, dyn := e.pod("ctrl-w")
	res := dyn.Resource(k.gvr).Namespace(e.ns)
	old := e.setLease("ctrl-w_one", 1)

	// CREATE in term 1, current: admitted. These objects are then written
	// in term 2 below.
	for _, n := range []string{"upd", "merge", "json", "smp", "ssa", "status", "del", "del-stale", "dc-1", "dc-2", "dcs-1", "dcs-2"} {
		set := "plain"
		switch n[:3] {
		case "dc-":
			set = "current"
		case "dcs":
			set = "stale"
		}
		_, err := res.Create(ctx, k.object(n, set, &old), fencing.CreateOptions(old, metav1.CreateOptions{}))
		admitted(t, "create "+n+" (current)", err)
	}

	cur := e.setLease("ctrl-w_two", 2) // old is now a term behind

	// CREATE
	_, err := res.Create(ctx, k.object("new", "plain", &old), fencing.CreateOptions(old, metav1.CreateOptions{}))
	denied(t, "create, stale", err, "StaleTerm")
	_, err = res.Create(ctx, k.object("new", "plain", &cur), fencing.CreateOptions(cur, metav1.CreateOptions{}))
	admitted(t, "create, current", err)

	// UPDATE (read-modify-write)
	update := func(s fencing.Stamp, v string) error {
		o, err := res.Get(ctx, "upd", metav1.GetOptions{})
		if err != nil {
			return err
		}
		o.SetLabels(map[string]string{"set": "plain", "v": v})
		a := o.GetAnnotations()
		a[harness.AnnotationStamp] = s.String()
		o.SetAnnotations(a)
		_, err = res.Update(ctx, o, fencing.UpdateOptions(s, metav1.UpdateOptions{}))
		return err
	}
	denied(t, "update, stale", update(old, "1"), "StaleTerm")
	admitted(t, "update, current", update(cur, "2"))

	// PATCH: merge, JSON, strategic merge
	merge := func(s fencing.Stamp, v string) error {
		p, err := fencing.MergePatch([]byte(`{"metadata":{"labels":{"v":"`+v+`"}}}`), s)
		if err != nil {
			return err
		}
		_, err = res.Patch(ctx, "merge", types.MergePatchType, p, fencing.PatchOptions(s, metav1.PatchOptions{}))
		return err
	}
	denied(t, "merge patch, stale", merge(old, "1"), "StaleTerm")
	admitted(t, "merge patch, current", merge(cur, "2"))

	jsonPatch := func(s fencing.Stamp, v string) error {
		p, err := fencing.JSONPatch([]byte(`[{"op":"add","path":"/metadata/labels/v","value":"`+v+`"}]`), true, s)
		if err != nil {
			return err
		}
		_, err = res.Patch(ctx, "json", types.JSONPatchType, p, fencing.PatchOptions(s, metav1.PatchOptions{}))
		return err
	}
	denied(t, "JSON patch, stale", jsonPatch(old, "1"), "StaleTerm")
	admitted(t, "JSON patch, current", jsonPatch(cur, "2"))

	if k.strategic {
		smp := func(s fencing.Stamp, v string) error {
			p, err := fencing.MergePatch([]byte(`{"metadata":{"labels":{"v":"`+v+`"}}}`), s)
			if err != nil {
				return err
			}
			_, err = res.Patch(ctx, "smp", types.StrategicMergePatchType, p, fencing.PatchOptions(s, metav1.PatchOptions{}))
			return err
		}
		denied(t, "strategic merge patch, stale", smp(old, "1"), "StaleTerm")
		admitted(t, "strategic merge patch, current", smp(cur, "2"))
	}

	// Server-side apply: the applied configuration carries the stamp.
	apply := func(s fencing.Stamp, v string) error {
		o := k.object("ssa", "plain", &s)
		o.SetLabels(map[string]string{"set": "plain", "v": v})
		body, err := json.Marshal(o.Object)
		if err != nil {
			return err
		}
		_, err = res.Patch(ctx, "ssa", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: s.FieldManager(), Force: ptrTrue()})
		return err
	}
	denied(t, "server-side apply, stale", apply(old, "1"), "StaleTerm")
	admitted(t, "server-side apply, current", apply(cur, "2"))

	// /status: the stamp travels in fieldManager.
	if k.status != nil {
		status := func(s fencing.Stamp, n int64) error {
			o, err := res.Get(ctx, "status", metav1.GetOptions{})
			if err != nil {
				return err
			}
			o.Object["status"] = k.status(n)
			_, err = res.UpdateStatus(ctx, o, fencing.UpdateOptions(s, metav1.UpdateOptions{}))
			return err
		}
		denied(t, "update /status, stale", status(old, 1), "StaleTerm")
		admitted(t, "update /status, current", status(cur, 2))
		statusMerge := func(s fencing.Stamp, n int64) error {
			p, _ := json.Marshal(map[string]any{"status": k.status(n)})
			_, err := res.Patch(ctx, "status", types.MergePatchType, p, fencing.PatchOptions(s, metav1.PatchOptions{}), "status")
			return err
		}
		denied(t, "merge patch /status, stale", statusMerge(old, 3), "StaleTerm")
		admitted(t, "merge patch /status, current", statusMerge(cur, 4))
		statusApply := func(s fencing.Stamp, n int64) error {
			o := map[string]any{"apiVersion": k.body("")["apiVersion"], "kind": k.body("")["kind"],
				"metadata": map[string]any{"name": "status"}, "status": k.status(n)}
			p, _ := json.Marshal(o)
			opts := fencing.StatusApplyOptions(s)
			_, err := res.Patch(ctx, "status", types.ApplyPatchType, p,
				metav1.PatchOptions{FieldManager: opts.FieldManager, Force: &opts.Force}, "status")
			return err
		}
		denied(t, "server-side apply /status, stale", statusApply(old, 5), "StaleTerm")
		admitted(t, "server-side apply /status, current", statusApply(cur, 6))
	}

	// DELETE: judged by the stamp stored on the object. del-stale still
	// carries term 1.
	err = res.Delete(ctx, "del-stale", metav1.DeleteOptions{})
	denied(t, "delete of an object stamped in the old term", err, "StaleTerm")
	denied(t, "fenced delete with a stale stamp", fencing.Delete(ctx, res, "del", old), "StaleTerm")
	admitted(t, "fenced delete with the current stamp", fencing.Delete(ctx, res, "del", cur))
	gone(t, res, "del")

	// DeleteCollection: the API call over objects stamped in the old term is
	// denied object by object; the helper's fenced collection delete in the
	// current term removes its set.
	err = res.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "set=stale"})
	denied(t, "delete-collection of objects stamped in the old term", err, "StaleTerm")
	denied(t, "fenced delete-collection, stale stamp",
		fencing.DeleteCollection(ctx, res, metav1.ListOptions{LabelSelector: "set=stale"}, old), "StaleTerm")
	admitted(t, "fenced delete-collection, current stamp",
		fencing.DeleteCollection(ctx, res, metav1.ListOptions{LabelSelector: "set=current"}, cur))
	for _, n := range []string{"dc-1", "dc-2"} {
		gone(t, res, n)
	}
	for _, n := range []string{"dcs-1", "dcs-2", "del-stale"} {
		if _, err := res.Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("%s should still exist after denied deletes: %v", n, err)
		}
	}
}

func gone(t *testing.T, res dynamic.ResourceInterface, name string) {
	t.Helper()
	if _, err := res.Get(t.Context(), name, metav1.GetOptions{}); err == nil {
		t.Errorf("%s still exists after an admitted delete", name)
	} else if !isNotFound(err) {
		t.Errorf("get %s: %v", name, err)
	}
}

func ptrTrue() *bool { b := true; return &b }
