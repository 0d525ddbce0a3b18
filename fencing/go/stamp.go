// Package fencing is the Go helper of leasefence: it lets a client-go
// controller stamp its writes to protected objects so that the leasefence
// admission webhook can fence writes from stale ex-leaders.
//
// The stamp protocol (version 1) is written down in docs/protocol.md of the
// leasefence repository; this package implements it exactly as the C library
// (fencing/include/leasefence/fencing.h) does, and both are held to the shared
// test vectors in tests/vectors.
//
// A controller uses three pieces:
//
//   - [NewLeaseLock] gives a resourcelock.Interface for client-go's leader
//     elector that remembers the Lease's uid, holder and term; [Lock.Stamp]
//     turns the elector's current view into a [Stamp].
//   - [StampObject], [MergePatch] and [JSONPatch] put the stamp on main
//     resource writes; [UpdateOptions], [PatchOptions], [CreateOptions] and
//     [ApplyOptions] carry it in fieldManager for subresource writes
//     (/status, /scale).
//   - [Delete] and [DeleteCollection] perform the two-step fenced delete.
//
// Everything that stamps is a pure function of its arguments; only [Lock]
// (through the elector), [Delete] and [DeleteCollection] talk to the API
// server.
package fencing

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Names and bounds of the protocol (docs/protocol.md).
const (
	// AnnotationLease marks an object as protected and names its guarding
	// Lease: "<name>" (in the object's namespace) or "<namespace>/<name>",
	// optionally after a fencing mode, "stamp:" or "identity:"
	// (ParseProtection).
	AnnotationLease = "leasefence.io/lease"
	// AnnotationStamp carries the stamp of a write on the object itself.
	AnnotationStamp = "leasefence.io/stamp"
	// StampPrefix is the version marker every stamp starts with.
	StampPrefix = "lf1:"

	// MaxTerm is the largest term (leaseTransitions is an int32).
	MaxTerm = 2147483647
	// MaxLeaseUID is the longest Lease uid accepted.
	MaxLeaseUID = 64
	// MaxHolder is the longest holder identity accepted, in bytes.
	MaxHolder = 256
	// MaxStamp is the longest stamp accepted, in bytes.
	MaxStamp = 340
	// MaxFieldManager is the API server's limit on fieldManager.
	MaxFieldManager = 128
	// MaxAnnotation bounds the value of leasefence's own annotations.
	MaxAnnotation = 1024
	// MaxNamespace bounds a Lease namespace (a DNS-1123 label).
	MaxNamespace = 63
	// MaxName bounds a Lease name (a DNS-1123 subdomain).
	MaxName = 253
)

// ErrMalformed is wrapped by every error that ParseStamp, Stamp.Validate,
// ParseProtection and ParseLeaseRef return, so callers can test for it with errors.Is.
var ErrMalformed = errors.New("leasefence: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Stamp is what a writer asserts on a write: "I am Holder, holding the Lease
// whose uid is LeaseUID, in the term Term (its leaseTransitions)".
//
// Holder is empty only in the short form "lf1:<term>:<uid>", which exists
// for the fieldManager carrier alone (see FieldManager).
type Stamp struct {
	Term     int32
	LeaseUID string
	Holder   string
}

// ParseStamp parses "lf1:<term>:<lease-uid>:<holder>" (full form) or
// "lf1:<term>:<lease-uid>" (short form, Holder ""). Where the short form is
// not allowed (on an object) the caller checks that Holder is not empty, or
// calls Validate.
//
// The rules: at most 340 bytes; the prefix "lf1:"; the term in decimal,
// 0..2147483647, without sign or leading zeros; the uid 1..64 characters of
// [0-9A-Za-z-]; the holder everything after the third colon (so it may hold
// colons), 1..256 bytes, without control characters (bytes below 0x20 and
// 0x7f). UTF-8 in the holder is passed through as is.
func ParseStamp(text string) (Stamp, error) {
	if len(text) > MaxStamp {
		return Stamp{}, malformed("stamp is %d bytes, more than the %d allowed", len(text), MaxStamp)
	}
	if !strings.HasPrefix(text, StampPrefix) {
		return Stamp{}, malformed("stamp %q does not start with %q", text, StampPrefix)
	}
	rest := text[len(StampPrefix):]
	termText, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return Stamp{}, malformed("stamp %q has no lease uid (want lf1:<term>:<lease-uid>:<holder>)", text)
	}
	term, err := parseTerm(termText)
	if err != nil {
		return Stamp{}, err
	}
	uid, holder, hasHolder := strings.Cut(rest, ":")
	if err := checkUID(uid); err != nil {
		return Stamp{}, err
	}
	s := Stamp{Term: term, LeaseUID: uid}
	if hasHolder {
		if err := checkHolder(holder); err != nil {
			return Stamp{}, err
		}
		s.Holder = holder
	}
	return s, nil
}

func parseTerm(t string) (int32, error) {
	if t == "" {
		return 0, malformed("stamp term is empty")
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, malformed("stamp term %q is not a decimal number without sign", t)
		}
	}
	if len(t) > 1 && t[0] == '0' {
		return 0, malformed("stamp term %q has a leading zero", t)
	}
	if len(t) > 10 {
		return 0, malformed("stamp term %q is larger than %d", t, MaxTerm)
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v > MaxTerm {
		return 0, malformed("stamp term %q is larger than %d", t, MaxTerm)
	}
	return int32(v), nil
}

func checkUID(uid string) error {
	if uid == "" {
		return malformed("stamp lease uid is empty")
	}
	if len(uid) > MaxLeaseUID {
		return malformed("stamp lease uid is %d characters, more than the %d allowed", len(uid), MaxLeaseUID)
	}
	for i := 0; i < len(uid); i++ {
		c := uid[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return malformed("stamp lease uid %q has the character %q (allowed: 0-9 A-Z a-z -)", uid, c)
		}
	}
	return nil
}

func checkHolder(h string) error {
	if h == "" {
		return malformed("stamp holder is empty")
	}
	if len(h) > MaxHolder {
		return malformed("stamp holder is %d bytes, more than the %d allowed", len(h), MaxHolder)
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 0x20 || h[i] == 0x7f {
			return malformed("stamp holder %q has the control character 0x%02x at byte %d", h, h[i], i)
		}
	}
	return nil
}

// Validate reports whether s is a valid full stamp: term 0..2147483647, a
// valid Lease uid and a non-empty, printable holder of at most 256 bytes.
func (s Stamp) Validate() error {
	if s.Term < 0 {
		return malformed("stamp term %d is negative", s.Term)
	}
	if err := checkUID(s.LeaseUID); err != nil {
		return err
	}
	if s.Holder == "" {
		return malformed("stamp holder is empty (the short form is only for fieldManager)")
	}
	if isHolderHash(s.Holder) {
		return malformed("stamp holder %q has the form of a holder hash", s.Holder)
	}
	return checkHolder(s.Holder)
}

// String gives the full form "lf1:<term>:<lease-uid>:<holder>", or the short
// form "lf1:<term>:<lease-uid>" when Holder is empty. It does not validate;
// call Validate for that (the helpers that write a stamp do).
func (s Stamp) String() string {
	if s.Holder == "" {
		return s.short()
	}
	return s.short() + ":" + s.Holder
}

func (s Stamp) short() string {
	return StampPrefix + strconv.FormatInt(int64(s.Term), 10) + ":" + s.LeaseUID
}

// FieldManager gives the stamp as a fieldManager value, the per-request
// stamp of every write (docs/protocol.md section 4): the full form when it
// is at most 128 bytes of printable ASCII, else the short form
// "lf1:<term>:<lease-uid>:#<holder hash>", which keeps the whole tenure. The
// API server refuses a fieldManager with a rune that unicode.IsPrint rejects
// (a no-break space, say); printable ASCII is a rule every helper can apply
// byte for byte, so all of them emit the same value.
func (s Stamp) FieldManager() string {
	full := s.String()
	if len(full) <= MaxFieldManager && printableASCII(full) {
		return full
	}
	return s.short() + ":#" + HolderHash(s.Holder)
}

// HolderHash is the holder hash of docs/protocol.md section 3: the 64-bit
// FNV-1a hash of the holder's bytes as 16 lowercase hex digits.
func HolderHash(holder string) string {
	h := fnv.New64a()
	h.Write([]byte(holder))
	return fmt.Sprintf("%016x", h.Sum64())
}

// isHolderHash reports whether h has the form of a holder hash, "#" and 16
// lowercase hex digits, which no holder may have.
func isHolderHash(h string) bool {
	if len(h) != 17 || h[0] != '#' {
		return false
	}
	for i := 1; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return false
		}
	}
	return true
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
