package fencing

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every write of a fenced writer carries its stamp in the request itself:
// request.options.fieldManager (docs/protocol.md section 4). A stamp that
// lives only on the object can be carried forward by a write that does not
// touch it (a merge patch computed from a cached copy that already holds the
// stamp sends no annotation at all), so the webhook requires the
// per-request stamp from the guarded controller's writers; on main-resource
// writes the object's stamp annotation must also equal it. These helpers
// return base with FieldManager set to s.FieldManager(); use them on every
// CREATE, UPDATE and PATCH, main resource and subresources (/status,
// /scale) alike. A DELETE has no fieldManager: see Delete.
//
// Two consequences to know:
//
//   - managedFields names the manager after the term that last wrote the
//     fields; the API server caps the number of update managers it keeps.
//   - A server-side apply under a new term's manager name conflicts with the
//     fields the previous term's manager owns: apply with Force
//     (ApplyOptions sets it when base does; StatusApplyOptions always does).

// UpdateOptions returns base with FieldManager set to the stamp, for Update
// and UpdateStatus.
func UpdateOptions(s Stamp, base metav1.UpdateOptions) metav1.UpdateOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// PatchOptions returns base with FieldManager set to the stamp, for every
// Patch (merge, JSON, strategic merge, server-side apply), of the main
// resource or a subresource. For a server-side apply patch
// (types.ApplyPatchType), set base.Force to true.
func PatchOptions(s Stamp, base metav1.PatchOptions) metav1.PatchOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// CreateOptions returns base with FieldManager set to the stamp, for Create
// of a protected object and creates of subresources (e.g. pods/eviction) of
// protected objects.
func CreateOptions(s Stamp, base metav1.CreateOptions) metav1.CreateOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// ApplyOptions returns base with FieldManager set to the stamp, for the
// typed clients' Apply and ApplyStatus. Each term applies under its own
// manager name, so the apply conflicts with the fields the previous term
// applied unless base.Force is true; StatusApplyOptions sets it.
func ApplyOptions(s Stamp, base metav1.ApplyOptions) metav1.ApplyOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// StatusApplyOptions returns the options for a server-side apply of status
// (ApplyStatus): FieldManager set to the stamp and Force true, which a
// controller applying its own status should use anyway.
func StatusApplyOptions(s Stamp) metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: s.FieldManager(), Force: true}
}

// DeleteOptions returns DeleteOptions with a resourceVersion precondition:
// the second step of a fenced delete (docs/protocol.md section 4.3), which
// deletes exactly the version that the first step stamped. See Delete.
func DeleteOptions(resourceVersion string) metav1.DeleteOptions {
	rv := resourceVersion
	return metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}
}
