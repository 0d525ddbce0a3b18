package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	fencing "leasefence.io/fencing/go"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

const (
	vwcName      = "leasefence"
	fenceWebhook = "fence.leasefence.io"
	breakGlass   = "leasefence:break-glass"
)

// TestSelfSignedOverlay: generate.sh (run in a copy of manifests/) and
// `kubectl kustomize overlays/self-signed`, applied with server-side apply:
// every object is accepted. Then the overlay's ValidatingWebhookConfiguration,
// with only clientConfig changed to the URL of a webhook started here (with
// the Deployment's own flags, the overlay's certificate and a token of the
// manifests' ServiceAccount, so the manifests' RBAC), fences writes and puts
// a Warning Event on the object whose write it denied; kube-system
// is never sent to it; and with the break-glass component, the group
// leasefence:break-glass gets through while the webhook is down.
func TestSelfSignedOverlay(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	before := treeSnapshot(t)
	manifests := copyManifests(t)
	certs := generate(t, manifests)
	if after := treeSnapshot(t); after != before {
		t.Errorf("generate.sh changed the tree's overlay folder:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	rendered := kustomize(ctx, t, filepath.Join(manifests, "overlays", "self-signed"))
	objs := decode(t, rendered)

	t.Run("apply", func(t *testing.T) {
		kinds := map[string]bool{}
		for _, o := range objs {
			kinds[o.GetKind()] = true
		}
		for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret",
			"Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy", "ValidatingWebhookConfiguration"} {
			if !kinds[k] {
				t.Errorf("the overlay renders no %s", k)
			}
		}
		out := apply(ctx, t, objs...)
		t.Logf("kubectl apply --server-side:\n%s", out)
		applied := regexp.MustCompile(`(?m) serverside-applied$`).FindAllString(out, -1)
		if len(applied) != len(objs) {
			t.Errorf("%d of %d objects reported serverside-applied", len(applied), len(objs))
		}
		// Each object is there, as the API server stored it.
		for _, o := range objs {
			args := []string{"get", strings.ToLower(o.GetKind()) + "." + groupOf(o), o.GetName(), "-o", "name"}
			if o.GetNamespace() != "" {
				args = append(args, "-n", o.GetNamespace())
			}
			if _, err := c.Kubectl(ctx, nil, args...); err != nil {
				t.Errorf("%s %s not stored: %v", o.GetKind(), o.GetName(), err)
			}
		}
		// The Namespace enforces the restricted Pod Security Standard.
		_, err := c.CreatePod(ctx, "leasefence", "not-restricted", "leasefence-webhook")
		if err == nil || !strings.Contains(err.Error(), "restricted") {
			t.Errorf("a Pod that breaks the restricted standard was not refused in namespace leasefence: %v", err)
		}
	})
	if t.Failed() {
		return
	}

	// The webhook, as the Deployment would run it.
	dep := find(objs, "Deployment", "leasefence-webhook")
	if dep == nil {
		t.Fatal("no Deployment leasefence-webhook")
	}
	args := deploymentArgs(t, dep)
	args = append(args, "--kubeconfig", manifestsIdentity(ctx, t))
	t.Logf("webhook flags from the Deployment: %v", args)
	wh, err := harness.StartWebhook(ctx, harness.WebhookOptions{
		Cluster: c, Dir: t.TempDir(), Certs: certs,
		// A file: source keeps the harness from making an identity of its
		// own (a Pod it would create in the restricted namespace); the
		// Deployment's --lease-source=kube in args comes later and wins.
		LeaseSource: "file:" + t.TempDir(),
		Args:        args,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := wh.Stop(); err != nil && !strings.Contains(err.Error(), "already") {
			t.Error(err)
		}
	}()
	vwc := find(objs, "ValidatingWebhookConfiguration", vwcName)
	if vwc == nil {
		t.Fatal("no ValidatingWebhookConfiguration " + vwcName)
	}
	apply(ctx, t, pointAtURL(t, vwc, wh.URL()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.UnregisterWebhook(ctx, vwcName)
	})

	const ns = "app"
	if _, err := c.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	protected := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{harness.AnnotationLease: "ctrl"}}}
	}
	// A write that presents a stamp per request (fieldManager) is judged as
	// the guarded controller's; none exists here, so the webhook denies it
	// (LeaseNotFound) wherever it is sent.
	const probeStamp = "lf1:0:probe:probe"
	// In force once such a write is denied by it.
	if err := cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		_, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, protected("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: probeStamp})
		return err != nil && strings.Contains(err.Error(), `admission webhook "`+fenceWebhook+`" denied`), fmt.Sprint(err), nil
	}); err != nil {
		t.Fatalf("the manifests' webhook configuration never took effect: %v", err)
	}

	t.Run("fences", func(t *testing.T) {
		rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "patch"}}}
		a, err := c.NewPodIdentity(ctx, ns, "ctrl-a", "ctrl-a", rules, filepath.Join(t.TempDir(), "a.kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.NewPodIdentity(ctx, ns, "ctrl-b", "ctrl-b", rules, filepath.Join(t.TempDir(), "b.kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		l := lease(ctx, t, ns, "ctrl", "ctrl-a_6f1d", 0)
		stampA := mustStamp(t, l)
		cm := protected("shard-map")
		cm.Annotations[harness.AnnotationStamp] = stampA.String()
		if _, err := a.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: stampA.FieldManager()}); err != nil {
			t.Fatalf("the holder's stamped create: %v", err)
		}
		l = lease(ctx, t, ns, "ctrl", "ctrl-b_9c1d", 1)
		stampB := mustStamp(t, l)

		// The old leader's write, as kubectl prints its denial; the stamp
		// per request (--field-manager) and on the object.
		out, err := cluster.KubectlWith(ctx, c.KubectlPath(), a.Kubeconfig, nil, "-n", ns, "annotate", "--overwrite",
			"--field-manager="+stampA.FieldManager(), "configmap/shard-map", harness.AnnotationStamp+"="+stampA.String(), "shard=7")
		if err == nil {
			t.Fatalf("the stale leader's kubectl annotate was admitted: %s", out)
		}
		t.Logf("kubectl annotate by the stale leader:\n%s", out)
		for _, m := range []string{
			`admission webhook "` + fenceWebhook + `" denied the request: leasefence denied the UPDATE of configmaps app/shard-map (StaleTerm)`,
			`stamped by "ctrl-a_6f1d" in term 0`, `Lease app/ctrl is held by "ctrl-b_9c1d" in term 1`,
		} {
			if !strings.Contains(string(out), m) {
				t.Errorf("the denial kubectl prints does not contain %q", m)
			}
		}
		// The denial is on the object as a Warning Event, posted with the
		// manifests' RBAC and the Deployment's flags.
		if _, err := harness.AwaitDenialEvent(ctx, c.Client, ns, "ConfigMap", "shard-map", "StaleTerm", 30*time.Second,
			func(e corev1.Event) (bool, string) {
				return e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "Writer: system:serviceaccount:app:ctrl-a (pod app/ctrl-a)"),
					fmt.Sprintf("type %s, message %q", e.Type, e.Message)
			}); err != nil {
			t.Errorf("no Warning Event for the stale leader's denied write: %v", err)
		}
		// The current leader's.
		if out, err := cluster.KubectlWith(ctx, c.KubectlPath(), b.Kubeconfig, nil, "-n", ns, "annotate", "--overwrite",
			"--field-manager="+stampB.FieldManager(), "configmap/shard-map", harness.AnnotationStamp+"="+stampB.String(), "shard=8"); err != nil {
			t.Fatalf("the current leader's kubectl annotate: %v: %s", err, out)
		}
		// Counted when the connection completes, a moment after the answer.
		waitRequests(ctx, t, wh, map[string]string{"decision": "allowed", "reason": "Current"}, 2)
	})

	t.Run("kube-system is not sent", func(t *testing.T) {
		before, err := wh.Requests(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The control: the same write in a fenced namespace is sent (and
		// denied: the stamp names no Lease there).
		if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, protected("control"), metav1.CreateOptions{FieldManager: probeStamp}); err == nil {
			t.Fatal("a protected write with a stamp of no Lease in a fenced namespace was admitted")
		}
		waitRequests(ctx, t, wh, nil, before+1)
		before, _ = wh.Requests(ctx, nil)
		// Sent to the webhook, this write would be denied: there is no
		// Lease kube-system/ctrl.
		if _, err := c.Client.CoreV1().ConfigMaps("kube-system").Create(ctx, protected("leasefence-e2e"), metav1.CreateOptions{FieldManager: probeStamp}); err != nil {
			t.Fatalf("a protected write in kube-system: %v", err)
		}
		// Another request that does reach the webhook; once it is counted,
		// a review of the kube-system write would have been counted too.
		_, _ = c.Client.CoreV1().ConfigMaps(ns).Create(ctx, protected("control"), metav1.CreateOptions{FieldManager: probeStamp})
		waitRequests(ctx, t, wh, nil, before+1)
		lines, err := wh.LogLines()
		if err != nil {
			t.Fatal(err)
		}
		controls := 0
		for _, l := range lines {
			switch l["namespace"] {
			case "kube-system":
				t.Errorf("the webhook reviewed a kube-system write: %v", l)
			case ns:
				if l["name"] == "control" {
					controls++
				}
			}
		}
		if controls != 2 {
			t.Errorf("the webhook logged %d denials of the control write, want 2", controls)
		}
		if after, _ := wh.Requests(ctx, nil); after != before+1 {
			t.Errorf("reviews %v -> %v across the kube-system write and one control write; want exactly one more", before, after)
		}
	})

	t.Run("break-glass", func(t *testing.T) {
		overlay := filepath.Join(manifests, "overlays", "e2e-break-glass")
		writeOverlay(t, overlay, "../self-signed", "../../components/break-glass")
		bg := find(decode(t, kustomize(ctx, t, overlay)), "ValidatingWebhookConfiguration", vwcName)
		if bg == nil {
			t.Fatal("the break-glass build has no webhook configuration")
		}
		apply(ctx, t, pointAtURL(t, bg, wh.URL()))
		// (The built-in "edit" role is aggregated by the controller manager,
		// which does not run here, so the group gets a Role of its own.)
		if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "break-glass"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "patch", "update"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "break-glass"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "break-glass"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: breakGlass}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The member's write presents a per-request stamp of no Lease, which
		// the webhook would deny (OtherLease); only the break-glass
		// matchCondition lets it through.
		member := func(value string) ([]byte, error) {
			return c.Kubectl(ctx, nil, "--as=oncall", "--as-group="+breakGlass, "-n", ns, "annotate", "--overwrite",
				"--field-manager="+probeStamp, "configmap/shard-map", "emergency="+value)
		}
		// Wait for the new matchCondition: the member's write is admitted.
		if err := cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(context.Context) (bool, string, error) {
			out, err := member("probe")
			return err == nil, string(out), nil
		}); err != nil {
			t.Fatalf("the break-glass member was never let through: %v", err)
		}
		if err := wh.Stop(); err != nil {
			t.Fatal(err)
		}
		// The webhook is down: everyone else is refused (failurePolicy Fail).
		out, err := c.Kubectl(ctx, nil, "-n", ns, "annotate", "--overwrite", "configmap/shard-map", "emergency=admin")
		if err == nil || !strings.Contains(string(out), `failed calling webhook "`+fenceWebhook+`"`) {
			t.Errorf("with the webhook down, a non-member's write: %v: %s", err, out)
		} else {
			t.Logf("non-member, webhook down:\n%s", out)
		}
		// The member gets through.
		if out, err := member("1"); err != nil {
			t.Errorf("with the webhook down, the break-glass member's write was refused: %v: %s", err, out)
		}
		got, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "shard-map", metav1.GetOptions{})
		if err != nil || got.Annotations["emergency"] != "1" {
			t.Errorf("the member's write is not stored: %v %v", got.Annotations, err)
		}
	})
}

func groupOf(o *unstructured.Unstructured) string {
	g, _, _ := strings.Cut(o.GetAPIVersion(), "/")
	if !strings.Contains(o.GetAPIVersion(), "/") {
		return ""
	}
	return g
}

// deploymentArgs are the webhook container's args (harness.DeploymentArgs).
func deploymentArgs(t *testing.T, dep *unstructured.Unstructured) []string {
	t.Helper()
	args, err := harness.DeploymentArgs(dep)
	if err != nil {
		t.Fatal(err)
	}
	return args
}

// manifestsIdentity writes a kubeconfig for the manifests' ServiceAccount
// leasefence/leasefence-webhook, with a token bound to a Pod that meets the
// restricted standard (the namespace enforces it), so the webhook reads
// Leases with exactly the RBAC the manifests grant.
func manifestsIdentity(ctx context.Context, t *testing.T) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "leasefence-webhook-e2e"},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "leasefence-webhook",
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "webhook", Image: "leasefence/webhook:0.1.0",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	p, err := c.Client.CoreV1().Pods("leasefence").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a restricted Pod for the webhook's token: %v", err)
	}
	token, err := c.PodToken(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CACertPEM}
	cfg.AuthInfos["webhook"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["webhook"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "webhook", Namespace: "leasefence"}
	cfg.CurrentContext = "webhook"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// lease sets Lease ns/name to holder in term, renewed now.
func lease(ctx context.Context, t *testing.T, ns, name, holder string, term int32) *coordinationv1.Lease {
	t.Helper()
	now := metav1.NewMicroTime(time.Now())
	spec := coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(15)),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To(term),
	}
	api := c.Client.CoordinationV1().Leases(ns)
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		l, err := api.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cur.Spec = spec
	l, err := api.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustStamp(t *testing.T, l *coordinationv1.Lease) fencing.Stamp {
	t.Helper()
	s, err := fencing.StampFromLease(l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitRequests waits until the webhook has counted at least n reviews
// matching labels (a review is counted just after its answer went out) and
// returns the count.
func waitRequests(ctx context.Context, t *testing.T, wh *harness.Webhook, labels map[string]string, n float64) float64 {
	t.Helper()
	got, err := wh.WaitRequests(ctx, labels, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// writeOverlay writes dir/kustomization.yaml: resources plus components.
func writeOverlay(t *testing.T, dir, resource string, components ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + resource + "\n")
	if len(components) > 0 {
		b.WriteString("components:\n")
		for _, c := range components {
			b.WriteString("  - " + c + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
