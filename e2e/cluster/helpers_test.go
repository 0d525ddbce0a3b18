package cluster_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
)

func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	if _, err := shared.CreateNamespace(context.Background(), name, labels); err != nil {
		t.Fatal(err)
	}
	return name
}

var leaseRules = []rbacv1.PolicyRule{{
	APIGroups: []string{"coordination.k8s.io"},
	Resources: []string{"leases"},
	Verbs:     []string{"get", "list", "create", "update"},
}}

func TestPodIdentity(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, nil)
	id, err := shared.NewPodIdentity(ctx, ns, "elector", "elector-0", leaseRules, "")
	if err != nil {
		t.Fatal(err)
	}

	// The API server must see the pod behind the token.
	user, err := cluster.WhoAmI(ctx, id.Client)
	if err != nil {
		t.Fatal(err)
	}
	if want := "system:serviceaccount:" + ns + ":elector"; user.Username != want {
		t.Errorf("username %q, want %q", user.Username, want)
	}
	if got := user.Extra[cluster.PodNameExtraKey]; len(got) != 1 || got[0] != "elector-0" {
		t.Errorf("extra[%s] = %v, want [elector-0]; all extra: %v", cluster.PodNameExtraKey, got, user.Extra)
	}
	if got := user.Extra["authentication.kubernetes.io/pod-uid"]; len(got) != 1 || got[0] != string(id.Pod.UID) {
		t.Errorf("pod-uid extra = %v, want [%s]", got, id.Pod.UID)
	}

	// The same identity from another process, through the kubeconfig file.
	out, err := cluster.KubectlWith(ctx, shared.KubectlPath(), id.Kubeconfig, nil, "auth", "whoami", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Extra map[string][]string `json:"extra"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		t.Fatalf("kubectl auth whoami: %v: %s", err, out)
	}
	if got := review.Status.UserInfo.Extra[cluster.PodNameExtraKey]; len(got) != 1 || got[0] != "elector-0" {
		t.Errorf("kubectl with the pod kubeconfig: pod-name extra = %v", got)
	}

	// No kubelet, no scheduler: the pod stays Pending.
	pod, err := shared.Client.CoreV1().Pods(ns).Get(ctx, "elector-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("pod phase %q, want Pending", pod.Status.Phase)
	}

	// RBAC: the Role allows Leases in its namespace and nothing else.
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l"}}
	if _, err := id.Client.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Errorf("create lease as pod identity: %v", err)
	}
	_, err = id.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("list configmaps as pod identity: want Forbidden, got %v", err)
	}

	// Deleting the pod invalidates its token.
	if err := shared.Client.CoreV1().Pods(ns).Delete(ctx, "elector-0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		_, err := cluster.WhoAmI(ctx, id.Client)
		return apierrors.IsUnauthorized(err), fmt.Sprintf("token still accepted after its pod was deleted (last error: %v)", err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// denyingWebhook answers every AdmissionReview with a denial and counts calls.
func denyingWebhook(t *testing.T, calls *atomic.Int32) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{
			UID:     review.Request.UID,
			Allowed: false,
			Result:  &metav1.Status{Code: http.StatusForbidden, Message: "denied by test webhook"},
		}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRegisterWebhook(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, map[string]string{"leasefence-test": "webhook"})
	var calls atomic.Int32
	srv := denyingWebhook(t, &calls)
	p := srv.Listener.Addr().(*net.TCPAddr).Port

	name := "deny.test.leasefence.io"
	vwc, err := shared.RegisterWebhook(ctx, cluster.Webhook{
		Name:     name,
		Port:     p,
		Path:     "/validate",
		CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
			},
		}},
		FailurePolicy:  admissionregistrationv1.Fail,
		TimeoutSeconds: 2,
		// Only ConfigMaps labelled deny=yes reach the webhook.
		MatchConditions: []admissionregistrationv1.MatchCondition{{
			Name:       "labelled",
			Expression: `has(object.metadata.labels) && "deny" in object.metadata.labels && object.metadata.labels["deny"] == "yes"`,
		}},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"leasefence-test": "webhook"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.UnregisterWebhook(context.Background(), name) })
	wh := vwc.Webhooks[0]
	if want := fmt.Sprintf("https://127.0.0.1:%d/validate", p); wh.ClientConfig.URL == nil || *wh.ClientConfig.URL != want {
		t.Errorf("url %v, want %s", wh.ClientConfig.URL, want)
	}
	if *wh.TimeoutSeconds != 2 || *wh.FailurePolicy != admissionregistrationv1.Fail || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("timeout %d, failurePolicy %s, sideEffects %s", *wh.TimeoutSeconds, *wh.FailurePolicy, *wh.SideEffects)
	}

	cm := func(n string, labels map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: labels}}
	}
	deny := map[string]string{"deny": "yes"}

	// Registration takes effect asynchronously: poll until the webhook denies.
	attempt := 0
	err = cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		attempt++
		_, err := shared.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm(fmt.Sprintf("probe-%d", attempt), deny), metav1.CreateOptions{})
		if err != nil && strings.Contains(err.Error(), "denied by test webhook") {
			t.Logf("denied after %d attempt(s): %v", attempt, err)
			return true, "", nil
		}
		return false, fmt.Sprintf("webhook never denied (last: %v)", err), nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// matchConditions: an unlabelled ConfigMap never reaches the webhook.
	before := calls.Load()
	if _, err := shared.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm("plain", nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("unlabelled configmap: %v", err)
	}
	if calls.Load() != before {
		t.Errorf("webhook called for an object its matchConditions exclude")
	}
	// namespaceSelector: another namespace is not affected.
	other := newNamespace(t, nil)
	if _, err := shared.Client.CoreV1().ConfigMaps(other).Create(ctx, cm("labelled", deny), metav1.CreateOptions{}); err != nil {
		t.Errorf("labelled configmap outside the selected namespace: %v", err)
	}

	if err := shared.UnregisterWebhook(ctx, name); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		attempt++
		_, err := shared.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm(fmt.Sprintf("after-%d", attempt), deny), metav1.CreateOptions{})
		return err == nil, fmt.Sprintf("still denied after unregistering: %v", err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := shared.UnregisterWebhook(ctx, name); err != nil {
		t.Errorf("unregistering twice: %v", err)
	}
}

func TestWidgetCRD(t *testing.T) {
	ctx := context.Background()
	if err := shared.InstallWidgetCRD(ctx); err != nil {
		t.Fatal(err)
	}
	// A second install of the same definition is harmless.
	if err := shared.InstallWidgetCRD(ctx); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, nil)
	widgets := shared.Dynamic.Resource(cluster.WidgetGVR).Namespace(ns)

	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(cluster.WidgetGVK)
	w.SetName("w1")
	w.Object["spec"] = map[string]any{"replicas": int64(1), "colour": "blue"}
	created, err := widgets.Create(ctx, w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := unstructured.NestedString(created.Object, "spec", "colour"); c != "blue" {
		t.Errorf("unknown spec field not preserved: %v", created.Object["spec"])
	}

	// /status: only status changes through it.
	created.Object["status"] = map[string]any{"replicas": int64(1), "phase": "Ready"}
	created.Object["spec"] = map[string]any{"replicas": int64(7), "colour": "red"}
	st, err := widgets.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(st.Object, "status", "phase"); p != "Ready" {
		t.Errorf("status not written: %v", st.Object["status"])
	}
	if c, _, _ := unstructured.NestedString(st.Object, "spec", "colour"); c != "blue" {
		t.Errorf("a /status write changed spec: %v", st.Object["spec"])
	}

	// /scale reads and writes spec.replicas.
	scale, err := widgets.Get(ctx, "w1", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if k := scale.GetKind(); k != "Scale" {
		t.Errorf("scale subresource kind %q", k)
	}
	if err := unstructured.SetNestedField(scale.Object, int64(5), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if _, err := widgets.Update(ctx, scale, metav1.UpdateOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	got, err := widgets.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 5 {
		t.Errorf("spec.replicas = %d after scaling to 5", r)
	}
}
