package fencing

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Subresource writes (/status, /scale) carry the stamp in fieldManager: the
// API server resets metadata on them before admission, so an annotation sent
// with the write never reaches the webhook (docs/protocol.md section 4.2).
// These helpers return base with FieldManager set to s.FieldManager().
//
// Two consequences to know:
//
//   - managedFields names the manager after the term that last wrote the
//     fields; the API server caps the number of update managers it keeps.
//   - A server-side apply under a new term's manager name conflicts with the
//     fields the previous term's manager owns: apply status with Force
//     (ApplyOptions sets it when base does; StatusApplyOptions always does).
//
// They are harmless on main-resource writes too: when fieldManager holds a
// stamp the webhook requires it to agree with the stamp annotation.

// UpdateOptions returns base with FieldManager set to the stamp, e.g. for
// UpdateStatus.
func UpdateOptions(s Stamp, base metav1.UpdateOptions) metav1.UpdateOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// PatchOptions returns base with FieldManager set to the stamp, e.g. for a
// Patch of the "status" subresource. For a server-side apply patch
// (types.ApplyPatchType) of status, set base.Force to true.
func PatchOptions(s Stamp, base metav1.PatchOptions) metav1.PatchOptions {
	base.FieldManager = s.FieldManager()
	return base
}

// CreateOptions returns base with FieldManager set to the stamp, for creates
// of subresources (e.g. pods/eviction, serviceaccounts/token) of protected
// objects.
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
