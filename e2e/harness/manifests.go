package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"

	"leasefence.io/e2e/cluster"
)

// ManifestsDir finds the repository's manifests/ folder by walking up from
// the working folder (go test runs in the package's folder).
func ManifestsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		m := filepath.Join(dir, "manifests")
		if _, err := os.Stat(filepath.Join(m, "base", "kustomization.yaml")); err == nil {
			return m, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("manifests/base not found above the working folder")
		}
		dir = parent
	}
}

// ManifestObjects decodes every object of a YAML file (several documents)
// under manifests/, e.g. "base/deployment.yaml".
func ManifestObjects(rel string) ([]*unstructured.Unstructured, error) {
	dir, err := ManifestsDir()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		if obj != nil {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// envRef is a Kubernetes $(VAR) reference in a container's args.
var envRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// DeploymentArgs returns the webhook container's args of a Deployment
// manifest, with $(VAR) expanded from its env as the kubelet would, without
// the flags that name the Pod's ports and mounted certificate (StartWebhook
// sets its own).
func DeploymentArgs(dep *unstructured.Unstructured) ([]string, error) {
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		return nil, fmt.Errorf("want one container, got %d", len(containers))
	}
	ctr, _ := containers[0].(map[string]any)
	env := map[string]string{}
	envs, _, _ := unstructured.NestedSlice(ctr, "env")
	for _, e := range envs {
		em, _ := e.(map[string]any)
		name, _ := em["name"].(string)
		v, _ := em["value"].(string)
		env[name] = v
	}
	raw, _, _ := unstructured.NestedStringSlice(ctr, "args")
	var args []string
	for _, a := range raw {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--port", "--health-port", "--tls-cert-file", "--tls-private-key-file":
			continue
		}
		var missing error
		args = append(args, envRef.ReplaceAllStringFunc(a, func(ref string) string {
			v, ok := env[ref[2:len(ref)-1]]
			if !ok {
				missing = fmt.Errorf("arg %q names %s, which the container's env does not set", a, ref)
			}
			return v
		}))
		if missing != nil {
			return nil, missing
		}
	}
	return args, nil
}

// BaseDeploymentArgs is DeploymentArgs of manifests/base/deployment.yaml.
func BaseDeploymentArgs() ([]string, error) {
	objs, err := ManifestObjects("base/deployment.yaml")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			return DeploymentArgs(o)
		}
	}
	return nil, errors.New("manifests/base/deployment.yaml holds no Deployment")
}

// ManifestConfigName is the name of manifests/base's
// ValidatingWebhookConfiguration.
const ManifestConfigName = "leasefence"

// RegisterManifests creates manifests/base's ValidatingWebhookConfiguration
// as it stands (both webhooks: fence.leasefence.io and scale.leasefence.io,
// with their rules, matchConditions and namespaceSelectors), only with each
// clientConfig pointed at wh, and returns once the API server enforces it.
func RegisterManifests(ctx context.Context, c *cluster.Cluster, wh *Webhook) error {
	objs, err := ManifestObjects("base/validatingwebhookconfiguration.yaml")
	if err != nil {
		return err
	}
	if len(objs) != 1 {
		return fmt.Errorf("validatingwebhookconfiguration.yaml: want one object, got %d", len(objs))
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &vwc); err != nil {
		return err
	}
	url := wh.URL()
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: wh.Certs.CAPEM}
	}
	api := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if err := api.Delete(ctx, vwc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if _, err := api.Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the manifests' webhook configuration: %w", err)
	}
	return waitProbe(ctx, c, true)
}

// UnregisterManifests removes the configuration RegisterManifests made and
// returns once the API server no longer calls the webhook.
func UnregisterManifests(ctx context.Context, c *cluster.Cluster) error {
	if err := c.UnregisterWebhook(ctx, ManifestConfigName); err != nil {
		return err
	}
	return waitProbe(ctx, c, false)
}
