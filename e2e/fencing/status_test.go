package fencing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// A /status write is judged by what the API server will store, which the
// webhook sees: it is called with the object after the status strategy's
// PrepareForUpdate. What that keeps of the request's metadata differs by
// kind (docs/protocol.md, section 4.2, cites each strategy). statusKinds is
// the table of kinds with a /status subresource and what their strategy does
// with annotations sent on a status write; TestStatusWriteAnnotations proves
// each row on the real API server.
type statusKind struct {
	name string
	gvr  schema.GroupVersionResource
	// object is a valid object of the kind, without metadata.
	object map[string]any
	// status is a valid status change, for the holder's legitimate write
	// (empty: the status sent back as it is).
	status map[string]any
	// keepsAnnotations: annotations sent on /status are stored.
	keepsAnnotations bool
}

var statusKinds = []statusKind{
	{
		name: "Deployment", gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "spec": map[string]any{
			"replicas": int64(0), "selector": map[string]any{"matchLabels": map[string]any{"app": "s"}},
			"template": podTemplate(),
		}},
		status:           map[string]any{"observedGeneration": int64(1)},
		keepsAnnotations: true, // deploymentStatusStrategy resets spec and labels only
	},
	{
		name: "StatefulSet", gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
		object: map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": map[string]any{
			"replicas": int64(0), "serviceName": "s", "selector": map[string]any{"matchLabels": map[string]any{"app": "s"}},
			"template": podTemplate(),
		}},
		status:           map[string]any{"observedGeneration": int64(1), "replicas": int64(0), "availableReplicas": int64(0)},
		keepsAnnotations: true, // statefulSetStatusStrategy resets spec only
	},
	{
		name: "Job", gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"},
		object: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": map[string]any{
			"suspend": true, "template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "s"}},
				"spec":     map[string]any{"restartPolicy": "Never", "containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
			},
		}},
		status:           map[string]any{"ready": int64(0)},
		keepsAnnotations: true, // jobStatusStrategy resets spec only
	},
	{
		name: "Service", gvr: schema.GroupVersionResource{Version: "v1", Resource: "services"},
		object: map[string]any{"apiVersion": "v1", "kind": "Service", "spec": map[string]any{
			"ports": []any{map[string]any{"port": int64(80)}}, "selector": map[string]any{"app": "s"},
		}},
		status: map[string]any{"conditions": []any{map[string]any{
			"type": "Fenced", "status": "True", "reason": "Test", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
		}}},
		keepsAnnotations: true, // serviceStatusStrategy resets spec only
	},
	{
		name: "ResourceClaim", gvr: schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "resourceclaims"},
		object: map[string]any{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "spec": map[string]any{
			"devices": map[string]any{},
		}},
		// Its status refers to allocated devices, which need a driver; the
		// holder's status write sends it unchanged.
		status:           map[string]any{},
		keepsAnnotations: false, // resourceclaimStatusStrategy: metav1.ResetObjectMetaForStatus
	},
	{
		name: "Widget (custom resource)", gvr: cluster.WidgetGVR,
		object: map[string]any{"apiVersion": cluster.WidgetGVR.GroupVersion().String(), "kind": cluster.WidgetGVK.Kind,
			"spec": map[string]any{"replicas": int64(1)}},
		status:           map[string]any{"replicas": int64(1)},
		keepsAnnotations: false, // customresource statusStrategy keeps all of the stored object but status
	},
}

func podTemplate() map[string]any {
	return map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app": "s"}},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
	}
}

// statusWriterRules let a pod write every kind of statusKinds and its /status.
func statusWriterRules() []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}}}
	for _, k := range statusKinds {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{k.gvr.Group},
			Resources: []string{k.gvr.Resource, k.gvr.Resource + "/status"}, Verbs: []string{"*"}})
	}
	return rules
}

// statusRules fence every kind of statusKinds and its /status.
func statusRules() []admissionregistrationv1.RuleWithOperations {
	var rules []admissionregistrationv1.RuleWithOperations
	for _, k := range statusKinds {
		rules = append(rules, harness.Rule(k.gvr.Group, k.gvr.Version, k.gvr.Resource, k.gvr.Resource+"/status"))
	}
	return rules
}

// newStatusObject creates name of kind k as client, protected by Lease ctrl
// and stamped with stamp, and with fieldManager as the per-request stamp.
func newStatusObject(ctx context.Context, client dynamic.Interface, ns, name string, k statusKind, stamp, fieldManager string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for key, v := range k.object {
		u.Object[key] = v
	}
	u = u.DeepCopy()
	u.SetName(name)
	u.SetAnnotations(map[string]string{harness.AnnotationLease: "ctrl", harness.AnnotationStamp: stamp})
	return client.Resource(k.gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager})
}

// writeStatus reads ns/name as client and sends a /status update with
// fieldManager: the status changed by k.status when withStatus, and the
// annotations changed by edit (nil: unchanged).
func writeStatus(ctx context.Context, client dynamic.Interface, ns, name string, k statusKind, fieldManager string, withStatus bool, edit func(map[string]string)) error {
	api := client.Resource(k.gvr).Namespace(ns)
	u, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if withStatus {
		st, _, _ := unstructured.NestedMap(u.Object, "status")
		if st == nil {
			st = map[string]any{}
		}
		for key, v := range k.status {
			st[key] = v
		}
		u.Object["status"] = st
	}
	if edit != nil {
		a := u.GetAnnotations()
		edit(a)
		u.SetAnnotations(a)
	}
	_, err = api.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}

// unprotectAndForge is the hostile edit: the protection removed and the
// highest term of the Lease stored as the object's stamp.
func unprotectAndForge(uid string) func(map[string]string) {
	return func(a map[string]string) {
		delete(a, harness.AnnotationLease)
		a[harness.AnnotationStamp] = fmt.Sprintf("lf1:2147483647:%s:forged", uid)
	}
}

func storedAnnotations(ctx context.Context, t *testing.T, ns, name string, k statusKind) map[string]string {
	t.Helper()
	u, err := cp.Dynamic.Resource(k.gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()
}

// TestStatusWriteAnnotations proves, kind by kind, what a /status write
// does to the protection and stamp annotations, first without the webhook
// (what the API server stores), then with it.
//
// Without the webhook: a /status write that removes leasefence.io/lease and
// sets leasefence.io/stamp to a forged term 2147483647 is stored as sent for
// Deployment, StatefulSet, Job and Service, and ignored for ResourceClaim and
// a custom resource; a ConfigMap has no /status at all.
//
// With the webhook, on the kinds that store annotations, a /status write
// that removes the protection is denied (ProtectionChange) and one that
// stores a forged term is denied (StampChange), even with the holder's
// current stamp in fieldManager; on the others such writes are harmless and
// store nothing of it. The holder's own status writes are admitted before
// and after, and its next write to the object is admitted (no forged term
// blocks it).
func TestStatusWriteAnnotations(t *testing.T) {
	e := newEnv(t, "status-kinds")
	ctx := e.ctx
	stamp := e.setLease("holder-0_1", 4)

	t.Run("stored without the webhook", func(t *testing.T) {
		withoutWebhook(t, ctx)
		// A ConfigMap has no status, so no /status write.
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"k": "v"}}}
		u.SetName("nostatus")
		u.SetAnnotations(map[string]string{harness.AnnotationLease: "ctrl", harness.AnnotationStamp: stamp.String()})
		cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
		created, err := cp.Dynamic.Resource(cms).Namespace(e.ns).Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cp.Dynamic.Resource(cms).Namespace(e.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if !isNotFound(err) {
			t.Errorf("configmaps/status: want NotFound (no such subresource), got %v", err)
		}
		for _, k := range statusKinds {
			name := "bare"
			if _, err := newStatusObject(ctx, cp.Dynamic, e.ns, name, k, stamp.String(), "test"); err != nil {
				t.Fatalf("%s: create: %v", k.name, err)
			}
			forge := unprotectAndForge(stamp.LeaseUID)
			if err := writeStatus(ctx, cp.Dynamic, e.ns, name, k, "test", false, forge); err != nil {
				t.Errorf("%s: /status write: %v", k.name, err)
				continue
			}
			a := storedAnnotations(ctx, t, e.ns, name, k)
			_, protected := a[harness.AnnotationLease]
			kept := a[harness.AnnotationStamp] == stamp.String()
			t.Logf("%-26s /status write: protection %s, stamp %s", k.name,
				map[bool]string{true: "kept", false: "REMOVED"}[protected], map[bool]string{true: "kept", false: "FORGED: " + a[harness.AnnotationStamp]}[kept])
			if k.keepsAnnotations == protected || k.keepsAnnotations == kept {
				t.Errorf("%s: a /status write's annotations stored = %v, want %v; stored annotations %v",
					k.name, !protected, k.keepsAnnotations, a)
			}
		}
	})

	t.Run("with the webhook", func(t *testing.T) {
		if !registered {
			t.Skip("LF_NO_WEBHOOK=1")
		}
		if err := harness.Register(ctx, cp, wh, append(harness.DefaultRules(), statusRules()...)...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := harness.Register(context.Background(), cp, wh); err != nil {
				t.Errorf("registering the default rules again: %v", err)
			}
		})
		id, err := cp.NewPodIdentity(ctx, e.ns, "holder-0", "holder-0", statusWriterRules(), "")
		if err != nil {
			t.Fatal(err)
		}
		client, err := dynamic.NewForConfig(id.Config)
		if err != nil {
			t.Fatal(err)
		}
		fm := stamp.FieldManager()
		for _, k := range statusKinds {
			name := "fenced"
			if _, err := newStatusObject(ctx, client, e.ns, name, k, stamp.String(), fm); err != nil {
				t.Fatalf("%s: the holder creates: %v", k.name, err)
			}
			admitted(t, k.name+": the holder's status write", writeStatus(ctx, client, e.ns, name, k, fm, true, nil))
			hostile := []struct {
				what   string
				edit   func(map[string]string)
				reason string
			}{
				{"removing the protection", func(a map[string]string) { delete(a, harness.AnnotationLease) }, "ProtectionChange"},
				{"storing a forged term", func(a map[string]string) {
					a[harness.AnnotationStamp] = fmt.Sprintf("lf1:2147483647:%s:%s", stamp.LeaseUID, stamp.Holder)
				}, "StampChange"},
			}
			for _, h := range hostile {
				what := fmt.Sprintf("%s: a /status write %s, with the holder's stamp in fieldManager", k.name, h.what)
				err := writeStatus(ctx, client, e.ns, name, k, fm, false, h.edit)
				if k.keepsAnnotations {
					denied(t, what, err, h.reason)
				} else {
					admitted(t, what+" (the API server drops the annotations)", err)
				}
			}
			a := storedAnnotations(ctx, t, e.ns, name, k)
			if a[harness.AnnotationLease] != "ctrl" || a[harness.AnnotationStamp] != stamp.String() {
				t.Errorf("%s: stored annotations after the hostile /status write: %v", k.name, a)
			}
			admitted(t, k.name+": the holder's status write afterwards", writeStatus(ctx, client, e.ns, name, k, fm, true, nil))
			_, err = client.Resource(k.gvr).Namespace(e.ns).Patch(ctx, name, "application/merge-patch+json",
				[]byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, harness.AnnotationStamp, stamp.String())), metav1.PatchOptions{FieldManager: fm})
			admitted(t, k.name+": the holder's next write to the object", err)
		}
	})
}

func isLeasefenceDenial(err error) bool {
	return err != nil && strings.Contains(err.Error(), "denied the request") && strings.Contains(err.Error(), "leasefence")
}
