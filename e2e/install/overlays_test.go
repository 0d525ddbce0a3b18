package install

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestOverlaysAndComponentsBuild builds every overlay and component of
// manifests/ with the cluster's kubectl (components inside a small overlay
// of their own, as manifests/README.md shows), checks that each does what
// it says, and has the API server accept the result (server-side apply,
// --dry-run=server) except cert-manager's own kinds, whose CRDs are not
// installed here.
func TestOverlaysAndComponentsBuild(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	manifests := copyManifests(t)
	generate(t, manifests)
	overlays := filepath.Join(manifests, "overlays")
	type check func(t *testing.T, objs []*unstructured.Unstructured)
	cases := []struct {
		name       string
		dir        string
		components []string // when set, dir is written as an overlay of self-signed with them
		check      check
	}{
		{"self-signed", filepath.Join(overlays, "self-signed"), nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if find(objs, "Secret", "leasefence-webhook-tls") == nil {
				t.Error("no Secret leasefence-webhook-tls")
			}
			for i, w := range webhooks(t, objs) {
				if cb, _, _ := unstructured.NestedString(w, "clientConfig", "caBundle"); cb == "" {
					t.Errorf("webhook %d has no caBundle", i)
				}
			}
		}},
		{"cert-manager", filepath.Join(overlays, "cert-manager"), nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			vwc := find(objs, "ValidatingWebhookConfiguration", vwcName)
			if vwc == nil || vwc.GetAnnotations()["cert-manager.io/inject-ca-from"] != "leasefence/leasefence-webhook" {
				t.Error("no cert-manager.io/inject-ca-from leasefence/leasefence-webhook on the webhook configuration")
			}
			if find(objs, "Certificate", "leasefence-webhook") == nil {
				t.Error("no Certificate leasefence-webhook")
			}
			if find(objs, "Secret", "leasefence-webhook-tls") != nil {
				t.Error("the cert-manager overlay renders the Secret cert-manager should make")
			}
		}},
		{"warn", filepath.Join(overlays, "e2e-warn"), []string{"../warn"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if v := containerEnv(t, objs)["LEASEFENCE_MODE"]; v != "warn" {
				t.Errorf("LEASEFENCE_MODE = %q, want warn", v)
			}
		}},
		{"break-glass", filepath.Join(overlays, "e2e-break-glass-build"), []string{"../../components/break-glass"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			for i, w := range webhooks(t, objs) {
				if !hasCondition(w, "not-break-glass", breakGlass) {
					t.Errorf("webhook %d has no not-break-glass matchCondition", i)
				}
			}
		}},
		{"scale", filepath.Join(overlays, "e2e-scale"), []string{"../../components/scale"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			cr := find(objs, "ClusterRole", "leasefence-webhook-scale")
			if cr == nil || !strings.Contains(toJSON(t, cr), `"deployments"`) || find(objs, "ClusterRoleBinding", "leasefence-webhook-scale") == nil {
				t.Error("no ClusterRole and binding leasefence-webhook-scale with get on deployments")
			}
		}},
		{"custom-resource-example", filepath.Join(overlays, "e2e-custom-resource"), []string{"../../components/custom-resource-example"}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if w := webhooks(t, objs); !strings.Contains(toJSON(t, &unstructured.Unstructured{Object: w[0]}), `"example.io"`) {
				t.Error("fence.leasefence.io has no rule for example.io")
			}
		}},
		{"all components", filepath.Join(overlays, "e2e-all"), []string{"../warn", "../../components/scale", "../../components/break-glass", "../../components/custom-resource-example"},
			func(t *testing.T, objs []*unstructured.Unstructured) {
				w := webhooks(t, objs)
				if containerEnv(t, objs)["LEASEFENCE_MODE"] != "warn" || find(objs, "ClusterRole", "leasefence-webhook-scale") == nil ||
					!hasCondition(w[0], "not-break-glass", breakGlass) || !hasCondition(w[1], "not-break-glass", breakGlass) ||
					!strings.Contains(toJSON(t, &unstructured.Unstructured{Object: w[0]}), `"example.io"`) {
					t.Error("the components do not all take effect together")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.components != nil {
				writeOverlay(t, tc.dir, "../self-signed", tc.components...)
			}
			objs := decode(t, kustomize(ctx, t, tc.dir))
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			tc.check(t, objs)
			var accept []*unstructured.Unstructured
			for _, o := range objs {
				if !strings.HasPrefix(o.GetAPIVersion(), "cert-manager.io/") {
					accept = append(accept, o)
				}
			}
			out := applyDryRun(ctx, t, accept...)
			if n := strings.Count(out, "serverside-applied (server dry run)"); n != len(accept) {
				t.Errorf("%d of %d objects accepted:\n%s", n, len(accept), out)
			}
		})
	}
}
