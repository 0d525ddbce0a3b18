package cluster

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// WidgetGVR and WidgetGVK name the test custom resource that WidgetCRD
// defines: namespaced, with /status and /scale subresources.
var (
	WidgetGVR = schema.GroupVersionResource{Group: "test.leasefence.io", Version: "v1", Resource: "widgets"}
	WidgetGVK = schema.GroupVersionKind{Group: "test.leasefence.io", Version: "v1", Kind: "Widget"}
)

// WidgetCRD returns the definition of Widget: spec.replicas and
// status.replicas feed the scale subresource, and any other fields are kept,
// so tests can put what they like in spec and status.
func WidgetCRD() *apiextensionsv1.CustomResourceDefinition {
	free := func(props map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{
			Type:                   "object",
			Properties:             props,
			XPreserveUnknownFields: ptr.To(true),
		}
	}
	replicas := map[string]apiextensionsv1.JSONSchemaProps{"replicas": {Type: "integer", Format: "int32"}}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: WidgetGVR.Resource + "." + WidgetGVR.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: WidgetGVR.Group,
			Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural:   WidgetGVR.Resource,
				Singular: "widget",
				Kind:     WidgetGVK.Kind,
				ListKind: WidgetGVK.Kind + "List",
			},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name:    WidgetGVR.Version,
				Served:  true,
				Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{
					OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec":   free(replicas),
							"status": free(replicas),
						},
					},
				},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale: &apiextensionsv1.CustomResourceSubresourceScale{
						SpecReplicasPath:   ".spec.replicas",
						StatusReplicasPath: ".status.replicas",
					},
				},
			}},
		},
	}
}

// InstallCRD creates crd (an existing one of the same name is kept) and waits
// until its Established condition is True, bounded by timeout (0: 30s).
func (c *Cluster) InstallCRD(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, timeout time.Duration) error {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	api := c.APIExtensions.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := api.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create CRD %s: %w", crd.Name, err)
	}
	err := Poll(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		got, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established {
				return cond.Status == apiextensionsv1.ConditionTrue,
					fmt.Sprintf("Established=%s: %s", cond.Status, cond.Message), nil
			}
		}
		return false, "no Established condition yet", nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s: %w; API server log: %s", crd.Name, err, c.APIServerLog)
	}
	return nil
}

// InstallWidgetCRD installs WidgetCRD and waits until it is Established.
func (c *Cluster) InstallWidgetCRD(ctx context.Context) error {
	return c.InstallCRD(ctx, WidgetCRD(), 0)
}
