package leases

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// Direct AdmissionReviews, POSTed to the webhook as the API server would
// (HTTP/1.1 keep-alive over TLS, trusting the webhook's CA): for tests that
// need many decisions at once, or credentials of the webhook's own that do
// not need a registration.

// reviewClient returns an HTTP client that trusts wh's CA and keeps up to
// conns connections open.
func reviewClient(wh *harness.Webhook, conns int) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(wh.Certs.CAPEM)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
			MaxIdleConnsPerHost: conns,
			ForceAttemptHTTP2:   false,
		},
	}
}

// configMapUpdate is the review of an UPDATE of the protected ConfigMap
// ns/name (guarded by Lease leaseName) to stamp, sent by pod's service
// account with the pod named in userInfo.extra.
func configMapUpdate(uid, ns, name, leaseName, stamp, pod string) *admissionv1.AdmissionReview {
	obj := func(s string) runtime.RawExtension {
		cm := &corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{
				harness.AnnotationLease: leaseName, harness.AnnotationStamp: s,
			}},
		}
		raw, _ := json.Marshal(cm)
		return runtime.RawExtension{Raw: raw}
	}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(uid),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Name:      name,
			Namespace: ns,
			Operation: admissionv1.Update,
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:" + ns + ":sa-" + pod,
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				Extra:    map[string]authenticationv1.ExtraValue{cluster.PodNameExtraKey: {pod}},
			},
			Object:    obj(stamp),
			OldObject: obj(stamp),
			Options:   runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":` + strconv.Quote(stamp) + `}`)},
		},
	}
}

// postReview sends review and returns the webhook's response.
func postReview(ctx context.Context, hc *http.Client, wh *harness.Webhook, review *admissionv1.AdmissionReview) (*admissionv1.AdmissionResponse, error) {
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL()+"?timeout=3s", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("webhook answered %d: %s", resp.StatusCode, data)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("bad answer %q: %w", data, err)
	}
	if out.Response == nil || out.Response.UID != review.Request.UID {
		return nil, fmt.Errorf("answer without the request's uid: %s", data)
	}
	return out.Response, nil
}

// reason is the decision's reason from the audit annotations.
func reason(r *admissionv1.AdmissionResponse) string { return r.AuditAnnotations["reason"] }

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}
