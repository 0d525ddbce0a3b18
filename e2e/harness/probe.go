package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
)

// ProbeLeaseRead asks w directly, as the API server would, to decide a
// dry-run CREATE of a ConfigMap in ns protected by the Lease ns/lease,
// presented by a service account of ns with a stamp of that Lease, and
// returns the decision's reason. For a Lease that does not exist the
// answer needs a Lease read that reached the API server (the cached
// source reads an absent Lease live): LeaseNotFound once it did,
// LeaseUnavailable when it could not. Fault tests use it to learn when a
// replica reads Leases again.
func (w *Webhook) ProbeLeaseRead(ctx context.Context, ns, lease string) (string, error) {
	stamp := fmt.Sprintf("lf1:0:%s:probe_1", uuid.NewUUID())
	cm, _ := json.Marshal(&corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns,
			Annotations: map[string]string{AnnotationLease: ns + "/" + lease, AnnotationStamp: stamp}},
	})
	opts, _ := json.Marshal(map[string]string{"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": stamp})
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(uuid.NewUUID()),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Name:      "probe",
			Namespace: ns,
			Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:" + ns + ":probe",
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			},
			Object:  runtime.RawExtension{Raw: cm},
			Options: runtime.RawExtension{Raw: opts},
			DryRun:  ptr.To(true),
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL()+"?timeout=3s", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.Certs.CAPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var out admissionv1.AdmissionReview
	if resp.StatusCode != 200 || json.Unmarshal(data, &out) != nil || out.Response == nil {
		return "", fmt.Errorf("webhook answered %d: %s", resp.StatusCode, data)
	}
	return out.Response.AuditAnnotations["reason"], nil
}
