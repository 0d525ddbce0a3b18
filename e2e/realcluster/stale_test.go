package realcluster_test

import (
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	fencing "leasefence.io/fencing/go"
)

// TestStaleControllerExemptPaths: no path that lets Kubernetes' controllers,
// tools and people through lets a stale ex-leader through. Controller A led
// in term 3; B leads in term 4 and has re-stamped the objects. A, under its
// own pod-bound identity (a service account of the Lease's namespace), tries
// each way others get through: a status write without a stamp (as the
// workload controllers write), a /scale without a stamp (as an autoscaler),
// a GitOps-style apply and a Helm-style update carrying B's stamp forward, a
// restore-style re-create, removing the protection, removing a finalizer of
// an object being deleted, and a delete. Every one is denied, and each
// denial names what A lacks.
func TestStaleControllerExemptPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "stale")
	a := e.controller("ctrl-a")
	b := e.controller("ctrl-b")
	sa := e.setLease("ctrl", "ctrl-a_0a", 3)
	e.createDeployment(a, deployment("web", 1, sa), sa)
	e.rolloutStatus("deployment/web")
	sb := e.setLease("ctrl", "ctrl-b_0b", 4)
	restamp, err := fencing.MergePatch([]byte(`{}`), sb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client.AppsV1().Deployments(e.ns).Patch(e.ctx, "web", types.MergePatchType, restamp, fencing.PatchOptions(sb, metav1.PatchOptions{})); err != nil {
		t.Fatalf("B's re-stamp: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "state", Annotations: protection("ctrl", sb), Finalizers: []string{finalizer}}}
	if _, err := b.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(sb, metav1.CreateOptions{})); err != nil {
		t.Fatalf("B's create: %v", err)
	}
	// B deletes it (the object waits on the finalizer).
	if err := fencing.DeleteTyped(e.ctx, b.Client.CoreV1().ConfigMaps(e.ns), "state", sb, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("B's fenced delete: %v", err)
	}

	deps := a.Client.AppsV1().Deployments(e.ns)
	cms := a.Client.CoreV1().ConfigMaps(e.ns)
	// Each case: what A does, and the reasons that may deny it (the one
	// that does depends on which rule decides first; each names the way).
	cases := []struct {
		what    string
		write   func() error
		reasons []string
	}{
		{"a status write without a stamp", func() error {
			d, err := deps.Get(e.ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Status.ObservedGeneration++
			_, err = deps.UpdateStatus(e.ctx, d, metav1.UpdateOptions{})
			return err
		}, []string{"MissingStamp"}},
		{"a status write with its old stamp", func() error {
			d, err := deps.Get(e.ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Status.ObservedGeneration++
			_, err = deps.UpdateStatus(e.ctx, d, fencing.UpdateOptions(sa, metav1.UpdateOptions{}))
			return err
		}, []string{"StaleTerm"}},
		{"a /scale without a stamp", func() error {
			_, err := deps.UpdateScale(e.ctx, "web", &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 2},
			}, metav1.UpdateOptions{FieldManager: "keda"})
			return err
		}, []string{"MissingStamp"}},
		{"a GitOps-style apply carrying B's stamp", func() error {
			_, err := e.kubectlAs(a, gitManifest("web", "registry.k8s.io/pause:3.10", "stale"), "apply", "--server-side", "--force-conflicts", "--field-manager=argocd-controller", "-f", "-")
			return err
		}, []string{"MissingStamp"}},
		{"a Helm-style update carrying B's stamp, with its old per-request stamp", func() error {
			d, err := deps.Get(e.ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Labels = map[string]string{"helm.sh/chart": "web-1"}
			_, err = deps.Update(e.ctx, d, fencing.UpdateOptions(sa, metav1.UpdateOptions{}))
			return err
		}, []string{"StaleTerm"}},
		{"a copy of B's stamp per request", func() error {
			d, err := deps.Get(e.ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Labels = map[string]string{"copied": "yes"}
			_, err = deps.Update(e.ctx, d, fencing.UpdateOptions(sb, metav1.UpdateOptions{}))
			return err
		}, []string{"IdentityMismatch"}},
		{"a restore-style create with B's stored stamp", func() error {
			_, err := cms.Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "restored", Annotations: protection("ctrl", sb)}}, metav1.CreateOptions{FieldManager: "velero"})
			return err
		}, []string{"MissingStamp"}},
		{"removing the protection", func() error {
			_, err := deps.Patch(e.ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":{"leasefence.io/lease":null}}}`), metav1.PatchOptions{})
			return err
		}, []string{"MissingStamp"}},
		{"removing the finalizer of an object being deleted, with its old stamp", func() error {
			_, err := cms.Patch(e.ctx, "state", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), fencing.PatchOptions(sa, metav1.PatchOptions{}))
			return err
		}, []string{"StaleTerm"}},
		{"a delete", func() error {
			return deps.Delete(e.ctx, "web", metav1.DeleteOptions{})
		}, []string{"IdentityMismatch"}},
	}
	for _, c := range cases {
		err := c.write()
		ok := false
		for _, r := range c.reasons {
			ok = ok || (err != nil && strings.Contains(err.Error(), "("+r+")"))
		}
		switch {
		case err == nil:
			t.Errorf("stale A, %s: admitted", c.what)
		case !ok:
			t.Errorf("stale A, %s: want a denial %v, got %v", c.what, c.reasons, err)
		default:
			t.Logf("stale A, %s: %v", c.what, err)
		}
	}
	// What A tried left no trace: B's stamp and the finalizer are in place,
	// and the Deployment is there.
	d, err := cp.Client.AppsV1().Deployments(e.ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil || d.Annotations["leasefence.io/stamp"] != sb.String() {
		t.Errorf("deployment web after A's attempts: %v; want B's stamp", err)
	}
	c, err := cp.Client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "state", metav1.GetOptions{})
	if err != nil || len(c.Finalizers) != 1 {
		t.Errorf("configmap state after A's attempts: %v; want its finalizer kept", err)
	}
}
