package fencing

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Delete deletes the object name with the two-step fenced delete of
// docs/protocol.md section 4.3. A DELETE request carries no object and its
// options have no room for a stamp, so the webhook judges a delete by the
// stamp stored on the object:
//
//  1. merge-patch the stamp onto the object, with the stamp also in the
//     request's fieldManager (an UPDATE, fenced like any other: a stale
//     ex-leader cannot make it);
//  2. delete with a resourceVersion precondition equal to the version step 1
//     produced, so exactly the stamped version is deleted. If anyone wrote
//     the object in between, the delete fails with a Conflict (409) and
//     nothing is deleted; the caller decides again.
//
// It returns the error of the step that failed; a denial by the webhook
// comes back as the API server's error (Forbidden). Use DeleteWithOptions
// for a propagation policy or dry run.
func Delete(ctx context.Context, client dynamic.ResourceInterface, name string, s Stamp) error {
	return DeleteWithOptions(ctx, client, name, s, metav1.DeleteOptions{})
}

// DeleteWithOptions is Delete with base options (propagationPolicy,
// gracePeriodSeconds, dryRun, ...); their Preconditions are replaced by the
// resourceVersion of the stamped version. With dryRun set, the stamping
// patch is a dry run too.
func DeleteWithOptions(ctx context.Context, client dynamic.ResourceInterface, name string, s Stamp, base metav1.DeleteOptions) error {
	return fencedDelete(name, "", s, base,
		func(patch []byte, opts metav1.PatchOptions) (metav1.Object, error) {
			return client.Patch(ctx, name, types.MergePatchType, patch, opts)
		},
		func(opts metav1.DeleteOptions) error { return client.Delete(ctx, name, opts) })
}

// PatchDeleter is the part of a typed client (for example the
// ConfigMapInterface of clientset.CoreV1().ConfigMaps(namespace)) that a
// fenced delete uses.
type PatchDeleter[T metav1.Object] interface {
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// DeleteTyped is DeleteWithOptions for a typed client:
//
//	err := fencing.DeleteTyped(ctx, clientset.CoreV1().ConfigMaps(ns), name, s, metav1.DeleteOptions{})
func DeleteTyped[T metav1.Object](ctx context.Context, client PatchDeleter[T], name string, s Stamp, base metav1.DeleteOptions) error {
	return fencedDelete(name, "", s, base,
		func(patch []byte, opts metav1.PatchOptions) (metav1.Object, error) {
			return client.Patch(ctx, name, types.MergePatchType, patch, opts)
		},
		func(opts metav1.DeleteOptions) error { return client.Delete(ctx, name, opts) })
}

// fencedDelete stamps, then deletes at the stamped resourceVersion; with a
// uid, the delete also requires that uid (the object listed, not one
// re-created under the same name).
func fencedDelete(name string, uid types.UID, s Stamp, base metav1.DeleteOptions,
	patch func([]byte, metav1.PatchOptions) (metav1.Object, error), del func(metav1.DeleteOptions) error) error {
	body, err := MergePatch(nil, s)
	if err != nil {
		return err
	}
	stamped, err := patch(body, PatchOptions(s, metav1.PatchOptions{DryRun: base.DryRun}))
	if err != nil {
		return fmt.Errorf("leasefence: stamping %s before deleting it: %w", name, err)
	}
	rv := stamped.GetResourceVersion()
	if rv == "" {
		return fmt.Errorf("leasefence: stamping %s gave no resourceVersion to delete at", name)
	}
	opts := base
	opts.Preconditions = &metav1.Preconditions{ResourceVersion: &rv}
	if uid != "" {
		opts.Preconditions.UID = &uid
	}
	if err := del(opts); err != nil {
		return fmt.Errorf("leasefence: deleting %s at the stamped resourceVersion %s: %w", name, rv, err)
	}
	return nil
}

// DeleteCollection deletes every object that listOpts selects, each with the
// two-step fenced delete of Delete: it lists the objects, then for each one
// stamps it and deletes it with the precondition of the stamped version.
// Each delete also carries the listed object's uid as a precondition, so
// an object re-created under the same name since the listing is not
// deleted (Conflict). Objects that are already gone are skipped. It stops at
// the first other error (a denial means this writer is fenced and should
// stop) and returns it; objects handled before the error stay deleted.
//
// It does not use the DeleteCollection API call on purpose. The API server
// admits a DeleteCollection object by object, each as a DELETE judged by the
// stamp stored on that object, but the call's DeleteOptions apply the same
// preconditions to every object, so they cannot name each object's stamped
// resourceVersion: an object created or rewritten after the stamping step
// would be deleted unstamped (and denied, failing the call partway) or
// deleted in a version this writer never stamped. Deleting one by one ties
// each delete to exactly the version this writer stamped in its term.
func DeleteCollection(ctx context.Context, client dynamic.ResourceInterface, listOpts metav1.ListOptions, s Stamp) error {
	return DeleteCollectionWithOptions(ctx, client, listOpts, s, metav1.DeleteOptions{})
}

// DeleteCollectionWithOptions is DeleteCollection with base delete options,
// as DeleteWithOptions.
func DeleteCollectionWithOptions(ctx context.Context, client dynamic.ResourceInterface, listOpts metav1.ListOptions, s Stamp, base metav1.DeleteOptions) error {
	if err := s.Validate(); err != nil {
		return err
	}
	type listed struct {
		name string
		uid  types.UID
	}
	var objs []listed
	opts := listOpts
	for {
		list, err := client.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("leasefence: listing the objects to delete: %w", err)
		}
		for i := range list.Items {
			objs = append(objs, listed{list.Items[i].GetName(), list.Items[i].GetUID()})
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Continue = list.GetContinue()
	}
	for _, o := range objs {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fencedDelete(o.name, o.uid, s, base,
			func(patch []byte, opts metav1.PatchOptions) (metav1.Object, error) {
				return client.Patch(ctx, o.name, types.MergePatchType, patch, opts)
			},
			func(opts metav1.DeleteOptions) error { return client.Delete(ctx, o.name, opts) })
		if err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
