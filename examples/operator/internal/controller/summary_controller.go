// Package controller holds the example operator's reconciler.
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	fencing "leasefence.io/fencing/go"
)

// InputLabel marks the ConfigMaps this operator summarises.
const InputLabel = "example.leasefence.io/input"

// SummarySuffix names each input's summary: "<input>-summary".
const SummarySuffix = "-summary"

// SummaryReconciler keeps, for each ConfigMap labelled InputLabel=true, a
// ConfigMap "<input>-summary" with the input's number of keys, a digest of
// its data and the input's resourceVersion. The summaries are protected by
// the operator's own leader-election Lease: only the current leader may
// write them. The reconciler writes through the manager's client like any
// other; the client stamps each write (see crfencing), or, when the
// protection names identity fencing, nothing does: the webhook binds the
// writer's pod to the Lease's holder.
type SummaryReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Lease is the summaries' protection, the value of their
	// leasefence.io/lease annotation: the guarding Lease,
	// "<namespace>/<name>", optionally after a fencing mode
	// ("identity:<namespace>/<name>").
	Lease string
}

// Reconcile brings the summary of one input up to date.
func (r *SummaryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	input := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, input); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteSummary(ctx, req)
		}
		return ctrl.Result{}, err
	}
	if input.Labels[InputLabel] != "true" || input.DeletionTimestamp != nil {
		return ctrl.Result{}, r.deleteSummary(ctx, req)
	}
	want := summarise(input)
	summary := &corev1.ConfigMap{}
	err := r.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name + SummarySuffix}, summary)
	switch {
	case apierrors.IsNotFound(err):
		summary = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Namespace:   req.Namespace,
			Name:        req.Name + SummarySuffix,
			Annotations: map[string]string{fencing.AnnotationLease: r.Lease},
		}, Data: want}
		if err := controllerutil.SetControllerReference(input, summary, r.Scheme); err != nil {
			return ctrl.Result{}, err
		}
		logger.V(1).Info("creating summary", "summary", summary.Name)
		return ctrl.Result{}, r.Create(ctx, summary)
	case err != nil:
		return ctrl.Result{}, err
	}
	if equal(summary.Data, want) {
		return ctrl.Result{}, nil
	}
	orig := summary.DeepCopy()
	summary.Data = want
	logger.V(1).Info("updating summary", "summary", summary.Name, "source", want["source"])
	return ctrl.Result{}, r.Patch(ctx, summary, client.MergeFrom(orig))
}

func (r *SummaryReconciler) deleteSummary(ctx context.Context, req ctrl.Request) error {
	summary := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name + SummarySuffix}}
	return client.IgnoreNotFound(r.Delete(ctx, summary))
}

// summarise gives the summary's data for input.
func summarise(input *corev1.ConfigMap) map[string]string {
	keys := make([]string, 0, len(input.Data))
	for k := range input.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, input.Data[k])
	}
	return map[string]string{
		"keys":   strconv.Itoa(len(keys)),
		"digest": hex.EncodeToString(h.Sum(nil)),
		"source": input.ResourceVersion,
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// SetupWithManager watches the inputs and the summaries they own.
func (r *SummaryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	inputs, err := predicate.LabelSelectorPredicate(metav1.LabelSelector{MatchLabels: map[string]string{InputLabel: "true"}})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("summary").
		For(&corev1.ConfigMap{}, builder.WithPredicates(inputs)).
		Owns(&corev1.ConfigMap{}).
		Complete(r)
}
