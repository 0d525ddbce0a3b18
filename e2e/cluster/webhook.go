package cluster

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Webhook describes a validating webhook served by a local process at
// https://127.0.0.1:<Port><Path>.
type Webhook struct {
	// Name names both the ValidatingWebhookConfiguration and its one webhook;
	// it must be a DNS name with at least three labels, e.g.
	// "fence.leasefence.io".
	Name string
	Port int
	Path string // starting with "/"
	// CABundle is the PEM CA that signed the webhook's serving certificate
	// (which needs an IP SAN for 127.0.0.1).
	CABundle []byte
	Rules    []admissionregistrationv1.RuleWithOperations
	// FailurePolicy defaults to Fail.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// TimeoutSeconds defaults to 3 (1 to 30 allowed).
	TimeoutSeconds    int32
	MatchConditions   []admissionregistrationv1.MatchCondition
	NamespaceSelector *metav1.LabelSelector
}

// RegisterWebhook creates (or replaces) the ValidatingWebhookConfiguration
// for w. The API server picks it up asynchronously, within a second or so;
// callers that need it active should poll with a request it must reject.
func (c *Cluster) RegisterWebhook(ctx context.Context, w Webhook) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	if w.Name == "" || w.Port == 0 || len(w.Path) == 0 || w.Path[0] != '/' {
		return nil, errors.New("register webhook: Name, Port and a Path starting with / are required")
	}
	if w.FailurePolicy == "" {
		w.FailurePolicy = admissionregistrationv1.Fail
	}
	if w.TimeoutSeconds == 0 {
		w.TimeoutSeconds = 3
	}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", w.Port, w.Path)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    w.Name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CABundle},
			Rules:                   w.Rules,
			FailurePolicy:           &w.FailurePolicy,
			TimeoutSeconds:          &w.TimeoutSeconds,
			MatchConditions:         w.MatchConditions,
			NamespaceSelector:       w.NamespaceSelector,
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	api := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	created, err := api.Create(ctx, cfg, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		old, getErr := api.Get(ctx, w.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, fmt.Errorf("register webhook %s: %w", w.Name, getErr)
		}
		cfg.ResourceVersion = old.ResourceVersion
		created, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("register webhook %s: %w", w.Name, err)
	}
	return created, nil
}

// UnregisterWebhook deletes the ValidatingWebhookConfiguration name; a missing
// one is not an error. Like registration, it takes effect asynchronously.
func (c *Cluster) UnregisterWebhook(ctx context.Context, name string) error {
	err := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("unregister webhook %s: %w", name, err)
	}
	return nil
}
