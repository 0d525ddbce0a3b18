package realcluster_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	fencing "leasefence.io/fencing/go"
)

const nodeNameExtraKey = "authentication.kubernetes.io/node-name"

// hostNetworkPod creates a hostNetwork Pod of service account sa pinned by
// the scheduler to node, waits until it is bound there, and returns a client
// with a token bound to it (the token then names the node).
func (e *env) hostNetworkPod(name, sa, node string) kubernetes.Interface {
	e.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName:           sa,
			HostNetwork:                  true,
			NodeSelector:                 map[string]string{"kubernetes.io/hostname": node},
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := cp.Client.CoreV1().Pods(e.ns).Create(e.ctx, pod, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.await("pod "+name+" scheduled to "+node, 60*time.Second, func(ctx context.Context) (bool, string, error) {
		p, err := cp.Client.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pod = p
		return p.Spec.NodeName == node, "nodeName " + p.Spec.NodeName, nil
	})
	token, err := cp.PodToken(e.ctx, pod, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cp.TokenConfig(token))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestHostNetworkIdentity: a controller in a hostNetwork pod takes client-go's
// default identity, <node hostname>_<uuid>. With a pod-bound token (which
// names the node) and the default --identity-binding=when-present, the
// current leader's writes are admitted; a pod of the same service account on
// another node, presenting the holder's stamp, is denied IdentityMismatch.
func TestHostNetworkIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "hostnet")
	if len(cp.Nodes) < 2 {
		t.Fatalf("want two nodes, have %v", cp.Nodes)
	}
	if _, err := cp.CreateServiceAccount(e.ctx, e.ns, "ctrl", controllerRules()); err != nil {
		t.Fatal(err)
	}
	leader := e.hostNetworkPod("ctrl-hn-0", "ctrl", cp.Nodes[0])
	other := e.hostNetworkPod("ctrl-hn-1", "ctrl", cp.Nodes[1])
	who, err := whoAmIExtra(e.ctx, leader)
	if err != nil || who != cp.Nodes[0] {
		t.Fatalf("the leader's token names node %q (%v), want %s", who, err, cp.Nodes[0])
	}
	s := e.setLease("ctrl", cp.Nodes[0]+"_0b7e4d2c", 1)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shard-map", Annotations: protection("ctrl", s)}}
	_, err = leader.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(s, metav1.CreateOptions{}))
	admitted(t, "the hostNetwork leader's create", err)
	cm.Name = "shard-map-2"
	_, err = other.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(s, metav1.CreateOptions{}))
	denied(t, "a pod on another node presenting the holder's stamp", err, "IdentityMismatch")
}

// whoAmIExtra returns the node name the API server sees in c's token.
func whoAmIExtra(ctx context.Context, c kubernetes.Interface) (string, error) {
	u, err := cluster.WhoAmI(ctx, c)
	if err != nil {
		return "", err
	}
	if v := u.Extra[nodeNameExtraKey]; len(v) == 1 {
		return v[0], nil
	}
	return "", nil
}

// TestStampOfAnotherLease: an object guarded by Lease ctrl-a, written by the
// current holder of Lease ctrl-b with ctrl-b's stamp, is denied with a
// reason of its own (OtherLease), not as a re-created Lease.
func TestStampOfAnotherLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "otherlease")
	a := e.controller("ctrl-a")
	b := e.controller("ctrl-b")
	sa := e.setLease("ctrl-a", "ctrl-a_11", 2)
	sb := e.setLease("ctrl-b", "ctrl-b_22", 5)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shard-map", Annotations: protection("ctrl-a", sa)}}
	if _, err := a.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, fencing.CreateOptions(sa, metav1.CreateOptions{})); err != nil {
		t.Fatalf("ctrl-a's create: %v", err)
	}
	cur, err := b.Client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "shard-map", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Data = map[string]string{"owner": "b"}
	fencing.StampObject(cur, sb)
	_, err = b.Client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, cur, fencing.UpdateOptions(sb, metav1.UpdateOptions{}))
	denied(t, "ctrl-b's write to an object guarded by ctrl-a", err, "OtherLease", "Lease "+e.ns+"/ctrl-a", "stamp with its uid")
}
