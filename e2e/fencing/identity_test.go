package fencing_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// scheduledWriter is the client of a pod-bound identity of a hostNetwork pod
// bound to node (as the scheduler would bind it; no kubelet runs here), in
// namespace ns with a service account of its own. It checks that the API
// server names the node in the requester's userInfo.
func scheduledWriter(t *testing.T, e *env, ns, name, node string) kubernetes.Interface {
	t.Helper()
	if _, err := cp.CreateServiceAccount(e.ctx, ns, name, writerRules()); err != nil {
		t.Fatal(err)
	}
	pod, err := cp.Client.CoreV1().Pods(ns).Create(e.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName:           name,
			AutomountServiceAccountToken: ptr.To(false),
			NodeName:                     node,
			HostNetwork:                  true,
			Containers:                   []corev1.Container{{Name: "main", Image: "pause"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := cp.PodToken(e.ctx, pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cp.TokenConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	// The claim the node binding rests on: a pod-bound token of a scheduled
	// pod carries its node's name.
	who, err := cluster.WhoAmI(e.ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := who.Extra["authentication.kubernetes.io/node-name"]; len(got) != 1 || got[0] != node {
		t.Fatalf("%s/%s on %s: userInfo.extra node-name = %v; want [%s]", ns, name, node, got, node)
	}
	return client
}

// TestHostNetworkIdentity: in a hostNetwork pod the elector's identity is
// <node>_<uuid>. The holder's write from a pod on that node is admitted; the
// same stamp presented from a pod on another node, or from a pod on the
// holder's node in another namespace, is denied (IdentityMismatch).
func TestHostNetworkIdentity(t *testing.T) {
	e := newEnv(t, "hostnet")
	if _, err := cp.CreateNamespace(e.ctx, "hostnet-other", nil); err != nil {
		t.Fatal(err)
	}
	holder := scheduledWriter(t, e, e.ns, "ctrl-7d9f-x2k4p", "node-1")
	otherNode := scheduledWriter(t, e, e.ns, "ctrl-7d9f-abcde", "node-2")
	otherNS := scheduledWriter(t, e, "hostnet-other", "ctrl-7d9f-x2k4p", "node-1")
	s := e.setLease("node-1_5b0b2c3e", 1)

	// The other namespace's pod writes a ConfigMap of its own namespace
	// guarded by this Lease, as a writer of another namespace would.
	write := func(client kubernetes.Interface, ns, name string) error {
		cm := protectedCM(name, &s, nil)
		cm.Annotations[harness.AnnotationLease] = e.ns + "/ctrl"
		_, err := client.CoreV1().ConfigMaps(ns).Create(e.ctx, cm, createOpts(&s))
		return err
	}
	admitted(t, "the holder's pod on node-1", write(holder, e.ns, "by-holder"))
	err := write(otherNode, e.ns, "by-other-node")
	denied(t, "a pod on node-2 presenting the holder's stamp", err, "IdentityMismatch")
	if err != nil && !strings.Contains(err.Error(), `node "node-2"`) {
		t.Errorf("the denial does not name the requester's node: %v", err)
	}
	denied(t, "a pod on node-1 of another namespace presenting the holder's stamp",
		write(otherNS, "hostnet-other", "by-other-namespace"), "IdentityMismatch")
}
