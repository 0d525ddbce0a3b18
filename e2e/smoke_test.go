// Package e2e holds the end-to-end tests that run against a real
// kube-apiserver and etcd (see package cluster).
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
)

var cp *cluster.Cluster

// TestMain starts one control plane for the package, and after the tests
// stops it and checks that neither of its processes is left.
func TestMain(m *testing.M) {
	var err error
	cp, err = cluster.Start(context.Background(), cluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	etcd, api := cp.PIDs()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop: %v\n", err)
		code = 1
	}
	for name, pid := range map[string]int{"etcd": etcd, "kube-apiserver": api} {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			fmt.Fprintf(os.Stderr, "FAIL: %s (pid %d) still exists after Stop (kill -0: %v)\n", name, pid, err)
			code = 1
		}
	}
	os.Exit(code)
}

// pinnedVersion reads the k8s.io/kubernetes version from this module's go.mod.
func pinnedVersion(t *testing.T) string {
	t.Helper()
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" && strings.HasPrefix(fields[1], "v") {
			return fields[1]
		}
	}
	t.Fatal("k8s.io/kubernetes not pinned in go.mod")
	return ""
}

func TestKubectlVersionShowsPin(t *testing.T) {
	out, err := cp.Kubectl(context.Background(), nil, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Client struct{ GitVersion, Major, Minor string } `json:"clientVersion"`
		Server struct{ GitVersion, Major, Minor string } `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := pinnedVersion(t)
	if v.Server.GitVersion != want || v.Client.GitVersion != want {
		t.Errorf("server %q, client %q; want both %q", v.Server.GitVersion, v.Client.GitVersion, want)
	}
	if v.Server.Major != "1" || !strings.HasPrefix(want, "v1."+v.Server.Minor+".") {
		t.Errorf("server major/minor %q/%q do not match %s", v.Server.Major, v.Server.Minor, want)
	}
}

func TestLeaseAndConfigMap(t *testing.T) {
	ctx := context.Background()
	ns := "smoke-objects"
	if _, err := cp.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}

	// Create a Lease with the kubectl that was built alongside the server.
	manifest := fmt.Sprintf(`apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: controller
  namespace: %s
spec:
  holderIdentity: pod-a_1111
  leaseDurationSeconds: 15
  leaseTransitions: 0
`, ns)
	if _, err := cp.Kubectl(ctx, strings.NewReader(manifest), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	leases := cp.Client.CoordinationV1().Leases(ns)
	l, err := leases.Get(ctx, "controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "pod-a_1111" {
		t.Fatalf("holder %v", l.Spec.HolderIdentity)
	}

	// A takeover, as leader election writes it: new holder, transitions + 1.
	l.Spec.HolderIdentity = ptr.To("pod-b_2222")
	l.Spec.LeaseTransitions = ptr.To(int32(1))
	l.Spec.AcquireTime = &metav1.MicroTime{Time: metav1.Now().Time}
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ResourceVersion == l.ResourceVersion {
		t.Errorf("update kept resourceVersion %s", l.ResourceVersion)
	}
	// An update from the old resourceVersion must conflict.
	l.Spec.HolderIdentity = ptr.To("pod-a_1111")
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: want Conflict, got %v", err)
	}

	// ConfigMap: create through client-go, update through kubectl.
	cms := cp.Client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"mode": "a"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl(ctx, nil, "-n", ns, "patch", "configmap", "settings",
		"--type=merge", "-p", `{"data":{"mode":"b"}}`); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "b" {
		t.Errorf("configmap data %v after kubectl patch", cm.Data)
	}
	out, err := cp.Kubectl(ctx, nil, "-n", ns, "get", "lease", "controller", "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "pod-b_2222" {
		t.Errorf("kubectl sees holder %q", out)
	}
}

func TestRBACTellsAdminAndPodIdentityApart(t *testing.T) {
	ctx := context.Background()
	ns := "smoke-rbac"
	if _, err := cp.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	rules := []rbacv1.PolicyRule{{
		APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"},
		Verbs:     []string{"get", "create", "update"},
	}}
	id, err := cp.NewPodIdentity(ctx, ns, "worker", "worker-0", rules, "")
	if err != nil {
		t.Fatal(err)
	}

	admin, err := cluster.WhoAmI(ctx, cp.Client)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := cluster.WhoAmI(ctx, id.Client)
	if err != nil {
		t.Fatal(err)
	}
	if admin.Username == pod.Username {
		t.Fatalf("admin and pod identity are both %q", admin.Username)
	}
	if len(admin.Extra[cluster.PodNameExtraKey]) != 0 {
		t.Errorf("admin carries a pod name: %v", admin.Extra)
	}
	if got := pod.Extra[cluster.PodNameExtraKey]; len(got) != 1 || got[0] != "worker-0" {
		t.Errorf("pod identity extra %v, want pod-name worker-0", pod.Extra)
	}

	// Allowed where the Role allows.
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "work"}}
	if _, err := id.Client.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Errorf("pod identity create lease: %v", err)
	}
	// 403 where it has no rule: another resource, another verb, another namespace.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	checks := map[string]error{}
	_, checks["create configmap"] = id.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	checks["delete lease"] = id.Client.CoordinationV1().Leases(ns).Delete(ctx, "work", metav1.DeleteOptions{})
	_, checks["get lease in default"] = id.Client.CoordinationV1().Leases("default").Get(ctx, "work", metav1.GetOptions{})
	for what, err := range checks {
		if !apierrors.IsForbidden(err) {
			t.Errorf("pod identity %s: want 403 Forbidden, got %v", what, err)
		}
	}
	// The admin may do what the pod may not.
	if _, err := cp.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Errorf("admin create configmap: %v", err)
	}
	if err := cp.Client.CoordinationV1().Leases(ns).Delete(ctx, "work", metav1.DeleteOptions{}); err != nil {
		t.Errorf("admin delete lease: %v", err)
	}

	// The pod kubeconfig gives kubectl the same identity and the same limits.
	if _, err := cluster.KubectlWith(ctx, cp.KubectlPath(), id.Kubeconfig, nil, "-n", ns, "get", "configmaps"); err == nil ||
		!strings.Contains(err.Error(), "forbidden") {
		t.Errorf("kubectl as pod identity listing configmaps: want forbidden, got %v", err)
	}
}
