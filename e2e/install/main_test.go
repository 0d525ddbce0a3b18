// Package install proves the manifests (manifests/) on a real control plane:
// every overlay and component builds with the kubectl built for the tests,
// the self-signed overlay is accepted object by object by the API server
// (server-side apply), and its ValidatingWebhookConfiguration, pointed at a
// locally started webhook that runs with the manifests' own flags, RBAC and
// certificates, fences writes as documented.
package install

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

var c *cluster.Cluster

func TestMain(m *testing.M) {
	for _, b := range []string{"webhook/leasefence-webhook", "certs/leasefence-certs"} {
		if _, err := harness.Binary(b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	var err error
	c, err = cluster.Start(context.Background(), cluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
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

// repoManifests is manifests/ of this checkout.
func repoManifests(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "base", "kustomization.yaml")); err != nil {
		t.Fatalf("manifests not found at %s: %v", dir, err)
	}
	return dir
}

// generated are the files generate.sh writes into the self-signed overlay
// (git-ignored); a copy never takes them from the tree.
var generated = map[string]bool{
	"overlays/self-signed/pki":                  true,
	"overlays/self-signed/tls-secret.yaml":      true,
	"overlays/self-signed/ca-bundle-patch.yaml": true,
}

// copyManifests copies manifests/ (without generated files) to a new
// temporary folder and returns the copy's manifests folder, so that
// generate.sh writes there and the tree stays clean.
func copyManifests(t *testing.T) string {
	t.Helper()
	src := repoManifests(t)
	dst := filepath.Join(t.TempDir(), "manifests")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if generated[filepath.ToSlash(rel)] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// treeSnapshot lists the files of the self-signed overlay in the tree, to
// check that nothing was written there.
func treeSnapshot(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoManifests(t), "overlays", "self-signed"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		info, _ := e.Info()
		names = append(names, fmt.Sprintf("%s %v", e.Name(), info.ModTime().UnixNano()))
	}
	return strings.Join(names, "\n")
}

// generate runs the copy's overlays/self-signed/generate.sh with the built
// leasefence-certs. The serving certificate also gets an IP SAN for
// 127.0.0.1 (generate.sh passes extra flags to leasefence-certs), so the
// webhook started locally can serve it to the API server.
func generate(t *testing.T, manifests string) *harness.CertFiles {
	t.Helper()
	certsBin, err := harness.Binary("certs/leasefence-certs")
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(manifests, "overlays", "self-signed")
	cmd := exec.Command(filepath.Join(overlay, "generate.sh"), "--ip", "127.0.0.1")
	cmd.Env = append(os.Environ(), "LEASEFENCE_CERTS="+certsBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generate.sh: %v: %s", err, out)
	}
	pki := filepath.Join(overlay, "pki")
	certs := &harness.CertFiles{
		Dir: pki, CACert: filepath.Join(pki, "ca.crt"),
		TLSCert: filepath.Join(pki, "tls.crt"), TLSKey: filepath.Join(pki, "tls.key"),
	}
	if certs.CAPEM, err = os.ReadFile(certs.CACert); err != nil {
		t.Fatal(err)
	}
	return certs
}

// kustomize builds dir with the cluster's kubectl.
func kustomize(ctx context.Context, t *testing.T, dir string) []byte {
	t.Helper()
	out, err := exec.CommandContext(ctx, c.KubectlPath(), "kustomize", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize %s: %v: %s", dir, err, ee.Stderr)
		}
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return out
}

// decode splits a multi-document YAML (or JSON) stream into objects.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return objs
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// apply applies objects with server-side apply as the admin and returns
// kubectl's output.
func apply(ctx context.Context, t *testing.T, objs ...*unstructured.Unstructured) string {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(data)
		buf.WriteByte('\n')
	}
	out, err := c.Kubectl(ctx, &buf, "apply", "--server-side", "--force-conflicts", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --server-side: %v", err)
	}
	return string(out)
}

// pointAtURL changes only clientConfig of every webhook of the
// configuration: the Service reference becomes url (the caBundle stays).
func pointAtURL(t *testing.T, vwc *unstructured.Unstructured, url string) *unstructured.Unstructured {
	t.Helper()
	out := vwc.DeepCopy()
	webhooks, _, _ := unstructured.NestedSlice(out.Object, "webhooks")
	if len(webhooks) == 0 {
		t.Fatal("the webhook configuration has no webhooks")
	}
	for i, w := range webhooks {
		wm := w.(map[string]any)
		cc, ok := wm["clientConfig"].(map[string]any)
		if !ok || cc["service"] == nil || cc["caBundle"] == nil {
			t.Fatalf("webhook %d has no clientConfig.service and caBundle: %v", i, wm["clientConfig"])
		}
		delete(cc, "service")
		cc["url"] = url
		webhooks[i] = wm
	}
	if err := unstructured.SetNestedSlice(out.Object, webhooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
	return out
}

// applyDryRun is apply with --dry-run=server: the API server validates and
// admits every object but stores nothing.
func applyDryRun(ctx context.Context, t *testing.T, objs ...*unstructured.Unstructured) string {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		buf.WriteString(toJSON(t, o))
		buf.WriteByte('\n')
	}
	out, err := c.Kubectl(ctx, &buf, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --server-side --dry-run=server: %v", err)
	}
	return string(out)
}

func toJSON(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	data, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// webhooks returns the webhooks of the rendered configuration, checking
// that there are the two of manifests/base, in order.
func webhooks(t *testing.T, objs []*unstructured.Unstructured) []map[string]any {
	t.Helper()
	vwc := find(objs, "ValidatingWebhookConfiguration", vwcName)
	if vwc == nil {
		t.Fatal("no ValidatingWebhookConfiguration " + vwcName)
	}
	list, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	var out []map[string]any
	for _, w := range list {
		out = append(out, w.(map[string]any))
	}
	if len(out) != 2 || out[0]["name"] != fenceWebhook || out[1]["name"] != "scale.leasefence.io" {
		t.Fatalf("want webhooks %s and scale.leasefence.io, got %d", fenceWebhook, len(out))
	}
	return out
}

// hasCondition: webhook w has a matchCondition name whose expression
// mentions text.
func hasCondition(w map[string]any, name, text string) bool {
	conds, _, _ := unstructured.NestedSlice(w, "matchConditions")
	for _, c := range conds {
		cm := c.(map[string]any)
		if cm["name"] == name {
			expr, _ := cm["expression"].(string)
			return strings.Contains(expr, text)
		}
	}
	return false
}

// containerEnv is the env of the webhook Deployment's container.
func containerEnv(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	dep := find(objs, "Deployment", "leasefence-webhook")
	if dep == nil {
		t.Fatal("no Deployment leasefence-webhook")
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	for _, ctr := range containers {
		envs, _, _ := unstructured.NestedSlice(ctr.(map[string]any), "env")
		for _, e := range envs {
			em := e.(map[string]any)
			v, _ := em["value"].(string)
			env[em["name"].(string)] = v
		}
	}
	return env
}
