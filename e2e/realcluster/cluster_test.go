package realcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"leasefence.io/e2e/cluster"
	fencing "leasefence.io/fencing/go"
)

// TestFullerCluster: the fuller cluster itself, on unprotected objects: its
// nodes are Ready, kube-controller-manager runs its controllers under their
// own service accounts, a Deployment rolls out to Pods that the scheduler
// bound and kwok runs, a Job completes, the garbage collector removes a
// deleted Deployment's ReplicaSet and Pods, and a namespace deletion
// completes.
func TestFullerCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "plain")
	for _, n := range cp.Nodes {
		node, err := cp.Client.CoreV1().Nodes().Get(e.ctx, n, metav1.GetOptions{})
		if err != nil || !cluster.NodeReady(node) {
			t.Errorf("node %s not Ready: %v", n, err)
		}
	}
	// --use-service-account-credentials: the controllers' own accounts.
	for _, sa := range []string{"deployment-controller", "replicaset-controller", "job-controller", "namespace-controller", "generic-garbage-collector"} {
		if _, err := cp.Client.CoreV1().ServiceAccounts("kube-system").Get(e.ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("kube-system/%s: %v", sa, err)
		}
	}

	var none fencing.Stamp
	d := deployment("web", 2, none)
	d.Annotations = nil
	if _, err := cp.Client.AppsV1().Deployments(e.ns).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := job("batch", 2, none)
	j.Annotations = nil
	if _, err := cp.Client.BatchV1().Jobs(e.ns).Create(e.ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.rolloutStatus("deployment/web")
	pods, err := cp.Client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			t.Errorf("pod %s: node %q, phase %s, IP %q; want bound, Running, with an IP", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP)
		}
	}
	if out, err := e.kubectl("wait", "--for=condition=Complete", "job/batch", "--timeout=120s"); err != nil {
		t.Fatalf("job batch: %v: %s", err, out)
	}

	if err := cp.Client.AppsV1().Deployments(e.ns).Delete(e.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.await("the garbage collector removes web's ReplicaSet and Pods", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		rss, err := cp.Client.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error(), nil
		}
		pods, err := cp.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error(), nil
		}
		return len(rss.Items) == 0 && len(pods.Items) == 0, fmt.Sprintf("%d replicasets, %d pods", len(rss.Items), len(pods.Items)), nil
	})

	if err := cp.Client.CoreV1().Namespaces().Delete(e.ctx, e.ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.await("the namespace is gone", 90*time.Second, func(ctx context.Context) (bool, string, error) {
		_, err := cp.Client.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), errText(err), nil
	})
}
