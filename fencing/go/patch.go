package fencing

import (
	"bytes"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StampObject sets the stamp annotation (AnnotationStamp) on obj, creating
// the annotations map when obj has none, for a CREATE or UPDATE of a main
// resource (docs/protocol.md section 4.1). It does not validate s; stamps
// from Lock.Stamp, StampFromLease and ParseStamp with a holder are valid, and
// the webhook denies an invalid one.
func StampObject(obj metav1.Object, s Stamp) {
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = make(map[string]string, 1)
	}
	ann[AnnotationStamp] = s.String()
	obj.SetAnnotations(ann)
}

func isNull(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || bytes.Equal(b, []byte("null"))
}

// decodeObject decodes a JSON object into its members, keeping each value as
// it was written.
func decodeObject(b []byte, what string) (map[string]json.RawMessage, error) {
	if isNull(b) {
		return map[string]json.RawMessage{}, nil
	}
	if c := bytes.TrimSpace(b); c[0] != '{' {
		return nil, fmt.Errorf("leasefence: %s is not a JSON object", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("leasefence: %s: %w", what, err)
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return m, nil
}

// marshal is json.Marshal without HTML escaping, so that the caller's JSON
// comes back as it was written (compacted).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MergePatch returns patch with the stamp annotation merged in:
// {"metadata":{"annotations":{"leasefence.io/stamp":"<stamp>"}}}. patch is
// a JSON merge patch (RFC 7386) or nil; everything else in it is kept as it
// was written. The result is also valid as a strategic merge patch and as a
// server-side apply body (a full object with apiVersion and kind).
//
// MergePatch refuses (returns an error for) a patch that is not a JSON
// object, and one that sets metadata or metadata.annotations to null or to
// anything but an object: a null there deletes every annotation, which a
// patch that also sets the stamp cannot express. It also refuses an invalid
// stamp.
func MergePatch(patch []byte, s Stamp) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	top, err := decodeObject(patch, "patch")
	if err != nil {
		return nil, err
	}
	if raw, ok := top["metadata"]; ok && isNull(raw) {
		return nil, fmt.Errorf("leasefence: the patch sets metadata to null; it cannot also carry the stamp")
	}
	meta, err := decodeObject(top["metadata"], "the patch's metadata")
	if err != nil {
		return nil, err
	}
	if raw, ok := meta["annotations"]; ok && isNull(raw) {
		return nil, fmt.Errorf("leasefence: the patch sets metadata.annotations to null (removing every annotation); it cannot also carry the stamp: remove the other annotations one by one instead")
	}
	ann, err := decodeObject(meta["annotations"], "the patch's metadata.annotations")
	if err != nil {
		return nil, err
	}
	if ann[AnnotationStamp], err = marshal(s.String()); err != nil {
		return nil, err
	}
	if meta["annotations"], err = marshal(ann); err != nil {
		return nil, err
	}
	if top["metadata"], err = marshal(meta); err != nil {
		return nil, err
	}
	return marshal(top)
}

// jsonPatchPath is the JSON pointer of the stamp annotation ("/" escaped as
// "~1", RFC 6901).
const jsonPatchPath = "/metadata/annotations/leasefence.io~1stamp"

// JSONPatch returns the JSON patch (RFC 6902) ops (a JSON array, or nil)
// followed by an "add" of the stamp annotation:
// {"op":"add","path":"/metadata/annotations/leasefence.io~1stamp","value":"<stamp>"}.
// A JSON patch cannot create a parent and a child in one op, so when the
// object has no metadata.annotations (hasAnnotations false; also when the
// ops remove it) the op adds the whole map instead:
// {"op":"add","path":"/metadata/annotations","value":{"leasefence.io/stamp":"<stamp>"}}.
// The existing ops are kept as they were written.
func JSONPatch(ops []byte, hasAnnotations bool, s Stamp) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var list []json.RawMessage
	if !isNull(ops) {
		if bytes.TrimSpace(ops)[0] != '[' {
			return nil, fmt.Errorf("leasefence: the JSON patch is not a JSON array")
		}
		if err := json.Unmarshal(ops, &list); err != nil {
			return nil, fmt.Errorf("leasefence: the JSON patch: %w", err)
		}
	}
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	add := op{Op: "add", Path: jsonPatchPath, Value: s.String()}
	if !hasAnnotations {
		add = op{Op: "add", Path: "/metadata/annotations", Value: map[string]string{AnnotationStamp: s.String()}}
	}
	b, err := marshal(add)
	if err != nil {
		return nil, err
	}
	list = append(list, b)
	return marshal(list)
}
