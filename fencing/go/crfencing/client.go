package crfencing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fencing "leasefence.io/fencing/go"
)

// Fence stamps a controller-runtime client's writes with the stamp of a
// Lock (see Client).
type Fence struct {
	lock *fencing.Lock
}

// New returns a Fence that stamps with lock.Stamp().
func New(lock *fencing.Lock) *Fence { return &Fence{lock: lock} }

// Lock returns the Lock the Fence stamps with.
func (f *Fence) Lock() *fencing.Lock { return f.lock }

// Client wraps c so that every write to a protected object (one whose
// annotations name a guarding Lease, leasefence.io/lease, in any of its
// forms: an object fenced by identity judges a stamp, when one is sent, as
// a stamped object does) carries the current stamp, taken from the Lock
// just before the request:
//
//   - Create, Update: the stamp annotation on the object, and the stamp as
//     the request's fieldManager.
//   - Patch of every type: the patch's body gets the stamp annotation
//     (fencing.MergePatch for merge, strategic merge and apply bodies;
//     fencing.JSONPatch for JSON patches), so a client.MergeFrom patch from
//     a cached copy that already held the stamp still sends it; the stamp is
//     the fieldManager. Apply patches are sent with Force: each term applies
//     under its own manager name.
//   - Apply (apply configurations): as an apply patch.
//   - Delete: the protocol's fenced delete (fencing.Delete): a stamping
//     merge patch, then the delete with a resourceVersion precondition of
//     the stamped version, so a write in between makes the delete fail with
//     a Conflict instead of deleting a version this writer never stamped.
//   - DeleteAllOf: lists the objects and deletes each one so (protected or
//     not, each with a uid precondition, skipping objects already gone), as
//     fencing.DeleteCollection does; a DeleteCollection call cannot carry a
//     precondition per object.
//   - Status() and SubResource(name) writers (Create, Update, Patch, Apply):
//     the stamp as fieldManager (the API server resets metadata on them).
//
// The stamp replaces any field owner the caller set (client.FieldOwner):
// the fieldManager is the stamp's carrier. Writes to objects that are not
// protected pass through unchanged. When an object given to a write (other
// than Create) does not name a Lease and has no resourceVersion (a key or
// an apply configuration, not an object read from the API), its protection
// is read with a metadata-only Get through c (from the manager's cache for
// a manager's client).
//
// When this process does not lead, a write to a protected object is not
// sent: it returns an error that wraps the Lock's *fencing.NotLeaderError
// (errors.Is(err, fencing.ErrNotLeader)). A manager from NewManager logs a
// reconcile that returns it quietly (QuietNotLeader).
//
// Each stamped write is logged at V(1) on the logger of its context
// ("leasefence write": verb, object, term, the time it was sent and
// answered, the resourceVersion written or the error).
func (f *Fence) Client(c client.Client) client.Client {
	return &fencedClient{Client: c, fence: f}
}

type fencedClient struct {
	client.Client
	fence *Fence
}

// protected tells whether a write to obj is fenced: obj names a guarding
// Lease, or, when obj does not and was not read from the API (no
// resourceVersion: a key, or an apply configuration), the stored object
// does.
func (c *fencedClient) protected(ctx context.Context, obj client.Object) (bool, error) {
	if obj.GetAnnotations()[fencing.AnnotationLease] != "" {
		return true, nil
	}
	if obj.GetResourceVersion() != "" {
		return false, nil
	}
	if obj.GetName() == "" {
		return false, nil // a create with generateName, say: nothing stored
	}
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		return false, err
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(gvk)
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(obj), meta); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("leasefence: reading whether %s is protected: %w", describe(obj), err)
	}
	return meta.GetAnnotations()[fencing.AnnotationLease] != "", nil
}

// fenced returns the stamp for a write to obj, false when obj is not
// protected (the write passes through), or an error: the protection could
// not be read, or this process does not lead. lookup allows reading the
// protection of an object given by its key alone.
func (c *fencedClient) fenced(ctx context.Context, verb string, obj client.Object, lookup bool) (fencing.Stamp, bool, error) {
	protected := obj.GetAnnotations()[fencing.AnnotationLease] != ""
	if lookup {
		var err error
		if protected, err = c.protected(ctx, obj); err != nil {
			return fencing.Stamp{}, false, err
		}
	}
	if !protected {
		return fencing.Stamp{}, false, nil
	}
	s, err := c.stamp(verb, obj)
	return s, err == nil, err
}

// stamp returns the stamp for a write, or the refusal to write.
func (c *fencedClient) stamp(verb string, obj client.Object) (fencing.Stamp, error) {
	s, err := c.fence.lock.Stamp()
	if err != nil {
		return fencing.Stamp{}, fmt.Errorf("leasefence: not sending the %s of %s: %w", verb, describe(obj), err)
	}
	return s, nil
}

func describe(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// send runs one stamped request and logs it (see Fence.Client).
func send(ctx context.Context, verb string, obj client.Object, s fencing.Stamp, do func() error) error {
	sent := time.Now()
	err := do()
	done := time.Now()
	kv := []any{"verb", verb, "object", describe(obj), "term", s.Term, "leaseUID", s.LeaseUID, "holder", s.Holder,
		"sent", sent.Format(time.RFC3339Nano), "done", done.Format(time.RFC3339Nano)}
	if err != nil {
		kv = append(kv, "error", err.Error())
		if status, ok := err.(apierrors.APIStatus); ok {
			kv = append(kv, "code", status.Status().Code)
		}
	} else {
		kv = append(kv, "rv", obj.GetResourceVersion())
	}
	log.FromContext(ctx).V(1).Info("leasefence write", kv...)
	return err
}

func (c *fencedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	// A new object's protection is what it is created with: no lookup.
	s, ok, err := c.fenced(ctx, "CREATE", obj, false)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return c.Client.Create(ctx, obj, opts...)
	}
	fencing.StampObject(obj, s)
	return send(ctx, "CREATE", obj, s, func() error {
		return c.Client.Create(ctx, obj, append(opts, client.FieldOwner(s.FieldManager()))...)
	})
}

func (c *fencedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	s, ok, err := c.fenced(ctx, "UPDATE", obj, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return c.Client.Update(ctx, obj, opts...)
	}
	fencing.StampObject(obj, s)
	return send(ctx, "UPDATE", obj, s, func() error {
		return c.Client.Update(ctx, obj, append(opts, client.FieldOwner(s.FieldManager()))...)
	})
}

// stampPatch returns the body of patch for obj with the stamp annotation in
// it.
func stampPatch(patch client.Patch, obj client.Object, s fencing.Stamp) ([]byte, error) {
	data, err := patch.Data(obj)
	if err != nil {
		return nil, err
	}
	switch patch.Type() {
	case types.JSONPatchType:
		// A protected object has annotations (the protection itself).
		return fencing.JSONPatch(data, true, s)
	case types.MergePatchType, types.StrategicMergePatchType, types.ApplyPatchType:
		return fencing.MergePatch(data, s)
	default:
		return nil, fmt.Errorf("leasefence: cannot stamp a %s patch of %s", patch.Type(), describe(obj))
	}
}

func (c *fencedClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	s, ok, err := c.fenced(ctx, "PATCH", obj, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return c.Client.Patch(ctx, obj, patch, opts...)
	}
	body, err := stampPatch(patch, obj, s)
	if err != nil {
		return err
	}
	opts = append(opts, client.FieldOwner(s.FieldManager()))
	if patch.Type() == types.ApplyPatchType {
		opts = append(opts, client.ForceOwnership)
	}
	return send(ctx, "PATCH", obj, s, func() error {
		return c.Client.Patch(ctx, obj, client.RawPatch(patch.Type(), body), opts...)
	})
}

// applyObject gives an apply configuration as an unstructured object.
func applyObject(ac runtime.ApplyConfiguration) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(ac)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("leasefence: the apply configuration: %w", err)
	}
	return u, nil
}

func (c *fencedClient) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	u, err := applyObject(ac)
	if err != nil {
		return err
	}
	s, ok, err := c.fenced(ctx, "APPLY", u, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return c.Client.Apply(ctx, ac, opts...)
	}
	fencing.StampObject(u, s)
	opts = append(opts, client.FieldOwner(s.FieldManager()), client.ForceOwnership)
	return send(ctx, "APPLY", u, s, func() error {
		return c.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
	})
}

func (c *fencedClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	p, err := c.protected(ctx, obj)
	if err != nil {
		return err
	}
	if !p {
		return c.Client.Delete(ctx, obj, opts...)
	}
	return c.fencedDelete(ctx, obj, (&client.DeleteOptions{}).ApplyOptions(opts))
}

// fencedDelete stamps obj with a merge patch, then deletes the stamped
// version (keeping a uid precondition the caller gave).
func (c *fencedClient) fencedDelete(ctx context.Context, obj client.Object, do *client.DeleteOptions) error {
	s, err := c.stamp("DELETE", obj)
	if err != nil {
		return err
	}
	body, err := fencing.MergePatch(nil, s)
	if err != nil {
		return err
	}
	stamped := obj.DeepCopyObject().(client.Object)
	popts := []client.PatchOption{client.FieldOwner(s.FieldManager())}
	if len(do.DryRun) > 0 {
		popts = append(popts, client.DryRunAll)
	}
	if err := send(ctx, "PATCH", stamped, s, func() error {
		return c.Client.Patch(ctx, stamped, client.RawPatch(types.MergePatchType, body), popts...)
	}); err != nil {
		return fmt.Errorf("leasefence: stamping %s before deleting it: %w", describe(obj), err)
	}
	rv := stamped.GetResourceVersion()
	pre := metav1.Preconditions{ResourceVersion: &rv}
	if do.Preconditions != nil {
		pre.UID = do.Preconditions.UID
	}
	final := *do
	final.Preconditions = &pre
	if err := send(ctx, "DELETE", stamped, s, func() error { return c.Client.Delete(ctx, obj, &final) }); err != nil {
		return fmt.Errorf("leasefence: deleting %s at the stamped resourceVersion %s: %w", describe(obj), rv, err)
	}
	return nil
}

func (c *fencedClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	do := (&client.DeleteAllOfOptions{}).ApplyOptions(opts)
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		return err
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	lo := do.ListOptions
	var items []unstructured.Unstructured
	for {
		if err := c.Client.List(ctx, list, &lo); err != nil {
			return fmt.Errorf("leasefence: listing the objects to delete: %w", err)
		}
		items = append(items, list.Items...)
		if list.GetContinue() == "" {
			break
		}
		lo.Continue = list.GetContinue()
	}
	for i := range items {
		item := &items[i]
		uid := item.GetUID()
		one := do.DeleteOptions
		one.Preconditions = &metav1.Preconditions{UID: &uid}
		if item.GetAnnotations()[fencing.AnnotationLease] != "" {
			err = c.fencedDelete(ctx, item, &one)
		} else {
			err = c.Client.Delete(ctx, item, &one)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (c *fencedClient) Status() client.SubResourceWriter {
	return &subResourceWriter{inner: c.Client.Status(), c: c}
}

func (c *fencedClient) SubResource(name string) client.SubResourceClient {
	inner := c.Client.SubResource(name)
	return &subResourceClient{SubResourceClient: inner, w: subResourceWriter{inner: inner, c: c}}
}

// subResourceWriter stamps subresource writes in fieldManager.
type subResourceWriter struct {
	inner client.SubResourceWriter
	c     *fencedClient
}

func (w *subResourceWriter) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	s, ok, err := w.c.fenced(ctx, "CREATE of a subresource", obj, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return w.inner.Create(ctx, obj, sub, opts...)
	}
	return send(ctx, "CREATE subresource", obj, s, func() error {
		return w.inner.Create(ctx, obj, sub, append(opts, client.FieldOwner(s.FieldManager()))...)
	})
}

func (w *subResourceWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s, ok, err := w.c.fenced(ctx, "UPDATE of a subresource", obj, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return w.inner.Update(ctx, obj, opts...)
	}
	return send(ctx, "UPDATE subresource", obj, s, func() error {
		return w.inner.Update(ctx, obj, append(opts, client.FieldOwner(s.FieldManager()))...)
	})
}

func (w *subResourceWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s, ok, err := w.c.fenced(ctx, "PATCH of a subresource", obj, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return w.inner.Patch(ctx, obj, patch, opts...)
	}
	opts = append(opts, client.FieldOwner(s.FieldManager()))
	if patch.Type() == types.ApplyPatchType {
		opts = append(opts, client.ForceOwnership)
	}
	return send(ctx, "PATCH subresource", obj, s, func() error { return w.inner.Patch(ctx, obj, patch, opts...) })
}

func (w *subResourceWriter) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	u, err := applyObject(ac)
	if err != nil {
		return err
	}
	s, ok, err := w.c.fenced(ctx, "APPLY of a subresource", u, true)
	if err != nil || !ok {
		if err != nil {
			return err
		}
		return w.inner.Apply(ctx, ac, opts...)
	}
	opts = append(opts, client.FieldOwner(s.FieldManager()), client.ForceOwnership)
	return send(ctx, "APPLY subresource", u, s, func() error { return w.inner.Apply(ctx, ac, opts...) })
}

// subResourceClient is a SubResource(name) client whose writes are
// stamped; Get passes through.
type subResourceClient struct {
	client.SubResourceClient
	w subResourceWriter
}

func (s *subResourceClient) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	return s.w.Create(ctx, obj, sub, opts...)
}

func (s *subResourceClient) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.w.Update(ctx, obj, opts...)
}

func (s *subResourceClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.w.Patch(ctx, obj, patch, opts...)
}

func (s *subResourceClient) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	return s.w.Apply(ctx, ac, opts...)
}
