package realcluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// gitManifest is the Deployment as a Git repository or a chart holds it:
// protected, without a stamp (the controller stamps; tools do not).
func gitManifest(name, image, team string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels: {team: %[3]s}
  annotations: {leasefence.io/lease: ctrl}
spec:
  replicas: 1
  revisionHistoryLimit: 0
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: app, image: "%[2]s"}]
`, name, image, team)
}

// TestToolsInPods: GitOps (Argo CD's server-side diff and sync, Flux's dry
// run, apply and force-recreate), Helm and a reloader, each running in a pod
// of its own namespace with a pod-bound token, write a protected Deployment
// whose stored stamp they carry forward, without a stamp of their own:
// admitted, before and after the guarded controller's leader changed, and
// the Deployment still rolls out.
func TestToolsInPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "tools")
	ctl := e.controller("ctrl-0")
	s := e.setLease("ctrl", "ctrl-0_9e01", 1)
	e.createDeployment(ctl, deployment("web", 1, s), s)
	e.createDeployment(ctl, deployment("api", 1, s), s)
	e.rolloutStatus("deployment/web")

	argo := e.tool("argocd", "argocd-application-controller")
	flux := e.tool("flux-system", "kustomize-controller")
	helm := e.tool("ci", "helm-runner")
	reloader := e.tool("reloader", "reloader")
	pause := "registry.k8s.io/pause:3.10"

	_, err := e.kubectlAs(argo, gitManifest("web", pause, "a"), "apply", "--server-side", "--dry-run=server", "--field-manager=argocd-controller", "-f", "-")
	admitted(t, "Argo CD's server-side diff", err)
	_, err = e.kubectlAs(argo, gitManifest("web", pause, "b"), "apply", "--server-side", "--force-conflicts", "--field-manager=argocd-controller", "-f", "-")
	admitted(t, "Argo CD's sync", err)
	_, err = e.kubectlAs(flux, gitManifest("web", pause, "c"), "apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=kustomize-controller", "-f", "-")
	admitted(t, "Flux's dry run", err)
	_, err = e.kubectlAs(flux, gitManifest("web", pause, "c"), "apply", "--server-side", "--force-conflicts", "--field-manager=kustomize-controller", "-f", "-")
	admitted(t, "Flux's apply", err)

	// Helm: a read-modify-write (client-side) from its own pod.
	deps := helm.Client.AppsV1().Deployments(e.ns)
	d, err := deps.Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Labels["helm.sh/chart"] = "web-1.2.0"
	_, err = deps.Update(e.ctx, d, metav1.UpdateOptions{FieldManager: "helm"})
	admitted(t, "Helm's upgrade", err)

	// The guarded controller's leader changes; the new leader has not
	// re-stamped web yet. GitOps and a reloader's rollout restart still go
	// through.
	e.setLease("ctrl", "ctrl-1_77aa", 2)
	_, err = e.kubectlAs(argo, gitManifest("web", pause, "d"), "apply", "--server-side", "--force-conflicts", "--field-manager=argocd-controller", "-f", "-")
	admitted(t, "Argo CD's self-heal after a leader change", err)
	restart := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"reloader.stakater.com/last-reloaded-from":"cm-%d"}}}}}`, time.Now().UnixNano())
	_, err = reloader.Client.AppsV1().Deployments(e.ns).Patch(e.ctx, "web", types.StrategicMergePatchType, []byte(restart), metav1.PatchOptions{FieldManager: "reloader"})
	admitted(t, "the reloader's rollout restart", err)

	// Flux's force-recreate of api: delete, then create from Git.
	err = flux.Client.AppsV1().Deployments(e.ns).Delete(e.ctx, "api", metav1.DeleteOptions{})
	admitted(t, "Flux's force-recreate: delete", err)
	e.await("api deleted", 30*time.Second, func(ctx context.Context) (bool, string, error) {
		_, err := cp.Client.AppsV1().Deployments(e.ns).Get(ctx, "api", metav1.GetOptions{})
		return apierrors.IsNotFound(err), errText(err), nil
	})
	_, err = e.kubectlAs(flux, gitManifest("api", pause, "a"), "apply", "--server-side", "--force-conflicts", "--field-manager=kustomize-controller", "-f", "-")
	admitted(t, "Flux's force-recreate: create", err)

	e.rolloutStatus("deployment/web")
	e.rolloutStatus("deployment/api")
	got, err := cp.Client.AppsV1().Deployments(e.ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[harness.AnnotationStamp] != s.String() || got.Labels["team"] != "d" {
		t.Errorf("web after the tools: stamp %q, team %q; want the carried-forward %q and d", got.Annotations[harness.AnnotationStamp], got.Labels["team"], s)
	}
}

// TestRestore: a backup tool, from a pod of its own namespace, re-creates
// protected objects with the stamps they were backed up with: before the
// guarding Lease exists, after it was re-created (a new uid), and while it
// is held (a stored stamp no newer than the Lease): admitted. A restored
// stamp that names the live Lease with a newer term would block the leader:
// denied StampChange.
func TestRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "restore")
	velero := e.tool("velero", "velero")
	cms := velero.Client.CoreV1().ConfigMaps(e.ns)
	restore := func(name string, s fencing.Stamp) error {
		_, err := cms.Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: name, Annotations: protection("ctrl", s),
		}, Data: map[string]string{"restored": "yes"}}, metav1.CreateOptions{FieldManager: "velero"})
		return err
	}
	backedUp := fencing.Stamp{Term: 7, LeaseUID: "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1", Holder: "ctrl-x_4f1e"}
	admitted(t, "a restore before the Lease exists", restore("before-lease", backedUp))

	cur := e.setLease("ctrl", "ctrl-y_0c2a", 0)
	admitted(t, "a restore after the Lease was re-created", restore("after-recreate", backedUp))
	admitted(t, "a restore of a stamp no newer than the held Lease", restore("current", cur))
	ahead := fencing.Stamp{Term: cur.Term + 5, LeaseUID: cur.LeaseUID, Holder: cur.Holder}
	denied(t, "a restore of a stamp ahead of the live Lease", restore("ahead", ahead), "StampChange", "store one no newer than the Lease")
}

// TestDecommission: removing the protection while the guarded controller
// leads is refused (ProtectionChange, naming what to do); once it is
// stopped and its Lease released, a person removes the protection, GitOps
// prunes the objects, and the Lease is deleted.
func TestDecommission(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "decommission")
	ctl := e.controller("ctrl-0")
	prune := e.tool("argocd", "argocd-decommission")
	s := e.setLease("ctrl", "ctrl-0_d1", 4)
	for _, name := range []string{"keep", "pruned"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: protection("ctrl", s)}}
		if _, err := ctl.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(s, metav1.CreateOptions{})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.kubectl("annotate", "configmap", "keep", harness.AnnotationLease+"-")
	denied(t, "removing the protection while the controller leads", err, "ProtectionChange", "Stop the controller that leads first")

	e.release("ctrl") // the controller scaled to zero, ReleaseOnCancel
	_, err = e.kubectl("annotate", "configmap", "keep", harness.AnnotationLease+"-")
	admitted(t, "removing the protection after the controller stopped", err)
	err = prune.Client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, "pruned", metav1.DeleteOptions{})
	admitted(t, "GitOps' prune after the controller stopped", err)
	if err := cp.Client.CoordinationV1().Leases(e.ns).Delete(e.ctx, "ctrl", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestAutoscalerScale: an autoscaler other than the HPA (KEDA's operator,
// from its own namespace) writes /scale of a protected Deployment in a
// namespace opted into /scale fencing: admitted, and the deployment and
// replicaset controllers scale it out.
func TestAutoscalerScale(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "autoscale")
	ctl := e.controller("ctrl-0")
	s := e.setLease("ctrl", "ctrl-0_5c", 1)
	e.createDeployment(ctl, deployment("web", 1, s), s)
	e.rolloutStatus("deployment/web")
	keda := e.tool("keda", "keda-operator")
	_, err := keda.Client.AppsV1().Deployments(e.ns).UpdateScale(e.ctx, "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
	}, metav1.UpdateOptions{FieldManager: "keda"})
	admitted(t, "KEDA's /scale", err)
	e.rolloutStatus("deployment/web")
	e.await("three ready replicas", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		d, err := cp.Client.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return d.Status.ReadyReplicas == 3, fmt.Sprintf("ready %d", d.Status.ReadyReplicas), nil
	})
}

// TestPersonKubectl: a person's everyday kubectl workflows on a protected
// Deployment, each admitted: rollout restart, pause, set image, resume,
// scale (through /scale, fenced in this namespace), rollout undo, annotate,
// label, edit, apply client-side and server-side; the rollout finishes. Removing
// the protection while the controller leads is refused, naming the way out.
func TestPersonKubectl(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "person")
	ctl := e.controller("ctrl-0")
	s := e.setLease("ctrl", "ctrl-0_e4", 2)
	d := deployment("web", 1, s)
	d.Spec.RevisionHistoryLimit = nil // rollout undo needs history
	e.createDeployment(ctl, d, s)
	e.rolloutStatus("deployment/web")

	// kubectl edit with an editor that changes one label, as a person would.
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/tier: web/tier: frontend/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		what string
		run  func() (string, error)
	}{
		{"rollout restart", func() (string, error) { return e.kubectl("rollout", "restart", "deployment/web") }},
		{"rollout pause", func() (string, error) { return e.kubectl("rollout", "pause", "deployment/web") }},
		{"set image", func() (string, error) {
			return e.kubectl("set", "image", "deployment/web", "app=registry.k8s.io/pause:3.9")
		}},
		{"rollout resume", func() (string, error) { return e.kubectl("rollout", "resume", "deployment/web") }},
		{"scale", func() (string, error) { return e.kubectl("scale", "deployment/web", "--replicas=2") }},
		{"rollout undo", func() (string, error) { return e.kubectl("rollout", "undo", "deployment/web") }},
		{"annotate", func() (string, error) { return e.kubectl("annotate", "deployment/web", "owner=team-a") }},
		{"label", func() (string, error) { return e.kubectl("label", "deployment/web", "tier=web") }},
		{"edit", func() (string, error) {
			return e.kubectlEnv([]string{"KUBE_EDITOR=" + editor}, "edit", "deployment/web")
		}},
		{"apply (client-side)", func() (string, error) {
			return e.kubectlStdin(gitManifest("web", "registry.k8s.io/pause:3.9", "a"), "apply", "-f", "-")
		}},
		{"apply --server-side", func() (string, error) {
			return e.kubectlStdin(gitManifest("web", "registry.k8s.io/pause:3.9", "b"), "apply", "--server-side", "--force-conflicts", "-f", "-")
		}},
	}
	for _, st := range steps {
		out, err := st.run()
		admitted(t, "kubectl "+st.what, err)
		t.Logf("kubectl %s: %s", st.what, strings.TrimSpace(out))
	}
	e.rolloutStatus("deployment/web")
	got, err := cp.Client.AppsV1().Deployments(e.ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// (rollout undo set the annotations to those of the ReplicaSet it went
	// back to, the protection among them.)
	if got.Labels["tier"] != "frontend" || got.Annotations[harness.AnnotationLease] != "ctrl" {
		t.Errorf("after the workflows: labels %v, annotations %v", got.Labels, got.Annotations)
	}
	_, err = e.kubectl("annotate", "deployment/web", harness.AnnotationLease+"-")
	denied(t, "kubectl annotate removing the protection while the controller leads", err, "ProtectionChange", "Stop the controller that leads first")
}

// kubectlStdin runs the admin's kubectl in e.ns with stdin.
func (e *env) kubectlStdin(stdin string, args ...string) (string, error) {
	out, err := cp.Kubectl(e.ctx, strings.NewReader(stdin), append([]string{"-n", e.ns}, args...)...)
	return string(out), err
}
