package harness

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"leasefence.io/e2e/cluster"
)

// EventController is the reportingController of the webhook's Events.
const EventController = "leasefence.io/webhook"

// DenialEvents lists the Events the webhook reported about the object
// kind ns/name, found as `kubectl describe` finds an object's Events: through
// core/v1 with a field selector on involvedObject (the webhook posts
// events.k8s.io/v1; both are views of one resource).
func DenialEvents(ctx context.Context, c kubernetes.Interface, ns, kind, name string) ([]corev1.Event, error) {
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}.String(),
	})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.ReportingController == EventController {
			out = append(out, e)
		}
	}
	return out, nil
}

// AwaitDenialEvent waits, bounded by timeout, until the webhook's Event about
// kind ns/name with reason exists and cond (nil: none) holds for it, and
// returns it. The Event is posted after the denial's answer, by a thread of
// the webhook's own, so it is awaited, never assumed.
func AwaitDenialEvent(ctx context.Context, c kubernetes.Interface, ns, kind, name, reason string, timeout time.Duration,
	cond func(corev1.Event) (bool, string)) (corev1.Event, error) {
	var found corev1.Event
	err := cluster.Poll(ctx, timeout, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		events, err := DenialEvents(ctx, c, ns, kind, name)
		if err != nil {
			return false, err.Error(), nil
		}
		note := fmt.Sprintf("no Event with reason %s among %d about %s %s/%s", reason, len(events), kind, ns, name)
		for _, e := range events {
			if e.Reason != reason {
				continue
			}
			found = e
			if cond == nil {
				return true, "", nil
			}
			ok, why := cond(e)
			if ok {
				return true, "", nil
			}
			note = why
		}
		return false, note, nil
	})
	return found, err
}
