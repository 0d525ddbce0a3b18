package leases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// decideDirect checks one webhook's decisions on a Lease through direct
// reviews: the holder's stamp is admitted, the previous holder's denied as
// StaleTerm. Both need a successful Lease read.
func decideDirect(ctx context.Context, t *testing.T, wh *harness.Webhook, ns, current, stale string) {
	t.Helper()
	hc := reviewClient(wh, 1)
	defer hc.CloseIdleConnections()
	resp, err := postReview(ctx, hc, wh, configMapUpdate("cur-"+ns, ns, "cm", "ctrl", current, "pod-b"))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Allowed || reason(resp) != "Current" {
		t.Errorf("current stamp: allowed=%v reason=%s: %s", resp.Allowed, reason(resp), message(resp))
	}
	resp, err = postReview(ctx, hc, wh, configMapUpdate("stale-"+ns, ns, "cm", "ctrl", stale, "pod-a"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Allowed || reason(resp) != "StaleTerm" {
		t.Errorf("stale stamp: allowed=%v reason=%s: %s", resp.Allowed, reason(resp), message(resp))
	}
}

// takenOverLease makes Lease ns/ctrl held by pod-b_2 in term 1 after
// pod-a_1 in term 0, and returns the current and the stale stamp.
func takenOverLease(ctx context.Context, t *testing.T, ns string) (current, stale string) {
	t.Helper()
	newNamespace(ctx, t, ns)
	setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	l := setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	// Renewed as its holder would, so the current stamp stays current
	// however long the test's webhooks take to start on a loaded machine
	// (a 15 s Lease renewed once expired mid-test).
	keepRenewing(ctx, t, ns, "ctrl", time.Second)
	return stampOf(t, l), stampText(0, l.UID, "pod-a_1")
}

// TestCredentialKinds runs the webhook with a kubeconfig of each credential
// kind it supports, in both Kubernetes sources: a client certificate (the
// admin kubeconfig the cluster writes, certificate and key inline), a bearer
// token, and a tokenFile. Each must read the Lease and decide.
func TestCredentialKinds(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	current, stale := takenOverLease(ctx, t, "creds")
	dir := t.TempDir()
	_, token := leaseReader(ctx, t, "lf-readers", "reader-creds")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kinds := []struct{ name, kubeconfig string }{
		{"client-certificate", c.KubeconfigPath},
		{"token", kubeconfigFor(t, filepath.Join(dir, "token.kubeconfig"), "", "", &clientcmdapi.AuthInfo{Token: token})},
		{"tokenFile", kubeconfigFor(t, filepath.Join(dir, "tokenfile.kubeconfig"), "", "", &clientcmdapi.AuthInfo{TokenFile: tokenFile})},
	}
	for _, k := range kinds {
		for _, source := range []string{"kube", "kube-cached"} {
			t.Run(k.name+"/"+source, func(t *testing.T) {
				wh := startWebhook(ctx, t, source, "--kubeconfig", k.kubeconfig)
				decideDirect(ctx, t, wh, "creds", current, stale)
				if n := counter(ctx, t, wh, "leasefence_lease_reads_total", map[string]string{"result": "ok"}); n < 1 && source == "kube" {
					t.Errorf("no successful Lease read counted")
				}
			})
		}
	}
}

// TestTokenFileReplaced: the webhook's kubeconfig names a tokenFile. The
// file is replaced (write and rename, as the kubelet's projected volume
// does) by a token bound to another Pod, and the first token is made
// invalid by deleting the Pod it was bound to. The next decision succeeds,
// so the webhook read the Lease with the new token.
func TestTokenFileReplaced(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	current, stale := takenOverLease(ctx, t, "tokenfile")
	dir := t.TempDir()
	pod1, token1 := leaseReader(ctx, t, "lf-readers", "reader-rotate")
	_, token2 := podWithToken(ctx, t, "lf-readers", "reader-rotate-2", "reader-rotate")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token1), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := kubeconfigFor(t, filepath.Join(dir, "kubeconfig"), "", "", &clientcmdapi.AuthInfo{TokenFile: tokenFile})
	wh := startWebhook(ctx, t, "kube", "--kubeconfig", kc)
	decideDirect(ctx, t, wh, "tokenfile", current, stale)

	tmp := tokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(token2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tokenFile); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.CoreV1().Pods("lf-readers").Delete(ctx, pod1.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	old, err := kubernetes.NewForConfig(c.TokenConfig(token1))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cluster.Poll(ctx, 60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		_, err := old.CoordinationV1().Leases("tokenfile").Get(ctx, "ctrl", metav1.GetOptions{})
		return apierrors.IsUnauthorized(err), fmt.Sprintf("old token: %v", err), nil
	}); err != nil {
		t.Fatalf("the first token stays valid after its Pod was deleted: %v", err)
	}
	t.Logf("the old token was rejected %v after its Pod was deleted", time.Since(start).Round(time.Millisecond))
	before := cacheLookups(ctx, t, wh)["reads_ok"]
	decideDirect(ctx, t, wh, "tokenfile", current, stale)
	if after := cacheLookups(ctx, t, wh)["reads_ok"]; after < before+2 {
		t.Errorf("Lease reads ok %v -> %v after the token was replaced; want two more", before, after)
	}
	if n := counter(ctx, t, wh, "leasefence_lease_reads_total", map[string]string{"result": "denied"}) +
		counter(ctx, t, wh, "leasefence_lease_reads_total", map[string]string{"result": "error"}); n != 0 {
		t.Errorf("%v Lease reads failed: the old token was used", n)
	}
}

// warnings collects the warnings the API server returns (client-go's
// rest.WarningHandler).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.list, "\n")
}

// TestRBACWithoutGet: the webhook's identity may get Leases only in its own
// namespace (the readiness probe's, so it becomes ready) and in the
// registration probe's namespace, not where the guarding Lease is. A fenced
// write is then denied, fail closed, with a message that names the missing
// permission; with --on-lease-unavailable=admit it is admitted, and the
// writer gets a warning.
func TestRBACWithoutGet(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const ns, own = "rbac", "lf-noget"
	l := setLeaseInNewNamespace(ctx, t, ns)
	stamp := stampOf(t, l)
	a := newWriter(ctx, t, ns, "pod-a")

	// The identity: get on Leases in its own namespace and in the
	// registration probe's namespace only.
	if _, err := c.CreateNamespace(ctx, own, nil); err != nil {
		t.Fatal(err)
	}
	getLeases := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}}}
	if _, err := c.CreateServiceAccount(ctx, own, "webhook", getLeases); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNamespace(ctx, harness.ProbeNamespace, nil); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().Roles(harness.ProbeNamespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "noget-probe"}, Rules: getLeases,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(harness.ProbeNamespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "noget-probe"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "noget-probe"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: own, Name: "webhook"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, token := podWithToken(ctx, t, own, "webhook", "webhook")
	kc := kubeconfigFor(t, filepath.Join(t.TempDir(), "kubeconfig"), "", own, &clientcmdapi.AuthInfo{Token: token})
	write := func(client kubernetes.Interface, value string) error {
		return writeCM(ctx, client, ns, "cm", "ctrl", stamp, value, false)
	}

	t.Run("deny", func(t *testing.T) {
		wh := startWebhook(ctx, t, "kube", "--kubeconfig", kc)
		register(ctx, t, wh)
		err := write(a.Client, "1")
		wantDenied(t, "fenced write, no get on the Lease", err, "LeaseUnavailable", `cannot get resource "leases"`, ns+"/ctrl")
		t.Logf("denial: %v", err)
		if n := counter(ctx, t, wh, "leasefence_lease_reads_total", map[string]string{"result": "denied"}); n < 1 {
			t.Errorf("leasefence_lease_reads_total{result=\"denied\"} = %v", n)
		}
	})
	t.Run("admit", func(t *testing.T) {
		wh := startWebhook(ctx, t, "kube", "--kubeconfig", kc, "--on-lease-unavailable", "admit")
		register(ctx, t, wh)
		var w warnings
		cfg := rest.CopyConfig(a.Config)
		cfg.WarningHandler = &w
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wantAdmitted(t, "fenced write, no get on the Lease, --on-lease-unavailable=admit", write(client, "2"))
		// A warning is at most 256 characters (the API server's limit), so
		// the webhook puts the cause first: the Lease and the API server's
		// sentence naming the missing permission survive the cut.
		got := w.all()
		for _, m := range []string{"admitted WITHOUT fencing", "Lease " + ns + "/ctrl", "403 Forbidden", `cannot get resource "leases"`} {
			if !strings.Contains(got, m) {
				t.Errorf("warning %q does not mention %q", got, m)
			}
		}
		t.Logf("warning (%d characters): %s", len([]rune(got)), got)
		waitCounterAbove(ctx, t, wh, "leasefence_requests_total", map[string]string{"decision": "allowed", "reason": "AdmittedUnavailable"}, 0,
			"the admission was not counted as AdmittedUnavailable")
	})
}

func setLeaseInNewNamespace(ctx context.Context, t *testing.T, ns string) *coordinationv1.Lease {
	t.Helper()
	newNamespace(ctx, t, ns)
	return setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
}
