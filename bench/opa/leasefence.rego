# The decision leasefence makes for the benchmark's review, in Rego, for the
# side-by-side benchmark (bench/opa.sh). The Lease is pushed into OPA's data
# at data.leases[<namespace>][<name>]; the review is the input, and the
# answer an AdmissionReview, as the webhook's.
#
# It checks what leasefence checks for a stamped UPDATE from the guarded
# controller: the stamp (per request in fieldManager, else on the object)
# names the Lease's uid, current term and holder; the Lease has not expired
# (renewTime + leaseDurationSeconds against OPA's clock); the requesting pod
# is the holder's; the object's stored term is not newer than the stamp's;
# the object keeps the stamp it was written with. It does not read the
# Lease live, judge clock skew, or sort writers into classes.
package leasefence

req := input.request

ann := object.get(req, ["object", "metadata", "annotations"], {})

old_ann := object.get(req, ["oldObject", "metadata", "annotations"], {})

field_manager := object.get(req, ["options", "fieldManager"], "")

protected if ann["leasefence.io/lease"]

stamp_text := field_manager if {
	startswith(field_manager, "lf1:")
} else := object.get(ann, "leasefence.io/stamp", "")

# lf1:<term>:<uid>:<holder>; the holder may itself hold colons.
parse_stamp(text) := {"term": to_number(p[1]), "uid": p[2], "holder": concat(":", array.slice(p, 3, count(p)))} if {
	p := split(text, ":")
	p[0] == "lf1"
	count(p) >= 4
}

stamp := parse_stamp(stamp_text)

old_term := parse_stamp(old_ann["leasefence.io/stamp"]).term

lease_path := split(ann["leasefence.io/lease"], "/")

lease := data.leases[lease_path[0]][lease_path[1]] if count(lease_path) == 2

lease := data.leases[req.namespace][lease_path[0]] if count(lease_path) == 1

expired if {
	renew := time.parse_rfc3339_ns(lease.spec.renewTime)
	time.now_ns() >= renew + (lease.spec.leaseDurationSeconds * 1000000000)
}

pod := req.userInfo.extra["authentication.kubernetes.io/pod-name"][0]

reason := "NotProtected" if {
	not protected
} else := "NoStamp" if {
	not stamp
} else := "LeaseNotFound" if {
	not lease
} else := "LeaseRecreated" if {
	stamp.uid != lease.metadata.uid
} else := "StaleTerm" if {
	stamp.term < lease.spec.leaseTransitions
} else := "TermAhead" if {
	stamp.term > lease.spec.leaseTransitions
} else := "NotHolder" if {
	stamp.holder != lease.spec.holderIdentity
} else := "LeaseExpired" if {
	expired
} else := "IdentityMismatch" if {
	pod
	pod != split(stamp.holder, "_")[0]
} else := "OlderThanObject" if {
	old_term > stamp.term
} else := "StampChange" if {
	object.get(ann, "leasefence.io/stamp", "") != stamp_text
} else := "Current"

allowed if reason in {"NotProtected", "Current"}

response := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": {
		"uid": req.uid,
		"allowed": true,
		"auditAnnotations": {"reason": reason},
	},
} if {
	allowed
} else := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": {
		"uid": req.uid,
		"allowed": false,
		"auditAnnotations": {"reason": reason},
		"status": {"code": 403, "reason": "Forbidden", "message": sprintf(
			"leasefence denied the %s of %s %s/%s (%s): the write is stamped %q, the Lease is held by %q in term %v",
			[req.operation, req.resource.resource, req.namespace, req.name, reason, stamp_text, object.get(lease, ["spec", "holderIdentity"], ""), object.get(lease, ["spec", "leaseTransitions"], 0)],
		)},
	},
}
