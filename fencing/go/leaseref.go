package fencing

import "strings"

// LeaseRef names the Lease that guards a protected object.
type LeaseRef struct {
	Namespace string
	Name      string
}

// String gives "<namespace>/<name>".
func (r LeaseRef) String() string { return r.Namespace + "/" + r.Name }

// ParseLeaseRef parses the value of the protection annotation
// (AnnotationLease) of an object in objectNamespace ("" for a cluster-scoped
// object), following docs/protocol.md section 2:
//
//   - "<name>" names a Lease in the object's namespace; a cluster-scoped
//     object has none, so it must use the other form;
//   - "<namespace>/<name>" names a Lease in another namespace;
//   - the namespace is a DNS-1123 label (at most 63 characters), the name a
//     DNS-1123 subdomain (at most 253, dot-separated parts); nothing else
//     is accepted: no spaces,
//     no upper case, no empty parts, no second "/";
//   - the whole value is at most 1024 bytes.
func ParseLeaseRef(annotation, objectNamespace string) (LeaseRef, error) {
	if len(annotation) > MaxAnnotation {
		return LeaseRef{}, malformed("%s is %d bytes, more than the %d allowed", AnnotationLease, len(annotation), MaxAnnotation)
	}
	ns, name, qualified := strings.Cut(annotation, "/")
	if !qualified {
		name = annotation
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
