package fencing

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{
		"lf1:3:0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1:ctrl-a_5b0b2c3e",
		"lf1:0:a", "lf1:2147483647:a:b:c", "lf1:03:a:b", "lf1:1:a:\u00a0", "lf1:1:a:é",
		"lf1:1:a:" + strings.Repeat("h", 256), "lf2:1:a:b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseStamp(text)
		if err != nil {
			return
		}
		// One spelling per stamp: what parses formats back to the same text.
		if got := s.String(); got != text {
			t.Fatalf("ParseStamp(%q).String() = %q", text, got)
		}
		if s.Holder != "" && !isHolderHash(s.Holder) {
			if err := s.Validate(); err != nil {
				t.Fatalf("ParseStamp(%q) gave a stamp that does not validate: %v", text, err)
			}
		}
		// The fieldManager form is always accepted by the API server and
		// names the same tenure: term, uid, and the holder or its hash.
		fm := s.FieldManager()
		if errs := validation.ValidateFieldManager(fm, field.NewPath("fieldManager")); len(errs) > 0 {
			t.Fatalf("FieldManager() = %q is refused by the API server: %v", fm, errs)
		}
		back, err := ParseStamp(fm)
		sameHolder := back.Holder == s.Holder || back.Holder == "#"+HolderHash(s.Holder)
		if err != nil || back.Term != s.Term || back.LeaseUID != s.LeaseUID || (s.Holder != "" && !isHolderHash(s.Holder) && !sameHolder) {
			t.Fatalf("ParseStamp(FieldManager() = %q) = %+v, %v; want %+v", fm, back, err, s)
		}
	})
}

func FuzzMergePatch(f *testing.F) {
	for _, p := range []string{``, `null`, `{}`, `{"metadata":{"annotations":{"x":"y"}}}`, `{"metadata":null}`,
		`{"metadata":{"annotations":null}}`, `[1]`, `{"a":[1,{"b":null}]}`, `{"metadata":{"annotations":{"leasefence.io/stamp":1}}}`} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		out, err := MergePatch(patch, testStamp)
		if err != nil {
			return
		}
		var got struct {
			Metadata struct {
				Annotations map[string]any `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("MergePatch(%q) = %q: not a JSON object: %v", patch, out, err)
		}
		if v := got.Metadata.Annotations[AnnotationStamp]; v != testStamp.String() {
			t.Fatalf("MergePatch(%q) = %q: stamp %v", patch, out, v)
		}
	})
}

func FuzzJSONPatch(f *testing.F) {
	for _, p := range []string{``, `null`, `[]`, `[{"op":"remove","path":"/a"}]`, `{}`, `[1,2]`} {
		f.Add([]byte(p), true)
	}
	f.Fuzz(func(t *testing.T, ops []byte, hasAnnotations bool) {
		out, err := JSONPatch(ops, hasAnnotations, testStamp)
		if err != nil {
			return
		}
		var list []json.RawMessage
		if err := json.Unmarshal(out, &list); err != nil || len(list) == 0 {
			t.Fatalf("JSONPatch(%q) = %q: not a non-empty array: %v", ops, out, err)
		}
		var last struct {
			Op, Path string
			Value    any
		}
		if err := json.Unmarshal(list[len(list)-1], &last); err != nil || last.Op != "add" {
			t.Fatalf("JSONPatch(%q) = %q: last op %+v, %v", ops, out, last, err)
		}
	})
}

func FuzzParseLeaseRef(f *testing.F) {
	for _, s := range []string{"ctrl", "ops/ctrl", "a/b/c", "/x", "A", "a.b", "", "identity:ctrl", "stamp:ops/ctrl",
		"identity", "identity:", ":ctrl", "identity:stamp:ctrl", "ops/identity:ctrl", "Identity:ctrl"} {
		f.Add(s, "default")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, text, ns string) {
		p, err := ParseProtection(text, ns)
		r, refErr := ParseLeaseRef(text, ns)
		if (err == nil) != (refErr == nil) || r != p.Lease {
			t.Fatalf("ParseProtection(%q, %q) = %+v, %v but ParseLeaseRef = %+v, %v", text, ns, p, err, r, refErr)
		}
		if err != nil {
			return
		}
		// Only a prefix names a mode, and it is a whole mode.
		mode, _, named := strings.Cut(text, ":")
		if (p.Fencing != FencingDefault) != named || (named && mode != p.Fencing.String()) {
			t.Fatalf("ParseProtection(%q, %q) = %+v: the mode does not match the prefix", text, ns, p)
		}
		// A parsed protection names the Lease and mode again in the
		// qualified form, and the Lease alone in LeaseRef's.
		again, err := ParseProtection(p.String(), "")
		if err != nil || again != p {
			t.Fatalf("ParseProtection(%q, %q) = %+v, but its String() %q gives %+v, %v", text, ns, p, p.String(), again, err)
		}
		if back, err := ParseLeaseRef(r.String(), ""); err != nil || back != r {
			t.Fatalf("ParseLeaseRef(%q, %q) = %+v, but its String() %q gives %+v, %v", text, ns, r, r.String(), back, err)
		}
	})
}
