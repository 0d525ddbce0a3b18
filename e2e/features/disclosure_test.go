package features

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/harness"
)

// auditEvent is what the test reads of one line of the audit log.
type auditEvent struct {
	Verb  string `json:"verb"`
	Stage string `json:"stage"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// webhookAuditAnnotations returns the webhook's audit annotations (keys
// without the "fence.leasefence.io/" prefix the API server adds) of the
// completed create of ConfigMap ns/name by user, and whether it was found.
func webhookAuditAnnotations(t *testing.T, user, ns, name string) (map[string]string, bool) {
	t.Helper()
	f, err := os.Open(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if e.Stage != "ResponseComplete" || e.Verb != "create" || e.User.Username != user ||
			e.ObjectRef.Resource != "configmaps" || e.ObjectRef.Namespace != ns || e.ObjectRef.Name != name {
			continue
		}
		a := map[string]string{}
		for k, v := range e.Annotations {
			if rest, ok := strings.CutPrefix(k, harness.WebhookName+"/"); ok {
				a[rest] = v
			}
		}
		return a, true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return nil, false
}

// TestLeaseNotDisclosed: a tenant who may not read Leases in kube-system
// creates ConfigMaps in its own namespace protected by
// kube-system/kube-controller-manager, with no stamp and with a made-up one.
// leasefence denies them, and neither the denial the tenant receives from
// the API server nor the audit annotations the API server records name that
// Lease's holder, term or uid. The made-up stamp over a Lease of the
// tenant's own namespace is denied with that Lease's state shown, so the
// check is not vacuous.
func TestLeaseNotDisclosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		tenantNS = "tenant"
		holder   = "control-plane-7f3a9_5e0c4c1f-2d8b-4f6a-9c3e-0a1b2c3d4e5f"
		term     = 7364
	)
	kcm := setLease(ctx, t, "kube-system", "kube-controller-manager", holder, term)
	own := setLease(ctx, t, tenantNS, "ctrl", "tenant-ctrl_77aa", 5123)

	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}}}
	id, err := c.NewPodIdentity(ctx, tenantNS, "tenant-app", "tenant-app-0", rules, "")
	if err != nil {
		t.Fatal(err)
	}
	// The tenant cannot read the guarding Lease itself.
	if _, err := id.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the tenant reads kube-system/kube-controller-manager: want Forbidden, got %v", err)
	}
	user := "system:serviceaccount:" + tenantNS + ":tenant-app"

	secrets := func(l *coordinationv1.Lease) []string {
		return []string{*l.Spec.HolderIdentity, string(l.UID), fmt.Sprint(*l.Spec.LeaseTransitions)}
	}
	create := func(name, lease, stamp string) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{harness.AnnotationLease: lease}}}
		opts := metav1.CreateOptions{}
		if stamp != "" {
			cm.Annotations[harness.AnnotationStamp] = stamp
			opts.FieldManager = stamp
		}
		_, err := id.Client.CoreV1().ConfigMaps(tenantNS).Create(ctx, cm, opts)
		return err
	}
	madeUp := "lf1:0:00000000-0000-4000-8000-000000000000:tenant-app-0"
	cases := []struct {
		name, lease, stamp string
		guard              *coordinationv1.Lease
		disclosed, denied  bool
	}{
		// Others may add protection (admitted); the made-up stamp is
		// denied as a stamp of another Lease.
		{"kcm-unstamped", "kube-system/kube-controller-manager", "", kcm, false, false},
		{"kcm-made-up", "kube-system/kube-controller-manager", madeUp, kcm, false, true},
		// The tenant's own Lease: the made-up stamp is judged against it,
		// and the denial shows it.
		{"own-made-up", "ctrl", madeUp, own, true, true},
	}
	for _, tc := range cases {
		err := create(tc.name, tc.lease, tc.stamp)
		text := ""
		if err != nil {
			if !strings.Contains(err.Error(), "leasefence denied") {
				t.Errorf("%s: want admitted or leasefence's denial, got %v", tc.name, err)
				continue
			}
			text = err.Error()
		}
		if tc.denied && err == nil {
			t.Errorf("%s: admitted, want denied", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		a, ok := webhookAuditAnnotations(t, user, tenantNS, tc.name)
		if !ok || a["reason"] == "" {
			t.Errorf("%s: no audit event with leasefence's annotations for the create (found %v): %v", tc.name, ok, a)
			continue
		}
		t.Logf("%s: audit annotations %v", tc.name, a)
		for k, v := range a {
			text += "\n" + k + "=" + v
		}
		shown := 0
		for _, s := range secrets(tc.guard) {
			if strings.Contains(text, s) {
				shown++
				if !tc.disclosed {
					t.Errorf("%s: the answer or the audit annotations show %q of Lease %s: %s", tc.name, s, tc.lease, text)
				}
			}
		}
		if tc.disclosed && shown == 0 {
			t.Errorf("%s: nothing of the tenant's own Lease shown: %s", tc.name, text)
		}
	}
}

// setLease creates or updates Lease ns/name held by holder in term, renewed
// now for an hour.
func setLease(ctx context.Context, t *testing.T, ns, name, holder string, term int32) *coordinationv1.Lease {
	t.Helper()
	if ns != "kube-system" {
		if _, err := c.CreateNamespace(ctx, ns, nil); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	now := metav1.NewMicroTime(time.Now())
	spec := coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](3600),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To(term)}
	api := c.Client.CoordinationV1().Leases(ns)
	l, err := api.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		l.Spec = spec
		l, err = api.Update(ctx, l, metav1.UpdateOptions{})
	} else if apierrors.IsNotFound(err) {
		l, err = api.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}
