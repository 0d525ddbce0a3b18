package realcluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

const finalizer = "example.io/cleanup"

// TestNamespaceDeletionLeaseFirst: the guarding Lease is deleted before a
// protected object that waits on its controller's finalizer, then the
// namespace is deleted. The namespace controller's deletes (protected
// Deployment and ConfigMap among them) go through; the finalizer's removal,
// by the cluster admin or by the controller itself, is admitted (nobody can
// lead without the Lease); the namespace goes away.
func TestNamespaceDeletionLeaseFirst(t *testing.T) {
	t.Parallel()
	for _, who := range []string{"admin", "controller"} {
		t.Run(who, func(t *testing.T) {
			e := newEnv(t, "nsdel-"+who)
			id := e.controller("ctrl-0")
			// The controller's rights on its objects come from a
			// ClusterRole, so that they outlive the namespace's Roles
			// while it is deleted.
			if _, err := cp.Kubectl(e.ctx, nil, "create", "clusterrolebinding", e.ns+"-ctrl", "--clusterrole=edit",
				"--serviceaccount="+e.ns+":ctrl-0"); err != nil {
				t.Fatal(err)
			}
			s := e.setLease("ctrl", "ctrl-0_aa01", 2)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: "state", Annotations: protection("ctrl", s), Finalizers: []string{finalizer},
			}}
			if _, err := id.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(s, metav1.CreateOptions{})); err != nil {
				t.Fatalf("the controller's create: %v", err)
			}
			e.createDeployment(id, deployment("web", 1, s), s)
			e.rolloutStatus("deployment/web")

			if err := cp.Client.CoordinationV1().Leases(e.ns).Delete(e.ctx, "ctrl", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if out, err := cp.Kubectl(e.ctx, nil, "delete", "namespace", e.ns, "--wait=false"); err != nil {
				t.Fatalf("kubectl delete namespace: %v: %s", err, out)
			}
			// The namespace controller deleted the ConfigMap (it waits on the
			// finalizer) and the Deployment.
			e.await("the namespace controller's deletes", 60*time.Second, func(ctx context.Context) (bool, string, error) {
				got, err := cp.Client.CoreV1().ConfigMaps(e.ns).Get(ctx, "state", metav1.GetOptions{})
				if err != nil {
					return false, err.Error(), nil
				}
				_, derr := cp.Client.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
				return got.DeletionTimestamp != nil && apierrors.IsNotFound(derr),
					"configmap being deleted: " + boolText(got.DeletionTimestamp != nil) + "; deployment: " + errText(derr), nil
			})

			removal := []byte(`{"metadata":{"finalizers":null}}`)
			switch who {
			case "admin":
				_, err := e.kubectl("patch", "configmap", "state", "--type=merge", "-p", string(removal))
				admitted(t, "the admin's finalizer removal", err)
			case "controller":
				// The controller's own pod and service account are deleted
				// with the namespace, and kwok removes a deleted Pod at once,
				// so the controller's real token no longer authenticates:
				// its finalizer removal is made by impersonating its
				// service account and pod, with its last per-request stamp.
				user := "system:serviceaccount:" + e.ns + ":ctrl-0"
				c := impersonating(t, user, []string{"system:serviceaccounts", "system:serviceaccounts:" + e.ns, "system:authenticated"},
					map[string][]string{cluster.PodNameExtraKey: {"ctrl-0"}})
				_, err := c.CoreV1().ConfigMaps(e.ns).Patch(e.ctx, "state", types.MergePatchType, removal, fencing.PatchOptions(s, metav1.PatchOptions{}))
				admitted(t, "the controller's finalizer removal", err)
			}
			e.await("the namespace is gone", 90*time.Second, func(ctx context.Context) (bool, string, error) {
				ns, err := cp.Client.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true, "", nil
				}
				if err != nil {
					return false, err.Error(), nil
				}
				return false, "namespace " + string(ns.Status.Phase), nil
			})
		})
	}
}

// TestMalformedStoredProtection: a protection annotation the webhook cannot
// evaluate (a typo: "My-Controller"), or a stored stamp over the size bound,
// stored by an exempt admin (or, in the field, during the warn-mode rollout),
// never makes an object undeletable or unfixable: the garbage collector and
// the namespace controller delete such objects, and an exempt admin fixes
// the annotation. A person who is not exempt may remove it (the stored
// protection guards nothing); storing a malformed one is refused to them.
// The same holds for fencing's annotations holding a NUL (legal in any
// annotation value): Kubernetes' controllers are never refused for one.
func TestMalformedStoredProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "malformed")
	admin := exemptAdmin(t)
	cms := admin.CoreV1().ConfigMaps(e.ns)
	owner, err := cp.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}}
	typo := map[string]string{harness.AnnotationLease: "My-Controller"}
	oversized := map[string]string{harness.AnnotationLease: "ctrl", harness.AnnotationStamp: "lf1:1:u:" + strings.Repeat("h", 2000)}
	// A NUL is legal in an annotation value; Go's encoder sends it as \u0000.
	nulProtection := map[string]string{harness.AnnotationLease: "ctrl\x00x"}
	nulStamp := map[string]string{harness.AnnotationLease: "ctrl", harness.AnnotationStamp: "lf1:1:u:h\x00x"}
	create := func(name string, annotations map[string]string, owned bool) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
		if owned {
			cm.OwnerReferences = ref
		}
		_, err := cms.Create(e.ctx, cm, metav1.CreateOptions{})
		admitted(t, "the exempt admin's create of "+name, err)
	}
	create("typo-gc", typo, true)
	create("big-gc", oversized, true)
	create("typo-fix", typo, false)
	create("typo-removed", typo, false)
	create("typo-ns", typo, false)
	create("nul-gc", nulProtection, true)
	create("nul-stamp-gc", nulStamp, true)
	create("nul-ns", nulStamp, false)
	if t.Failed() {
		t.FailNow()
	}

	// A person who is not exempt cannot store a malformed protection...
	_, err = cp.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "typo-person", Annotations: typo}}, metav1.CreateOptions{})
	denied(t, "a person's create with a malformed protection", err, "MalformedProtection")
	_, err = cp.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "nul-person", Annotations: nulProtection}}, metav1.CreateOptions{})
	denied(t, "a person's create with a protection holding a NUL", err, "MalformedProtection", "NUL character")
	// A person's edit that leaves a stored stamp holding a NUL as it is.
	_, err = e.kubectl("patch", "configmap", "nul-ns", "--type=merge", "-p", `{"data":{"k":"v"}}`)
	admitted(t, "a person's edit next to a stored stamp holding a NUL", err)
	// ...but may remove a stored one.
	_, err = e.kubectl("annotate", "configmap", "typo-removed", harness.AnnotationLease+"-")
	admitted(t, "a person's removal of a malformed stored protection", err)
	// The exempt admin fixes one.
	_, err = cms.Patch(e.ctx, "typo-fix", types.MergePatchType, []byte(`{"metadata":{"annotations":{"leasefence.io/lease":"my-controller"}}}`), metav1.PatchOptions{})
	admitted(t, "the exempt admin's fix", err)

	// The garbage collector deletes the dependents of a deleted owner.
	if err := cp.Client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	e.await("the garbage collector's deletes", 60*time.Second, gone(cp.Client, e.ns, "typo-gc", "big-gc", "nul-gc", "nul-stamp-gc"))

	// The namespace controller deletes the rest.
	if out, err := cp.Kubectl(e.ctx, nil, "delete", "namespace", e.ns, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete namespace: %v: %s", err, out)
	}
	e.await("the namespace is gone", 90*time.Second, func(ctx context.Context) (bool, string, error) {
		_, err := cp.Client.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), errText(err), nil
	})
}

// gone: the ConfigMaps are deleted.
func gone(c kubernetes.Interface, ns string, names ...string) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		var left []string
		for _, n := range names {
			if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				left = append(left, n)
			}
		}
		return len(left) == 0, "still there: " + strings.Join(left, ", "), nil
	}
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func errText(err error) string {
	if err == nil {
		return "present"
	}
	return err.Error()
}
