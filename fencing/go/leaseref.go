package fencing

import "strings"

// LeaseRef names the Lease that guards a protected object.
type LeaseRef struct {
	Namespace string
	Name      string
}

// String gives "<namespace>/<name>".
func (r LeaseRef) String() string { return r.Namespace + "/" + r.Name }

// Fencing is how the guarded controller's writes to a protected object are
// fenced, as the protection annotation names it (docs/protocol.md, sections
// 2 and 7a).
type Fencing int

const (
	// FencingDefault: the annotation names no mode, so the webhook's
	// --default-fencing decides (stamp unless the operator chose identity).
	FencingDefault Fencing = iota
	// FencingStamp ("stamp:<lease>"): every write of the controller
	// presents a per-request stamp.
	FencingStamp
	// FencingIdentity ("identity:<lease>"): a write without a per-request
	// stamp is admitted when the requester's pod (or, for a hostNetwork
	// holder, its node) is the Lease's holder; a stamp, when sent, is
	// judged as under FencingStamp.
	FencingIdentity
)

// String gives the mode as the annotation spells it: "stamp", "identity",
// or "" for FencingDefault.
func (f Fencing) String() string {
	switch f {
	case FencingStamp:
		return "stamp"
	case FencingIdentity:
		return "identity"
	}
	return ""
}

// Protection is a parsed protection annotation: the guarding Lease and the
// fencing mode it names.
type Protection struct {
	Lease   LeaseRef
	Fencing Fencing
}

// String gives the annotation's qualified form, "[<mode>:]<namespace>/<name>",
// which ParseProtection reads back to the same Protection whatever the
// object's namespace.
func (p Protection) String() string {
	if p.Fencing == FencingDefault {
		return p.Lease.String()
	}
	return p.Fencing.String() + ":" + p.Lease.String()
}

// ParseProtection parses the value of the protection annotation
// (AnnotationLease) of an object in objectNamespace ("" for a cluster-scoped
// object), following docs/protocol.md section 2, as the webhook does
// (lf_protection_parse in fencing/src/lease.c; the shared vectors in
// tests/vectors pin both):
//
//   - the value may start with a fencing mode, "stamp:" or "identity:";
//     no Lease namespace or name holds a ':', so the first ':' ends the
//     mode, and any other text before it is malformed;
//   - after the mode, "<name>" names a Lease in the object's namespace; a
//     cluster-scoped object has none, so it must use the other form;
//   - "<namespace>/<name>" names a Lease in another namespace;
//   - the namespace is a DNS-1123 label (at most 63 characters), the name a
//     DNS-1123 subdomain (at most 253, dot-separated parts); nothing else
//     is accepted: no spaces, no upper case, no empty parts, no second "/";
//   - the whole value, mode included, is at most 1024 bytes.
func ParseProtection(annotation, objectNamespace string) (Protection, error) {
	if len(annotation) > MaxAnnotation {
		return Protection{}, malformed("%s is %d bytes, more than the %d allowed", AnnotationLease, len(annotation), MaxAnnotation)
	}
	fencing := FencingDefault
	lease := annotation
	if mode, rest, found := strings.Cut(annotation, ":"); found {
		switch mode {
		case "stamp":
			fencing = FencingStamp
		case "identity":
			fencing = FencingIdentity
		default:
			return Protection{}, malformed("%s %q: what precedes its ':' is not a fencing mode (stamp: or identity:)", AnnotationLease, annotation)
		}
		lease = rest
	}
	ref, err := parseLeaseRef(annotation, lease, objectNamespace)
	if err != nil {
		return Protection{}, err
	}
	return Protection{Lease: ref, Fencing: fencing}, nil
}

// ParseLeaseRef parses the protection annotation as ParseProtection does
// and gives only the Lease it names: every value the webhook accepts,
// including those that name a fencing mode.
func ParseLeaseRef(annotation, objectNamespace string) (LeaseRef, error) {
	p, err := ParseProtection(annotation, objectNamespace)
	return p.Lease, err
}

// parseLeaseRef parses lease, the annotation after its mode.
func parseLeaseRef(annotation, lease, objectNamespace string) (LeaseRef, error) {
	ns, name, qualified := strings.Cut(lease, "/")
	if !qualified {
		name = lease
		if objectNamespace == "" {
			return LeaseRef{}, malformed("%s %q on a cluster-scoped object must name the Lease's namespace (<namespace>/<name>)", AnnotationLease, annotation)
		}
		ns = objectNamespace
	}
	if !isDNS1123Label(ns) {
		return LeaseRef{}, malformed("%s %q: the namespace %q is not a DNS-1123 label (at most %d characters of a-z, 0-9 and '-', starting and ending with a letter or digit)", AnnotationLease, annotation, ns, MaxNamespace)
	}
	if !isDNS1123Subdomain(name) {
		return LeaseRef{}, malformed("%s %q: the Lease name %q is not a DNS-1123 subdomain (at most %d characters of a-z, 0-9, '-' and '.'; each dot-separated part starting and ending with a letter or digit)", AnnotationLease, annotation, name, MaxName)
	}
	return LeaseRef{Namespace: ns, Name: name}, nil
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// isLabelPart: [a-z0-9]([-a-z0-9]*[a-z0-9])?, without a length bound.
func isLabelPart(s string) bool {
	if s == "" || !isAlnumLower(s[0]) || !isAlnumLower(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnumLower(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func isDNS1123Label(s string) bool { return len(s) <= MaxNamespace && isLabelPart(s) }

// isDNS1123Subdomain: at most 253 characters, dot-separated parts that each
// start and end with a letter or digit, as Kubernetes' IsDNS1123Subdomain
// (which bounds only the whole name, not each part).
func isDNS1123Subdomain(s string) bool {
	if len(s) > MaxName {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !isLabelPart(part) {
			return false
		}
	}
	return true
}
