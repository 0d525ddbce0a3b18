// Package leases tests the webhook's Kubernetes Lease sources (--lease-source
// kube and kube-cached) against a real kube-apiserver: the Lease's life
// cycle, the cache's freshness promise, watch interruptions and an API
// server restart, credentials and RBAC, coalescing under load, and /scale.
package leases

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	fencing "leasefence.io/fencing/go"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// c is the control plane shared by the tests of this package; they run one
// after the other (no t.Parallel), because only one webhook configuration
// named harness.WebhookName can be registered at a time.
var c *cluster.Cluster

func TestMain(m *testing.M) {
	if _, err := harness.Binary("webhook/leasefence-webhook"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var err error
	c, err = cluster.Start(context.Background(), cluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	// An API server restarted by TestAPIServerRestart is ours to stop, before
	// the cluster stops etcd.
	if err := stopRestartedAPIServer(); err != nil {
		fmt.Fprintf(os.Stderr, "stop the restarted kube-apiserver: %v\n", err)
		code = 1
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------------------
// Leases, driven as the admin

const leaseDuration = 15

// setLease creates the Lease ns/name, or updates it, to the given holder,
// term (leaseTransitions) and renewTime, as a leader-election client would
// write it. holder "" releases it as client-go's ReleaseOnCancel does
// (empty holder, leaseDurationSeconds 1).
func setLease(ctx context.Context, t *testing.T, ns, name, holder string, term int32, renew time.Time) *coordinationv1.Lease {
	t.Helper()
	api := c.Client.CoordinationV1().Leases(ns)
	now := metav1.NewMicroTime(renew)
	dur := int32(leaseDuration)
	if holder == "" {
		dur = 1
	}
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(holder),
		LeaseDurationSeconds: ptr.To(dur),
		AcquireTime:          &now,
		RenewTime:            &now,
		LeaseTransitions:     ptr.To(term),
	}
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l, err := api.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create Lease %s/%s: %v", ns, name, err)
		}
		return l
	}
	if err != nil {
		t.Fatalf("get Lease %s/%s: %v", ns, name, err)
	}
	if cur.Spec.AcquireTime != nil && cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity == holder {
		spec.AcquireTime = cur.Spec.AcquireTime // a renewal keeps acquireTime
	}
	cur.Spec = spec
	l, err := api.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update Lease %s/%s: %v", ns, name, err)
	}
	return l
}

// keepRenewing renews Lease ns/name every period (renewTime only, as its
// holder does every retryPeriod) until the returned stop is called; stop
// waits for the last renewal to finish. The cached source decides only on
// a copy whose renewTime is recent, so a test that expects decisions from
// the cache keeps its Lease renewed like a live holder would.
func keepRenewing(ctx context.Context, t *testing.T, ns, name string, period time.Duration) (stop func()) {
	t.Helper()
	api := c.Client.CoordinationV1().Leases(ns)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l, err := api.Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, err = api.Update(ctx, l, metav1.UpdateOptions{})
			}
			if err != nil && !apierrors.IsConflict(err) && ctx.Err() == nil {
				t.Errorf("renew Lease %s/%s: %v", ns, name, err)
				return
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

func deleteLease(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	if err := c.Client.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Lease %s/%s: %v", ns, name, err)
	}
}

// stampOf is the stamp of the Lease's holder as the holder would present it.
func stampOf(t *testing.T, l *coordinationv1.Lease) string {
	t.Helper()
	s, err := fencing.StampFromLease(l)
	if err != nil {
		t.Fatal(err)
	}
	return s.String()
}

// stampText builds a stamp by hand (for a holder no Lease names any more).
func stampText(term int32, uid types.UID, holder string) string {
	return fencing.Stamp{Term: term, LeaseUID: string(uid), Holder: holder}.String()
}

// ---------------------------------------------------------------------------
// Writers: pod-bound identities

// writerRules let a writer read and write ConfigMaps and Deployments (and
// their /scale) in its namespace.
var writerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "patch", "delete"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/scale"}, Verbs: []string{"get", "create", "update", "patch"}},
}

// newWriter makes a pod named pod in ns with a pod-bound token; its client
// acts as that pod (userInfo.extra names it), as a controller replica would.
func newWriter(ctx context.Context, t *testing.T, ns, pod string) *cluster.PodIdentity {
	t.Helper()
	id, err := c.NewPodIdentity(ctx, ns, "sa-"+pod, pod, writerRules, "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newNamespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if _, err := c.CreateNamespace(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
}

// writeCM writes the protected ConfigMap ns/name (guarded by the Lease
// leaseName) with the given stamp, as a helper does: on the object and as
// the per-request stamp in fieldManager. It is a merge patch of the stamp
// and a data change, or a create when the object does not exist yet. dryRun
// asks the API server (and so the webhook, which decides dry runs like real
// writes) for the outcome without storing anything.
func writeCM(ctx context.Context, client kubernetes.Interface, ns, name, leaseName, stamp, value string, dryRun bool) error {
	var dr []string
	if dryRun {
		dr = []string{metav1.DryRunAll}
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}},"data":{"value":%q}}`,
		harness.AnnotationLease, leaseName, harness.AnnotationStamp, stamp, value)
	_, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{DryRun: dr, FieldManager: stamp})
	if apierrors.IsNotFound(err) {
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
				harness.AnnotationLease: leaseName, harness.AnnotationStamp: stamp,
			}},
			Data: map[string]string{"value": value},
		}, metav1.CreateOptions{DryRun: dr, FieldManager: stamp})
	}
	return err
}

// isDenial tells whether err is leasefence's denial for reason.
func isDenial(err error, reason string) bool {
	return err != nil && strings.Contains(err.Error(), "leasefence denied") &&
		strings.Contains(err.Error(), "("+reason+")")
}

func wantAdmitted(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: want admitted, got %v", what, err)
	}
}

func wantDenied(t *testing.T, what string, err error, reason string, mentions ...string) {
	t.Helper()
	if !isDenial(err, reason) {
		t.Fatalf("%s: want a leasefence denial (%s), got %v", what, reason, err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: the denial does not mention %q: %v", what, m, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Webhooks

// startWebhook starts the webhook with the given source and flags and stops
// it (checking the clean exit) when the test ends.
func startWebhook(ctx context.Context, t *testing.T, source string, args ...string) *harness.Webhook {
	t.Helper()
	wh, err := harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: c, Dir: t.TempDir(), LeaseSource: source, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		if err := wh.Stop(); err != nil {
			t.Errorf("stop webhook: %v", err)
		}
		t.Logf("webhook (%s) stopped in %v", source, time.Since(start).Round(time.Millisecond))
	})
	return wh
}

// register registers wh as the webhook of the manifests (harness.Register)
// and removes the registration when the test ends.
func register(ctx context.Context, t *testing.T, wh *harness.Webhook) {
	t.Helper()
	if err := harness.Register(ctx, c, wh); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := harness.Unregister(ctx, c); err != nil {
			t.Errorf("unregister: %v", err)
		}
	})
}

// counter reads one metric of wh (sum over the series matching labels).
func counter(ctx context.Context, t *testing.T, wh *harness.Webhook, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := wh.Counter(ctx, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitCounterAbove waits until the metric exceeds before. The webhook counts
// a review when its connection reports the request complete, a moment after
// the answer went out, so the API server may already have finished.
func waitCounterAbove(ctx context.Context, t *testing.T, wh *harness.Webhook, name string, labels map[string]string, before float64, what string) float64 {
	t.Helper()
	// Counters here are whole numbers: above before is at least before+1.
	v, err := wh.WaitCounter(ctx, name, labels, before+1)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// cacheLookups returns leasefence_lease_cache_lookups_total by result.
func cacheLookups(ctx context.Context, t *testing.T, wh *harness.Webhook) map[string]float64 {
	t.Helper()
	text, err := wh.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range []string{"hit", "miss_absent", "miss_stale", "miss_watch_down", "live_requested"} {
		v, err := harness.ParseCounter(text, "leasefence_lease_cache_lookups_total", map[string]string{"result": r})
		if err != nil {
			t.Fatal(err)
		}
		out[r] = v
	}
	for _, n := range []string{"leasefence_lease_watch_restarts_total", "leasefence_lease_relists_total"} {
		v, err := harness.ParseCounter(text, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(n, "leasefence_lease_")] = v
	}
	v, err := harness.ParseCounter(text, "leasefence_lease_reads_total", map[string]string{"result": "ok"})
	if err != nil {
		t.Fatal(err)
	}
	out["reads_ok"] = v
	return out
}

func delta(after, before map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// ---------------------------------------------------------------------------
// Kubeconfigs of our own, for the webhook's credentials

// kubeconfigFor writes a kubeconfig for server (default: the API server)
// with the given credentials and context namespace.
func kubeconfigFor(t *testing.T, path, server, namespace string, auth *clientcmdapi.AuthInfo) string {
	t.Helper()
	return kubeconfigWithCA(t, path, server, c.CACertPEM, namespace, auth)
}

// kubeconfigWithCA is kubeconfigFor for a server whose certificate caPEM
// signed (a proxy that ends TLS itself).
func kubeconfigWithCA(t *testing.T, path, server string, caPEM []byte, namespace string, auth *clientcmdapi.AuthInfo) string {
	t.Helper()
	if server == "" {
		server = c.Host
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["u"] = auth
	cfg.Contexts["u"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "u", Namespace: namespace}
	cfg.CurrentContext = "u"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

const readerRole = "lf-e2e-lease-reader"

// leaseReader makes a ServiceAccount in namespace ns (created if needed)
// with a Pod of its own, bound to a ClusterRole with get, list and watch on
// Leases (what manifests/base grants the webhook), and returns the Pod and a
// token bound to it.
func leaseReader(ctx context.Context, t *testing.T, ns, name string) (*corev1.Pod, string) {
	t.Helper()
	ignoreExists := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	_, err := c.CreateNamespace(ctx, ns, nil)
	ignoreExists(err)
	_, err = c.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: readerRole},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{})
	ignoreExists(err)
	_, err = c.CreateServiceAccount(ctx, ns, name, nil)
	ignoreExists(err)
	_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: readerRole + "-" + ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: readerRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{})
	ignoreExists(err)
	return podWithToken(ctx, t, ns, name, name)
}

// podWithToken creates Pod ns/pod running as serviceAccount and returns it
// with a token bound to it.
func podWithToken(ctx context.Context, t *testing.T, ns, pod, serviceAccount string) (*corev1.Pod, string) {
	t.Helper()
	p, err := c.CreatePod(ctx, ns, pod, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	token, err := c.PodToken(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p, token
}
