package leases

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	fencing "leasefence.io/fencing/go"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

const scaleWebhook = "scale.leasefence.io"

// registerScale registers, next to the main configuration, the /scale entry
// of manifests/base: deployments/scale UPDATE, no "protected"
// matchCondition (a Scale has no annotations), only not-a-lease, and the
// same namespaceSelector.
func registerScale(ctx context.Context, t *testing.T, wh *harness.Webhook) {
	t.Helper()
	var notALease []admissionregistrationv1.MatchCondition
	for _, m := range harness.MatchConditions() {
		if m.Name == "not-a-lease" {
			notALease = append(notALease, m)
		}
	}
	rule := harness.Rule("apps", "v1", "deployments/scale")
	rule.Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
	if _, err := c.RegisterWebhook(ctx, cluster.Webhook{
		Name: scaleWebhook, Port: wh.Port, Path: "/validate", CABundle: wh.Certs.CAPEM,
		Rules: []admissionregistrationv1.RuleWithOperations{rule}, MatchConditions: notALease,
		NamespaceSelector: harness.NamespaceSelector(),
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.UnregisterWebhook(ctx, scaleWebhook); err != nil {
			t.Error(err)
		}
	})
}

func deployment(name string, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "pause"}}},
			},
		},
	}
}

// TestScale: /scale writes are judged by the parent Deployment's
// annotations, which the webhook reads itself (a metadata-only GET, with
// get on deployments granted as components/scale does). The controller's
// scale without a per-request stamp is denied (MissingStamp, naming
// fieldManager); the holder's scale with fieldManager set to its stamp is
// admitted; the previous holder's is denied; an admin's `kubectl scale`
// (another writer) is admitted, as is scaling an unprotected Deployment.
func TestScale(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns = "scale"
	newNamespace(ctx, t, ns)
	wh := startWebhook(ctx, t, "kube")
	// components/scale: get on the scaled resources for the webhook's
	// identity (the harness's ServiceAccount).
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "lf-e2e-scale"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lf-e2e-scale"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "lf-e2e-scale"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: harness.WebhookNamespace, Name: harness.WebhookServiceAccount}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	register(ctx, t, wh)
	registerScale(ctx, t, wh)

	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")
	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	stampA, err := fencing.StampFromLease(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.AppsV1().Deployments(ns).Create(ctx, deployment("guarded", map[string]string{
		harness.AnnotationLease: "ctrl", harness.AnnotationStamp: stampA.String(),
	}), fencing.CreateOptions(stampA, metav1.CreateOptions{})); err != nil {
		t.Fatalf("the holder creates the protected Deployment: %v", err)
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, deployment("free", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The admin's kubectl scale.
	scale := func(dryRun bool, name string, replicas int) ([]byte, error) {
		args := []string{"-n", ns, "scale", "deployment/" + name, fmt.Sprintf("--replicas=%d", replicas)}
		if dryRun {
			args = append(args, "--dry-run=server")
		}
		return c.Kubectl(ctx, nil, args...)
	}
	rawScale := func(client kubernetes.Interface, opts metav1.UpdateOptions, replicas int32) error {
		sc, err := client.AppsV1().Deployments(ns).GetScale(ctx, "guarded", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = replicas
		_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "guarded", sc, opts)
		return err
	}
	// The controller's scale without a per-request stamp; polled as a dry
	// run until the scale entry is in force.
	if err := cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(context.Context) (bool, string, error) {
		err := rawScale(a.Client, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}, 3)
		return isDenial(err, "MissingStamp"), fmt.Sprint(err), nil
	}); err != nil {
		t.Fatalf("the /scale entry never took effect: %v", err)
	}
	err = rawScale(a.Client, metav1.UpdateOptions{}, 3)
	wantDenied(t, "the controller scales without a per-request stamp", err, "MissingStamp")
	for _, m := range []string{`admission webhook "` + scaleWebhook + `" denied the request`, "fieldManager", ns + "/ctrl"} {
		if err != nil && !strings.Contains(err.Error(), m) {
			t.Errorf("the denial does not mention %q: %v", m, err)
		}
	}

	// The holder, fieldManager = its stamp.
	updateScale := func(client kubernetes.Interface, s fencing.Stamp, replicas int32) error {
		return rawScale(client, fencing.UpdateOptions(s, metav1.UpdateOptions{}), replicas)
	}
	wantAdmitted(t, "the holder scales with its stamp in fieldManager", updateScale(a.Client, stampA, 4))
	if d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "guarded", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 4 {
		t.Fatalf("replicas after the holder's scale: %v, %v", d, err)
	}

	// Taken over: the previous holder's stamp is stale; the new holder's works.
	l = setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	stampB, err := fencing.StampFromLease(l)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, "the previous holder scales", updateScale(a.Client, stampA, 5), "StaleTerm")
	wantAdmitted(t, "the new holder scales", updateScale(b.Client, stampB, 6))

	// An admin's kubectl scale of the protected Deployment: another writer,
	// changing no fencing state: admitted.
	others := counter(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "OtherWriter"})
	if out, err := scale(false, "guarded", 7); err != nil {
		t.Fatalf("the admin's kubectl scale of the protected Deployment: %v: %s", err, out)
	}
	waitCounterAbove(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "OtherWriter"}, others,
		"the admin's scale was not reviewed as OtherWriter")

	// Unprotected: admitted (the webhook sees it and finds no protection).
	before := counter(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "NotProtected"})
	if out, err := scale(false, "free", 2); err != nil {
		t.Fatalf("scaling an unprotected Deployment: %v: %s", err, out)
	}
	waitCounterAbove(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "NotProtected"}, before,
		"the unprotected scale was not reviewed as NotProtected")

	// Without get on deployments the webhook cannot see the protection and
	// refuses (fail closed).
	if err := c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "lf-e2e-scale", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(context.Context) (bool, string, error) {
		out, err := scale(true, "free", 3)
		return err != nil && strings.Contains(string(out), "leasefence"), fmt.Sprintf("%s %v", out, err), nil
	}); err != nil {
		t.Fatalf("without get on deployments, a scale was still admitted: %v", err)
	}
	out, _ := scale(true, "free", 3)
	t.Logf("kubectl scale without get on deployments:\n%s", out)
}
