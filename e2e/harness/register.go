package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"leasefence.io/e2e/cluster"
)

// WebhookName names the ValidatingWebhookConfiguration and its webhook, as
// in manifests/base.
const WebhookName = "fence.leasefence.io"

// ProbeNamespace is where Register and Unregister probe whether the API
// server has picked up the configuration.
const ProbeNamespace = "leasefence-probe"

// Annotation keys of the protocol (docs/protocol.md).
const (
	AnnotationLease = "leasefence.io/lease"
	AnnotationStamp = "leasefence.io/stamp"
)

// MatchConditions are the matchConditions of manifests/base
// (validatingwebhookconfiguration.yaml, webhook fence.leasefence.io): only
// objects whose new or stored version carries the protection annotation are
// sent, and never a Lease. Keep them in step with the manifest.
func MatchConditions() []admissionregistrationv1.MatchCondition {
	return []admissionregistrationv1.MatchCondition{
		{
			Name: "protected",
			Expression: `(object != null && has(object.metadata) &&
has(object.metadata.annotations) &&
'leasefence.io/lease' in object.metadata.annotations) ||
(oldObject != null && has(oldObject.metadata) &&
has(oldObject.metadata.annotations) &&
'leasefence.io/lease' in oldObject.metadata.annotations)`,
		},
		{
			Name: "not-a-lease",
			Expression: `!(request.resource.group == 'coordination.k8s.io' &&
request.resource.resource == 'leases')`,
		},
	}
}

// NamespaceSelector keeps the webhook away from kube-system, kube-node-lease
// and its own namespace, as manifests/base does.
func NamespaceSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key:      "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   []string{"kube-system", "kube-node-lease", WebhookNamespace},
	}}}
}

var writeOps = []admissionregistrationv1.OperationType{
	admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete,
}

// Rule is a namespaced rule for CREATE, UPDATE and DELETE of resources
// (e.g. "deployments", "deployments/status") in group/version.
func Rule(group, version string, resources ...string) admissionregistrationv1.RuleWithOperations {
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.RuleWithOperations{
		Operations: writeOps,
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{group}, APIVersions: []string{version},
			Resources: resources, Scope: &scope,
		},
	}
}

// DefaultRules fence ConfigMaps, Deployments with /status, and the test
// custom resource Widget with /status.
func DefaultRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{
		Rule("", "v1", "configmaps"),
		Rule("apps", "v1", "deployments", "deployments/status"),
		Rule(cluster.WidgetGVR.Group, cluster.WidgetGVR.Version, "widgets", "widgets/status"),
	}
}

// Register points a ValidatingWebhookConfiguration named WebhookName at wh
// (https://127.0.0.1:<port>/validate, its CA as caBundle), with failurePolicy
// Fail, timeoutSeconds 3, sideEffects None and the manifests' matchConditions
// and namespaceSelector, and returns once the API server enforces it. rules
// default to DefaultRules; ConfigMaps are always included, because the
// readiness probe is a ConfigMap.
func Register(ctx context.Context, c *cluster.Cluster, wh *Webhook, rules ...admissionregistrationv1.RuleWithOperations) error {
	return RegisterAt(ctx, c, wh.Port, wh.Certs.CAPEM, rules...)
}

// RegisterAt is Register for whatever serves /validate on 127.0.0.1:port
// with a certificate signed by caPEM: a webhook, or a Proxy in front of
// several.
func RegisterAt(ctx context.Context, c *cluster.Cluster, port int, caPEM []byte, rules ...admissionregistrationv1.RuleWithOperations) error {
	if len(rules) == 0 {
		rules = DefaultRules()
	}
	if !coversConfigMaps(rules) {
		rules = append([]admissionregistrationv1.RuleWithOperations{Rule("", "v1", "configmaps")}, rules...)
	}
	if _, err := c.RegisterWebhook(ctx, cluster.Webhook{
		Name:              WebhookName,
		Port:              port,
		Path:              "/validate",
		CABundle:          caPEM,
		Rules:             rules,
		FailurePolicy:     admissionregistrationv1.Fail,
		TimeoutSeconds:    3,
		MatchConditions:   MatchConditions(),
		NamespaceSelector: NamespaceSelector(),
	}); err != nil {
		return err
	}
	return waitProbe(ctx, c, true)
}

// Unregister removes the configuration and returns once the API server no
// longer calls the webhook.
func Unregister(ctx context.Context, c *cluster.Cluster) error {
	if err := c.UnregisterWebhook(ctx, WebhookName); err != nil {
		return err
	}
	return waitProbe(ctx, c, false)
}

// WaitEnforced returns once the API server calls the registered webhook
// again (for instance after it was restarted and read its configuration
// anew).
func WaitEnforced(ctx context.Context, c *cluster.Cluster) error {
	return waitProbe(ctx, c, true)
}

func coversConfigMaps(rules []admissionregistrationv1.RuleWithOperations) bool {
	for _, r := range rules {
		for _, g := range r.APIGroups {
			if g != "" && g != "*" {
				continue
			}
			for _, res := range r.Resources {
				if res == "configmaps" || res == "*" {
					return true
				}
			}
		}
	}
	return false
}

// waitProbe polls with a server-side dry-run create of a protected ConfigMap
// that presents a per-request stamp of no Lease (a dry run stores nothing,
// and the webhook judges it like a real write, as the guarded controller's:
// LeaseNotFound) until it is denied by leasefence (enforced) or admitted
// (not).
func waitProbe(ctx context.Context, c *cluster.Cluster, enforced bool) error {
	_, err := c.CreateNamespace(ctx, ProbeNamespace, nil)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("probe namespace: %w", err)
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "probe-",
		Annotations:  map[string]string{AnnotationLease: "probe"},
	}}
	return cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		_, err := c.Client.CoreV1().ConfigMaps(ProbeNamespace).Create(ctx, probe,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "lf1:0:probe:probe"})
		denied := err != nil && strings.Contains(err.Error(), "leasefence")
		switch {
		case enforced && denied, !enforced && err == nil:
			return true, "", nil
		case err != nil && !denied:
			return false, "probe write failed: " + err.Error(), nil
		case enforced:
			return false, "a stamped protected write of no Lease was still admitted", nil
		default:
			return false, "a stamped protected write of no Lease was still denied: " + err.Error(), nil
		}
	})
}
