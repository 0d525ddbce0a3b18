package realcluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// TestWorkloadsProgress: a protected Deployment, StatefulSet and Job,
// created by the guarded controller while it holds its Lease, are driven by
// kube-controller-manager's controllers (deployment, replicaset,
// statefulset, job; each writing /status and the ReplicaSets under its own
// service account), the scheduler and kwok's nodes: kubectl rollout status
// finishes for the Deployment and the StatefulSet, and the Job completes.
// The deployment controller copies the protection onto the ReplicaSet, whose
// writes are fenced too; the webhook denied none of the namespace's writes
// and counted exempt admissions.
func TestWorkloadsProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "workloads")
	id := e.controller("ctrl-0")
	s := e.setLease("ctrl", "ctrl-0_7f3e", 3)
	exemptBefore, err := wh.Requests(e.ctx, map[string]string{"decision": "allowed", "reason": "Exempt"})
	if err != nil {
		t.Fatal(err)
	}

	e.createDeployment(id, deployment("web", 2, s), s)
	if _, err := id.Client.AppsV1().StatefulSets(e.ns).Create(e.ctx, statefulSet("db", 2, s), fencing.CreateOptions(s, metav1.CreateOptions{})); err != nil {
		t.Fatalf("the controller's create of statefulset db: %v", err)
	}
	if _, err := id.Client.BatchV1().Jobs(e.ns).Create(e.ctx, job("batch", 2, s), fencing.CreateOptions(s, metav1.CreateOptions{})); err != nil {
		t.Fatalf("the controller's create of job batch: %v", err)
	}

	e.rolloutStatus("deployment/web")
	e.rolloutStatus("statefulset/db")
	if out, err := e.kubectl("wait", "--for=condition=Complete", "job/batch", "--timeout=120s"); err != nil {
		t.Fatalf("job batch did not complete: %v\n%s", err, e.denials())
	} else {
		t.Logf("kubectl wait job/batch: %s", strings.TrimSpace(out))
	}

	// The ReplicaSet carries the copied protection: its writes were fenced.
	rss, err := cp.Client.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rss.Items) != 1 {
		t.Fatalf("replicasets of web: %v, %v", rss, err)
	}
	if got := rss.Items[0].Annotations[harness.AnnotationLease]; got != "ctrl" {
		t.Errorf("the deployment controller did not copy the protection onto the ReplicaSet: %q", got)
	}
	// The status was written by kube-controller-manager (its managedFields
	// manager), not by the test.
	d, err := cp.Client.AppsV1().Deployments(e.ns).Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !managedBy(d.ManagedFields, "kube-controller-manager", "status") {
		t.Errorf("deployment web's status has no kube-controller-manager entry in managedFields: %v", managers(d.ManagedFields))
	}
	// The webhook admitted controllers' writes as exempt (the counter is the
	// package's: tests run in parallel; the denials below are this
	// namespace's).
	if _, err := wh.WaitRequests(e.ctx, map[string]string{"decision": "allowed", "reason": "Exempt"}, exemptBefore+1); err != nil {
		t.Errorf("no exempt admission counted: %v", err)
	}
	if n, _ := e.denialLog(); n != 0 {
		t.Errorf("the webhook denied writes while the workloads progressed: %s", e.denials())
	}
}

// TestRolloutAcrossLeaderChange: the guarded controller's leader changes
// (term 3, holder ctrl-a, to term 4, holder ctrl-b); the new leader
// re-stamps its Deployment with a new image. The deployment controller
// creates a new ReplicaSet (carrying term 4), scales the old one (which
// carries term 3, copied when it was made) down, and deletes it (history
// limit 0): the rollout finishes with one ReplicaSet, and the old
// ReplicaSet's scale-down and deletion, made by the deployment controller
// and not by the stale leader, are not taken for the stale leader's.
func TestRolloutAcrossLeaderChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "leaderchange")
	a := e.controller("ctrl-a")
	b := e.controller("ctrl-b")
	sa := e.setLease("ctrl", "ctrl-a_1c9d", 3)
	e.createDeployment(a, deployment("web", 2, sa), sa)
	e.rolloutStatus("deployment/web")

	sb := e.setLease("ctrl", "ctrl-b_52aa", 4)
	// The new leader re-stamps the Deployment when it wins the Lease and
	// changes its image: a strategic merge patch, stamped on the object and
	// per request.
	patch, err := fencing.MergePatch([]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.k8s.io/pause:3.9"}]}}}}`), sb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client.AppsV1().Deployments(e.ns).Patch(e.ctx, "web", types.StrategicMergePatchType, patch, fencing.PatchOptions(sb, metav1.PatchOptions{})); err != nil {
		t.Fatalf("the new leader's re-stamp: %v", err)
	}
	e.rolloutStatus("deployment/web")
	e.await("the old ReplicaSet scaled down and deleted", 90*time.Second, func(ctx context.Context) (bool, string, error) {
		rss, err := cp.Client.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, rs := range rss.Items {
			names = append(names, fmt.Sprintf("%s(replicas %d, stamp %s)", rs.Name, ptrVal(rs.Spec.Replicas), rs.Annotations[harness.AnnotationStamp]))
		}
		return len(rss.Items) == 1 && rss.Items[0].Annotations[harness.AnnotationStamp] == sb.String(),
			"replicasets: " + strings.Join(names, ", "), nil
	})
	e.await("two pods of the new template", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		pods, err := cp.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error(), nil
		}
		var seen []string
		for _, p := range pods.Items {
			seen = append(seen, p.Name+" "+p.Spec.Containers[0].Image)
		}
		ok := len(pods.Items) == 2
		for _, p := range pods.Items {
			ok = ok && p.Spec.Containers[0].Image == "registry.k8s.io/pause:3.9"
		}
		return ok, strings.Join(seen, ", "), nil
	})
}

func ptrVal(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

// managedBy: managedFields holds an entry of manager for subresource ("" for
// the main resource).
func managedBy(fields []metav1.ManagedFieldsEntry, manager, subresource string) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Subresource == subresource {
			return true
		}
	}
	return false
}

func managers(fields []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, f := range fields {
		out = append(out, f.Manager+"/"+f.Subresource)
	}
	return out
}
