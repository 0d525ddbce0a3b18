package fencing_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"leasefence.io/e2e/harness"
)

// TestIdentityBindsNamespace: pod names repeat across namespaces
// (StatefulSet ordinals: every team has a reconciler-0). The Lease team-b/ctrl
// is held by "reconciler-0_<uuid>", the pod reconciler-0 of team-b. The pod
// reconciler-0 of team-a, allowed to write ConfigMaps in team-b, reads the
// protected ConfigMap and writes it back carrying its stamp forward (on the
// object and as the per-request stamp), with its own pod-bound token: the
// pod name matches the holder, the namespace does not, and the write is
// denied IdentityMismatch. The holder's pod makes the same write and is
// admitted.
func TestIdentityBindsNamespace(t *testing.T) {
	teamB := newEnv(t, "team-b")
	ctx := teamB.ctx
	if _, err := cp.CreateNamespace(ctx, "team-a", nil); err != nil {
		t.Fatal(err)
	}
	stamp := teamB.setLease("reconciler-0_0b5e4b7e-8a1c-4d55-9d0a-6f1e2a3b4c5d", 2)
	holder, _ := teamB.pod("reconciler-0")
	cmRules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "patch"}}}
	other, err := cp.NewPodIdentity(ctx, "team-a", "reconciler", "reconciler-0", cmRules, "")
	if err != nil {
		t.Fatal(err)
	}
	// team-a's service account may write ConfigMaps in team-b too.
	if _, err := cp.Client.RbacV1().Roles("team-b").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-writes"}, Rules: cmRules,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.RbacV1().RoleBindings("team-b").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-writes"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "team-a-writes"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "reconciler"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := holder.Client.CoreV1().ConfigMaps("team-b").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "shared", Annotations: map[string]string{
			harness.AnnotationLease: "ctrl", harness.AnnotationStamp: stamp.String(),
		}},
		Data: map[string]string{"owner": "team-b"},
	}, metav1.CreateOptions{FieldManager: stamp.FieldManager()}); err != nil {
		t.Fatalf("the holder creates the protected ConfigMap: %v", err)
	}

	// A read-modify-write that carries the stored stamp forward.
	carryForward := func(client kubernetes.Interface, value string) error {
		cm, err := client.CoreV1().ConfigMaps("team-b").Get(ctx, "shared", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Data["owner"] = value
		_, err = client.CoreV1().ConfigMaps("team-b").Update(ctx, cm, metav1.UpdateOptions{FieldManager: cm.Annotations[harness.AnnotationStamp]})
		return err
	}
	err = carryForward(other.Client, "team-a")
	denied(t, "team-a/reconciler-0 carries team-b's holder's stamp forward", err, "IdentityMismatch")
	if err != nil {
		t.Logf("team-a/reconciler-0: %v", err)
	}
	admitted(t, "team-b/reconciler-0, the holder, makes the same write", carryForward(holder.Client, "team-b"))
}
