package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The fuller cluster: beside etcd and kube-apiserver, kube-controller-manager
// with its default controllers (each writing under its own service account,
// as kubeadm runs it), kube-scheduler, and kwok, which plays the kubelet of
// simulated nodes: it takes their Pods to Running and Ready without a
// container engine. Deployments then roll out, StatefulSets and Jobs
// progress, and the garbage collector and namespace deletion run for real.

// KwokNodeAnnotation marks the Nodes kwok manages (kwok's own default
// selector, kwok.x-k8s.io/node=fake).
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// fullParts are the fuller cluster's processes (nil without Options.Full).
type fullParts struct {
	kcm, scheduler, kwok *process
}

// startFull starts kube-controller-manager, kube-scheduler and kwok against
// the running API server, creates nodes kwok Nodes, and waits until every
// node is Ready and schedulable, each component reports healthy, and the
// controllers are at work (the service-account controller has made the
// default namespace's ServiceAccount).
func (c *Cluster) startFull(ctx context.Context, keys *pki, nodes int) error {
	for _, b := range []string{"kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"} {
		if p := filepath.Join(c.BinDir, b); !fileExists(p) {
			return fmt.Errorf("%s not found at %s: the fuller cluster needs the binaries of the current e2e/build.sh; run it and set %s to the folder it prints", b, p, BinDirEnv)
		}
	}
	if err := keys.writeCAKey(); err != nil {
		return err
	}
	kubeconfig := func(name, cn string, orgs ...string) (string, error) {
		cert, key, err := keys.clientCert(cn, orgs...)
		if err != nil {
			return "", err
		}
		path := filepath.Join(c.Dir, name+".kubeconfig")
		return path, writeKubeconfig(path, c.Host, keys.caCertPEM, cn,
			&clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key})
	}
	// The users the RBAC bootstrap policy binds to their ClusterRoles.
	kcmConfig, err := kubeconfig("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	schedConfig, err := kubeconfig("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	// kwok plays every node's kubelet and node-lease holder; it acts as a
	// cluster admin here (a real kubelet writes as system:node:<name>). It
	// writes only Nodes, Pods and node Leases, none of which leasefence fences.
	kwokConfig, err := kubeconfig("kwok", "leasefence-e2e-kwok", "system:masters")
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2]

	c.ControllerManagerLog = filepath.Join(c.Dir, "kube-controller-manager.log")
	if c.full.kcm, err = startProcess("kube-controller-manager", filepath.Join(c.BinDir, "kube-controller-manager"), append([]string{
		// As kubeadm runs it: each controller acts as its own service account
		// in kube-system (system:serviceaccount:kube-system:<controller>).
		"--use-service-account-credentials=true",
		"--controllers=*",
		"--service-account-private-key-file=" + keys.saPrivateFile,
		"--root-ca-file=" + keys.caFile,
		"--cluster-signing-cert-file=" + keys.caFile,
		"--cluster-signing-key-file=" + keys.caKeyFile,
		// One instance: leader election would only add its Lease renewals.
		"--leader-elect=false",
	}, c.componentFlags(kcmConfig, kcmPort, "kube-controller-manager")...), c.ControllerManagerLog); err != nil {
		return err
	}
	c.SchedulerLog = filepath.Join(c.Dir, "kube-scheduler.log")
	if c.full.scheduler, err = startProcess("kube-scheduler", filepath.Join(c.BinDir, "kube-scheduler"),
		append([]string{"--leader-elect=false"}, c.componentFlags(schedConfig, schedPort, "kube-scheduler")...), c.SchedulerLog); err != nil {
		return err
	}
	c.KwokLog = filepath.Join(c.Dir, "kwok.log")
	if c.full.kwok, err = startProcess("kwok", filepath.Join(c.BinDir, "kwok"), []string{
		"--kubeconfig=" + kwokConfig,
		// The stages kwokctl gives its nodes (build.sh copies them from the
		// pinned module): nodes become Ready, Pods Running and Ready, Pods
		// of finished Jobs Succeeded, deleted Pods go away.
		"--config=" + filepath.Join(c.BinDir, "kwok-stages.yaml"),
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--node-ip=127.0.0.1",
		// kwok's server (health, and the kubelet port it advertises) on a
		// port of its own: the default 0.0.0.0:10247 would collide between
		// two clusters on one machine.
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
		fmt.Sprintf("--node-port=%d", kwokPort),
		"--cidr=10.244.0.0/16",
	}, c.KwokLog); err != nil {
		return err
	}

	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		_, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"type": "kwok",
			},
		}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}

	// The components serve self-signed certificates (made in --cert-dir);
	// only their health is read, on loopback, so it is not verified.
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer client.CloseIdleConnections()
	checks := []struct {
		p   *process
		url string
	}{
		{c.full.kcm, fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort)},
		{c.full.scheduler, fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort)},
		{c.full.kwok, fmt.Sprintf("http://127.0.0.1:%d/healthz", kwokPort)},
	}
	last := "nothing checked yet"
	for {
		ready, note, err := c.fullReady(ctx, client, checks)
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		last = note
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("the fuller cluster was not ready in time: %s; logs: %s %s %s",
				last, c.ControllerManagerLog, c.SchedulerLog, c.KwokLog)
		}
	}
}

// componentFlags are the flags kube-controller-manager and kube-scheduler
// share: the API server through kubeconfig (also for authenticating and
// authorizing requests to them), and their health served on a loopback port
// with a self-signed certificate made in DIR/<name>-certs.
func (c *Cluster) componentFlags(kubeconfig string, port int, name string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(c.Dir, name+"-certs"),
		"--v=1",
	}
}

// fullReady reports whether every component is healthy, every node Ready
// and schedulable, and the controllers at work; note says what is missing.
func (c *Cluster) fullReady(ctx context.Context, client *http.Client, checks []struct {
	p   *process
	url string
}) (bool, string, error) {
	for _, p := range []*process{c.apiserver, c.etcd} {
		if p.exited() {
			return false, "", p.exitError()
		}
	}
	for _, ch := range checks {
		if ch.p.exited() {
			return false, "", ch.p.exitError()
		}
		resp, err := client.Get(ch.url)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", ch.p.name, err), nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("%s /healthz: %s %s", ch.p.name, resp.Status, shorten(strings.TrimSpace(string(body)))), nil
		}
	}
	for _, name := range c.Nodes {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Sprintf("node %s: %v", name, err), nil
		}
		if !NodeReady(n) {
			return false, fmt.Sprintf("node %s not Ready yet (taints %v)", name, n.Spec.Taints), nil
		}
	}
	if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return false, fmt.Sprintf("the service-account controller has not made default/default yet: %v", err), nil
	}
	return true, "", nil
}

// NodeReady: the node's Ready condition is True and the node lifecycle
// controller has left (or lifted) no not-ready or unreachable taint, so Pods
// can be scheduled to it.
func NodeReady(n *corev1.Node) bool {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	return ready
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
