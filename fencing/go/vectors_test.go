package fencing

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The shared vectors pin the protocol for every helper (C and Go).
var vectorFiles = []string{
	filepath.Join("..", "..", "tests", "vectors", "stamps.json"),
}

type vectorStamp struct {
	Term     int32  `json:"term"`
	LeaseUID string `json:"lease_uid"`
	Holder   string `json:"holder"`
}

type vectors struct {
	Parse []struct {
		Name string `json:"name"`
		Text string `json:"text"`
		OK   bool   `json:"ok"`
		vectorStamp
	} `json:"parse"`
	Format []struct {
		Name string `json:"name"`
		vectorStamp
		OK           bool   `json:"ok"`
		Stamp        string `json:"stamp"`
		FieldManager string `json:"field_manager"`
	} `json:"format"`
	HolderHash []struct {
		Name   string `json:"name"`
		Holder string `json:"holder"`
		Hash   string `json:"hash"`
	} `json:"holder_hash"`
	LeaseRef   []leaseRefCase `json:"lease_ref"`
	Protection []struct {
		leaseRefCase
		Fencing string `json:"fencing"` // "" when the value names no mode
	} `json:"protection"`
	MergePatch []struct {
		Name  string          `json:"name"`
		Stamp vectorStamp     `json:"stamp"`
		In    json.RawMessage `json:"in"`
		OK    *bool           `json:"ok"` // absent: true
		Out   json.RawMessage `json:"out"`
	} `json:"merge_patch"`
	JSONPatch []struct {
		Name           string          `json:"name"`
		Stamp          vectorStamp     `json:"stamp"`
		In             json.RawMessage `json:"in"`
		HasAnnotations bool            `json:"has_annotations"`
		OK             *bool           `json:"ok"` // absent: true
		Out            json.RawMessage `json:"out"`
	} `json:"json_patch"`
}

type leaseRefCase struct {
	Name     string `json:"name"`
	Text     string `json:"text"`
	ObjectNS string `json:"object_ns"`
	OK       bool   `json:"ok"`
	NS       string `json:"ns"`
	NameOut  string `json:"name_out"`
}

func (v vectorStamp) stamp() Stamp {
	return Stamp{Term: v.Term, LeaseUID: v.LeaseUID, Holder: v.Holder}
}

func loadVectors(t *testing.T, path string) vectors {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the vectors: %v", err)
	}
	// Each section is decoded strictly, so that a field this test does not
	// know fails it instead of being skipped; a top-level "comment" is
	// allowed, an unknown section is not.
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(b, &sections); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	var v vectors
	known := map[string]any{"parse": &v.Parse, "format": &v.Format, "holder_hash": &v.HolderHash, "lease_ref": &v.LeaseRef,
		"protection":  &v.Protection,
		"merge_patch": &v.MergePatch, "json_patch": &v.JSONPatch}
	for name, raw := range sections {
		if name == "comment" {
			continue
		}
		dst, ok := known[name]
		if !ok {
			t.Errorf("%s: unknown section %q: teach this test to run it", path, name)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			t.Fatalf("decoding %s, section %s: %v", path, name, err)
		}
	}
	return v
}

// sameJSON compares two JSON texts semantically.
func sameJSON(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("expected output is not JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

func inBytes(raw json.RawMessage) []byte {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

func TestVectors(t *testing.T) {
	for _, file := range vectorFiles {
		v := loadVectors(t, file)
		n := len(v.Parse) + len(v.Format) + len(v.HolderHash) + len(v.LeaseRef) + len(v.Protection) + len(v.MergePatch) + len(v.JSONPatch)
		if n == 0 {
			t.Fatalf("%s holds no cases", file)
		}
		t.Logf("%s: %d cases", file, n)
		t.Run(filepath.Base(file), func(t *testing.T) { runVectors(t, v) })
	}
}

func runVectors(t *testing.T, v vectors) {
	for _, c := range v.HolderHash {
		t.Run("holder_hash/"+c.Name, func(t *testing.T) {
			if got := HolderHash(c.Holder); got != c.Hash {
				t.Fatalf("HolderHash(%q) = %q, want %q", c.Holder, got, c.Hash)
			}
		})
	}
	for _, c := range v.Parse {
		t.Run("parse/"+c.Name, func(t *testing.T) {
			s, err := ParseStamp(c.Text)
			if !c.OK {
				if err == nil {
					t.Fatalf("ParseStamp(%q) = %+v, want an error", c.Text, s)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStamp(%q): %v", c.Text, err)
			}
			if want := c.stamp(); s != want {
				t.Fatalf("ParseStamp(%q) = %+v, want %+v", c.Text, s, want)
			}
			// Round trip: what parses formats back to the same text.
			if got := s.String(); got != c.Text {
				t.Errorf("String() = %q, want %q", got, c.Text)
			}
		})
	}
	for _, c := range v.Format {
		t.Run("format/"+c.Name, func(t *testing.T) {
			s := c.stamp()
			err := s.Validate()
			if !c.OK {
				if err == nil {
					t.Fatalf("Validate(%+v) = nil, want an error", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate(%+v): %v", s, err)
			}
			if got := s.String(); got != c.Stamp {
				t.Errorf("String() = %q, want %q", got, c.Stamp)
			}
			if got := s.FieldManager(); got != c.FieldManager {
				t.Errorf("FieldManager() = %q, want %q", got, c.FieldManager)
			}
			if len(s.FieldManager()) > MaxFieldManager {
				t.Errorf("FieldManager() is %d bytes", len(s.FieldManager()))
			}
			back, err := ParseStamp(c.Stamp)
			if err != nil || back != s {
				t.Errorf("ParseStamp(String()) = %+v, %v", back, err)
			}
		})
	}
	// ParseLeaseRef reads the whole protection annotation, so it is tested
	// on the protection cases, which hold every lease_ref case (those of C's
	// lf_lease_ref_parse) as it stands and behind each fencing mode.
	for _, c := range v.Protection {
		t.Run("protection/"+c.Name, func(t *testing.T) {
			p, err := ParseProtection(c.Text, c.ObjectNS)
			r, refErr := ParseLeaseRef(c.Text, c.ObjectNS)
			if !c.OK {
				if err == nil {
					t.Fatalf("ParseProtection(%q, %q) = %+v, want an error", c.Text, c.ObjectNS, p)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if refErr == nil {
					t.Errorf("ParseLeaseRef(%q, %q) = %+v, want an error", c.Text, c.ObjectNS, r)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProtection(%q, %q): %v", c.Text, c.ObjectNS, err)
			}
			want := Protection{Lease: LeaseRef{Namespace: c.NS, Name: c.NameOut}}
			switch c.Fencing {
			case "stamp":
				want.Fencing = FencingStamp
			case "identity":
				want.Fencing = FencingIdentity
			case "":
			default:
				t.Fatalf("unknown fencing %q in the vectors", c.Fencing)
			}
			if p != want {
				t.Fatalf("ParseProtection(%q, %q) = %+v, want %+v", c.Text, c.ObjectNS, p, want)
			}
			if p.Fencing.String() != c.Fencing {
				t.Errorf("Fencing.String() = %q, want %q", p.Fencing.String(), c.Fencing)
			}
			if refErr != nil || r != want.Lease {
				t.Errorf("ParseLeaseRef(%q, %q) = %+v, %v; want %+v", c.Text, c.ObjectNS, r, refErr, want.Lease)
			}
			// The qualified form reads back to the same protection on a
			// cluster-scoped object.
			if again, err := ParseProtection(p.String(), ""); err != nil || again != p {
				t.Errorf("ParseProtection(%q, \"\") = %+v, %v; want %+v", p.String(), again, err, p)
			}
		})
	}
	for _, c := range v.MergePatch {
		t.Run("merge_patch/"+c.Name, func(t *testing.T) {
			out, err := MergePatch(inBytes(c.In), c.Stamp.stamp())
			if c.OK != nil && !*c.OK {
				if err == nil {
					t.Fatalf("MergePatch(%s) = %s, want an error", c.In, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("MergePatch(%s): %v", c.In, err)
			}
			if !sameJSON(t, out, c.Out) {
				t.Fatalf("MergePatch(%s) = %s, want %s", c.In, out, c.Out)
			}
		})
	}
	for _, c := range v.JSONPatch {
		t.Run("json_patch/"+c.Name, func(t *testing.T) {
			out, err := JSONPatch(inBytes(c.In), c.HasAnnotations, c.Stamp.stamp())
			if c.OK != nil && !*c.OK {
				if err == nil {
					t.Fatalf("JSONPatch(%s) = %s, want an error", c.In, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("JSONPatch(%s): %v", c.In, err)
			}
			if !sameJSON(t, out, c.Out) {
				t.Fatalf("JSONPatch(%s) = %s, want %s", c.In, out, c.Out)
			}
		})
	}
}
