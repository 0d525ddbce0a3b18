#!/usr/bin/env python3
"""Writes the shared test vectors (decisions.json, stamps.json) from the
tables below. The JSON files are what every implementation's tests read (the
C library, the webhook, the Go helper); this script only keeps them readable
to maintain. Each case states the expected outcome from docs/protocol.md by
hand; nothing here computes a decision.

    python3 tests/vectors/generate.py   # rewrites the two JSON files
"""
import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

UID = "11111111-1111-4111-8111-111111111111"
UID2 = "22222222-2222-4222-8222-222222222222"
A = "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001"
B = "ctrl-b_bbbbbbbb-0000-4000-8000-000000000002"
RENEW = "2026-01-01T00:00:00.000000Z"


def stamp(term=3, uid=UID, holder=A):
    return f"lf1:{term}:{uid}" + (f":{holder}" if holder is not None else "")


def lease(holder=A, term=3, uid=UID, duration=15, renew=RENEW, acquire="2025-12-31T23:00:00.000000Z",
          ns="default", name="ctrl"):
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "leaseTransitions": term}
    if renew is not None:
        spec["renewTime"] = renew
    if acquire is not None:
        spec["acquireTime"] = acquire
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": "100"},
            "spec": spec}


def obj(lease_ann="ctrl", stamp_ann=None, ns="default", name="cm"):
    ann = {}
    if lease_ann is not None:
        ann["leasefence.io/lease"] = lease_ann
    if stamp_ann is not None:
        ann["leasefence.io/stamp"] = stamp_ann
    meta = {"name": name, "annotations": ann}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def request(op="UPDATE", new=None, old=None, pod="ctrl-a", user="system:serviceaccount:default:ctrl",
            groups=None, sub=None, fm=None, dry=False, ns="default", name="cm",
            resource="configmaps", kind="ConfigMap", group=""):
    r = {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
         "kind": {"group": group, "version": "v1", "kind": kind},
         "resource": {"group": group, "version": "v1", "resource": resource},
         "name": name, "operation": op, "dryRun": dry,
         "userInfo": {"username": user,
                      "groups": groups if groups is not None else
                      ["system:serviceaccounts", "system:authenticated"]}}
    if ns:
        r["namespace"] = ns
    if sub:
        r["subResource"] = sub
    if pod is not None:
        r["userInfo"]["extra"] = {"authentication.kubernetes.io/pod-name": [pod],
                                  "authentication.kubernetes.io/pod-uid": ["0000"]}
    if op in ("CREATE", "UPDATE"):
        r["object"] = new if new is not None else obj(stamp_ann=stamp())
        r["options"] = {"apiVersion": "meta.k8s.io/v1",
                        "kind": "CreateOptions" if op == "CREATE" else "UpdateOptions"}
        if fm is not None:
            r["options"]["fieldManager"] = fm
    if op == "UPDATE" or op == "DELETE":
        r["oldObject"] = old if old is not None else obj(stamp_ann=stamp())
    if op == "DELETE":
        r["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"}
    return r


def at(seconds):
    """RENEW plus `seconds`, as RFC 3339."""
    whole = int(seconds // 1)
    micros = round((seconds - whole) * 1e6)
    if seconds < 0:
        # 2025-12-31T23:59:xx for small negative offsets.
        total = 60 + seconds
        whole = int(total // 1)
        micros = round((total - whole) * 1e6)
        return f"2025-12-31T23:59:{whole:02d}.{micros:06d}Z"
    return f"2026-01-01T00:00:{whole:02d}.{micros:06d}Z"


CASES = []


def case(name, expect_allowed, reason, req=None, lease_obj="default", status="ok", now=5, policy=None,
         lease_ref=None, contains=None, retry_live=None):
    c = {"name": name,
         "request": req if req is not None else request(),
         "lease": lease() if lease_obj == "default" else lease_obj,
         "lease_status": status,
         "now": at(now),
         "expect": {"allowed": expect_allowed, "reason": reason}}
    if status == "unavailable":
        c["lease_cause"] = "connection refused"
    if policy:
        c["policy"] = policy
    if lease_ref:
        c["expect"]["lease"] = lease_ref
    if contains:
        c["expect"]["message_contains"] = contains
    if retry_live is not None:
        c["expect"]["retry_live"] = retry_live
    CASES.append(c)


def review_error(name, req, contains):
    CASES.append({"name": name, "request": req, "lease": lease(), "lease_status": "ok", "now": at(5),
                  "expect": {"review_error": True, "message_contains": contains}})


# --- G1: current holder and term ------------------------------------------
case("current holder and term, update", True, "Current", lease_ref="default/ctrl",
     contains=["ctrl-a_", "term 3"], retry_live=False)
case("current holder, create", True, "Current",
     req=request(op="CREATE"))
case("current holder, create with generateName", True, "Current",
     req=request(op="CREATE", name=""), contains=["(new object)"])
case("not protected", True, "NotProtected",
     req=request(new=obj(lease_ann=None), old=obj(lease_ann=None)), lease_obj=None, status="not_found")
case("older term than the Lease", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=2)), old=obj(stamp_ann=stamp(term=2))),
     contains=["term 2", "term 3", "Lease default/ctrl", "no longer the leader"], retry_live=False)
case("taken over: stale leader stamps its old term", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=3, holder=A)), old=obj(stamp_ann=stamp(term=4, holder=B))),
     lease_obj=lease(holder=B, term=4), contains=["ctrl-a_", "ctrl-b_", "term 4"])
case("term newer than the Lease read", False, "TermAhead",
     req=request(new=obj(stamp_ann=stamp(term=4)), old=obj(stamp_ann=stamp(term=3))), retry_live=True,
     contains=["retry"])
case("wrong holder in the current term", False, "NotHolder",
     req=request(new=obj(stamp_ann=stamp(holder=B)), pod=None))
case("Lease deleted and re-created", False, "LeaseRecreated",
     lease_obj=lease(uid=UID2, term=0), contains=[UID, UID2, "re-created"], retry_live=True)
case("released Lease", False, "LeaseReleased",
     lease_obj=lease(holder="", duration=1), contains=["no holder"], retry_live=True)
case("Lease never held (no spec)", False, "LeaseReleased",
     lease_obj={"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "ctrl", "namespace": "default", "uid": UID}},
     req=request(new=obj(stamp_ann=stamp(term=0)), old=obj(stamp_ann=None)))
case("holder name containing colons", True, "Current",
     req=request(new=obj(stamp_ann=stamp(holder="ns:ctrl:x")), old=obj(), pod=None),
     lease_obj=lease(holder="ns:ctrl:x"))

# --- G3: expiry and clock skew ----------------------------------------------
case("expired Lease, nobody took over", False, "LeaseExpired", now=14,
     contains=["expired", "2026-01-01T00:00:13.000000Z"], retry_live=True)
case("just before the conservative expiry", True, "Current", now=12.9)
case("at the conservative expiry", False, "LeaseExpired", now=13)
case("expiry with zero tolerance, one microsecond before", True, "Current", now=14.999999,
     policy={"skew_seconds": 0})
case("expiry with zero tolerance, exactly at expiry", False, "LeaseExpired", now=15,
     policy={"skew_seconds": 0})
case("renewTime ahead within tolerance", True, "Current", now=-1.5)
case("renewTime ahead beyond tolerance", False, "ClockSkew", now=-3, contains=["NTP"])
case("renewTime ahead within a larger tolerance", True, "Current", now=-3, policy={"skew_seconds": 5})
case("renewTime behind within tolerance (holder clock slow)", True, "Current", now=11.5)
case("renewTime behind beyond tolerance (holder clock slow by 3 s, renewed 10.5 s ago by ours)", False,
     "LeaseExpired", now=13.5, retry_live=True)
case("no renewTime and no acquireTime", False, "LeaseExpired",
     lease_obj=lease(renew=None, acquire=None))
case("no renewTime, fresh acquireTime", True, "Current",
     lease_obj=lease(renew=None, acquire=RENEW))
case("zero leaseDurationSeconds", False, "LeaseExpired", lease_obj=lease(duration=0))

# --- G4: identity ------------------------------------------------------------
case("pod identity matches <pod>_<uuid> holder", True, "Current")
case("pod identity matches bare <pod> holder", True, "Current",
     req=request(new=obj(stamp_ann=stamp(holder="ctrl-a")), old=obj(stamp_ann=stamp(holder="ctrl-a"))),
     lease_obj=lease(holder="ctrl-a"))
case("pod identity is another pod", False, "IdentityMismatch", req=request(pod="ctrl-b"),
     contains=["\"ctrl-b\"", "ctrl-a_"], retry_live=False)
case("pod name is a prefix of the holder but not <pod>_", False, "IdentityMismatch",
     req=request(pod="ctrl"))
case("identity binding off ignores the pod", True, "Current", req=request(pod="ctrl-b"),
     policy={"identity": "off"})
case("identity required, request has no pod", False, "IdentityRequired", req=request(pod=None),
     policy={"identity": "required"})
case("identity required, pod is the holder", True, "Current", policy={"identity": "required"})
case("stamp carried forward by a read-modify-write from the old leader", False, "IdentityMismatch",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 pod="ctrl-a"),
     lease_obj=lease(holder=B, term=4))

# --- G2: per-object monotonic term ----------------------------------------------
case("object already written in a newer term", False, "OlderThanObject",
     req=request(new=obj(stamp_ann=stamp(term=3)), old=obj(stamp_ann=stamp(term=5))), retry_live=True,
     contains=["term 5"])
case("object's stored stamp is of another Lease uid", True, "Current",
     req=request(new=obj(stamp_ann=stamp(term=3)), old=obj(stamp_ann=stamp(term=9, uid=UID2))))
case("object's stored stamp is malformed", True, "Current",
     req=request(old=obj(stamp_ann="garbage")))

# --- G6: protection cannot be shed ------------------------------------------------
case("protection removed by a stale writer", False, "StaleTerm",
     req=request(new=obj(lease_ann=None, stamp_ann=stamp(term=2)), old=obj(stamp_ann=stamp(term=3))))
case("protection removed without a stamp", False, "MissingStamp",
     req=request(new=obj(lease_ann=None, stamp_ann=None), old=obj(stamp_ann=stamp())))
case("protection removed by the current holder", True, "Current",
     req=request(new=obj(lease_ann=None, stamp_ann=stamp()), old=obj(stamp_ann=stamp())))
case("protection moved to another Lease by the current holder", True, "Current",
     req=request(new=obj(lease_ann="other", stamp_ann=stamp()), old=obj(stamp_ann=stamp())),
     lease_ref="default/ctrl")
case("protection added to an unprotected object without a stamp", False, "MissingStamp",
     req=request(new=obj(stamp_ann=None), old=obj(lease_ann=None)))

# --- where the Lease lives ------------------------------------------------------
case("cross-namespace Lease", True, "Current",
     req=request(new=obj(lease_ann="ops/ctrl", stamp_ann=stamp()), old=obj(lease_ann="ops/ctrl", stamp_ann=stamp())),
     lease_obj=lease(ns="ops"), lease_ref="ops/ctrl")
case("cluster-scoped object, namespaced Lease", True, "Current",
     req=request(new=obj(lease_ann="ops/ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 old=obj(lease_ann="ops/ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 ns=None, name="w", resource="widgets", kind="Widget", group="test.leasefence.io"),
     lease_obj=lease(ns="ops"), lease_ref="ops/ctrl")
case("cluster-scoped object with a bare Lease name", False, "MalformedProtection",
     req=request(new=obj(lease_ann="ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 old=obj(lease_ann="ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 ns=None, name="w", resource="widgets", kind="Widget", group="test.leasefence.io"),
     contains=["cluster-scoped"])

# --- bad stamps and annotations ---------------------------------------------------
case("missing stamp", False, "MissingStamp", req=request(new=obj(stamp_ann=None)),
     contains=["leasefence.io/stamp", "ctrl-a_", "term 3", UID])
case("malformed stamp", False, "MalformedStamp", req=request(new=obj(stamp_ann="lf1:x")))
case("unknown stamp version", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="lf2:3:" + UID + ":" + A)))
case("stamp with leading zero in term", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="lf1:03:" + UID + ":" + A)))
case("oversized stamp", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp(holder="h" * 300))), contains=["at most"])
case("short-form stamp on an object", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp(holder=None))), contains=["no holder"])
case("annotation and fieldManager stamps disagree", False, "ConflictingStamps",
     req=request(fm=stamp(term=2)))
case("annotation and fieldManager stamps agree", True, "Current", req=request(fm=stamp(holder=None)))
case("malformed protection annotation", False, "MalformedProtection",
     req=request(new=obj(lease_ann="a/b/c", stamp_ann=stamp())))
case("protection annotation with an uppercase name", False, "MalformedProtection",
     req=request(new=obj(lease_ann="Ctrl", stamp_ann=stamp()), old=obj(lease_ann=None)))
case("stored protection annotation malformed", False, "MalformedProtection",
     req=request(old=obj(lease_ann="bad name", stamp_ann=stamp())))
case("empty protection annotation", False, "MalformedProtection",
     req=request(new=obj(lease_ann="", stamp_ann=stamp()), old=obj(lease_ann=None)))

# --- dry run ------------------------------------------------------------------
case("dry-run write with a current stamp", True, "Current", req=request(dry=True))
case("dry-run write with a stale stamp is judged like a real one", False, "StaleTerm",
     req=request(dry=True, new=obj(stamp_ann=stamp(term=2))), contains=["dry-run"])

# --- subresources ---------------------------------------------------------------
def status_req(fm, old_stamp=None, pod="ctrl-a"):
    o = obj(stamp_ann=old_stamp if old_stamp is not None else stamp())
    return request(sub="status", fm=fm, new=copy.deepcopy(o), old=o, pod=pod, resource="widgets",
                   kind="Widget", group="test.leasefence.io")


case("status write stamped in fieldManager", True, "Current", req=status_req(stamp()))
case("status write stamped with the short form", True, "Current", req=status_req(stamp(holder=None)))
case("status write without a fieldManager stamp", False, "MissingStamp",
     req=status_req("kubectl-edit"), contains=["fieldManager"])
case("status write with a stale fieldManager stamp", False, "StaleTerm", req=status_req(stamp(term=2)))
case("status write older than the object's stored term", False, "OlderThanObject",
     req=status_req(stamp(term=3), old_stamp=stamp(term=5)))

# --- DELETE ---------------------------------------------------------------------
case("delete of an object stamped in the current term", True, "Current", req=request(op="DELETE"))
case("delete of an object stamped in an older term", False, "StaleTerm",
     req=request(op="DELETE", old=obj(stamp_ann=stamp(term=2))))
case("delete of an object never stamped", False, "MissingStamp",
     req=request(op="DELETE", old=obj(stamp_ann=None)), contains=["precondition"])
case("delete by the old leader's pod of an object the new leader stamped", False, "IdentityMismatch",
     req=request(op="DELETE", old=obj(stamp_ann=stamp(term=4, holder=B)), pod="ctrl-a"),
     lease_obj=lease(holder=B, term=4))
case("delete of an unprotected object", True, "NotProtected",
     req=request(op="DELETE", old=obj(lease_ann=None)), lease_obj=None, status="not_found")

# --- the Lease could not be read ------------------------------------------------------
case("Lease does not exist", False, "LeaseNotFound", lease_obj=None, status="not_found",
     contains=["does not exist"], retry_live=True)
case("Lease unavailable, fail closed", False, "LeaseUnavailable", lease_obj=None, status="unavailable",
     contains=["connection refused"])
case("Lease unavailable, fail open", True, "AdmittedUnavailable", lease_obj=None, status="unavailable",
     policy={"admit_when_unavailable": True}, contains=["WITHOUT fencing", "connection refused"])

# --- exemptions and people -------------------------------------------------------
case("garbage collector deletes a protected object", True, "Exempt",
     req=request(op="DELETE", old=obj(stamp_ann=None), pod=None,
                 user="system:serviceaccount:kube-system:generic-garbage-collector"),
     lease_obj=None, status="unavailable")
case("exempt group from the policy", True, "Exempt",
     req=request(new=obj(stamp_ann=None), pod=None, user="alice", groups=["breakglass"]),
     policy={"exempt_groups": ["breakglass"]})
case("exempt users replaced by the policy", False, "MissingStamp",
     req=request(op="DELETE", old=obj(stamp_ann=None), pod=None,
                 user="system:serviceaccount:kube-system:generic-garbage-collector"),
     policy={"exempt_users": []})
case("person edits with kubectl, carrying the current stamp forward", True, "Current",
     req=request(pod=None, user="alice", groups=["system:authenticated"]))
case("person edits with kubectl after the term moved on", False, "StaleTerm",
     req=request(pod=None, user="alice", groups=["system:authenticated"]),
     lease_obj=lease(holder=B, term=4))
case("person replaces the object without the stamp", False, "MissingStamp",
     req=request(pod=None, user="alice", new=obj(stamp_ann=None)))
case("CONNECT is never fenced", True, "NotProtected",
     req=dict(request(op="DELETE"), operation="CONNECT"))

# --- reviews that are not valid ----------------------------------------------------
bad = request()
bad["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] = ["a", "b"]
review_error("two pod names", bad, ["pod-name"])
bad = request(new=obj(stamp_ann="x" * 1025))
review_error("stamp annotation over 1024 bytes", bad, ["at most 1024"])
bad = request()
bad["object"]["metadata"]["annotations"]["leasefence.io/stamp"] = 7
review_error("stamp annotation not a string", bad, ["must be a string"])
bad = request()
bad["operation"] = "PATCH"
review_error("unknown operation", bad, ["operation"])
bad = request()
del bad["uid"]
review_error("missing uid", bad, ["uid"])
bad = request()
bad["userInfo"]["groups"] = ["g"] * 257
review_error("too many groups", bad, ["groups"])
bad = request()
bad["dryRun"] = "yes"
review_error("dryRun not a boolean", bad, ["dryRun"])
bad = request(fm="m" * 129)
review_error("fieldManager over 128", bad, ["fieldManager"])


# --- stamps.json: the text format, shared with every helper -------------------------
def parse_ok(name, text, term, uid, holder):
    return {"name": name, "text": text, "ok": True, "term": term, "lease_uid": uid, "holder": holder}


def parse_bad(name, text):
    return {"name": name, "text": text, "ok": False}


H256 = "h" * 256
STAMPS = {
    "parse": [
        parse_ok("full", stamp(), 3, UID, A),
        parse_ok("term zero", f"lf1:0:{UID}:x", 0, UID, "x"),
        parse_ok("largest term", f"lf1:2147483647:{UID}:x", 2147483647, UID, "x"),
        parse_ok("holder with colons", f"lf1:1:{UID}:a:b:c", 1, UID, "a:b:c"),
        parse_ok("holder of 256 bytes", f"lf1:1:{UID}:{H256}", 1, UID, H256),
        parse_ok("unicode holder", f"lf1:1:{UID}:pod-é_ü", 1, UID, "pod-é_ü"),
        parse_ok("short form", f"lf1:7:{UID}", 7, UID, ""),
        parse_ok("uid of 64", "lf1:1:" + "a" * 64 + ":x", 1, "a" * 64, "x"),
        parse_ok("uppercase uid", "lf1:1:ABC-def:x", 1, "ABC-def", "x"),
        parse_bad("empty", ""),
        parse_bad("no prefix", f"3:{UID}:x"),
        parse_bad("other version", f"lf2:3:{UID}:x"),
        parse_bad("uppercase prefix", f"LF1:3:{UID}:x"),
        parse_bad("term too large", f"lf1:2147483648:{UID}:x"),
        parse_bad("leading zero", f"lf1:03:{UID}:x"),
        parse_bad("negative term", f"lf1:-1:{UID}:x"),
        parse_bad("plus sign", f"lf1:+1:{UID}:x"),
        parse_bad("no term", f"lf1::{UID}:x"),
        parse_bad("no uid", "lf1:3::x"),
        parse_bad("only prefix", "lf1:"),
        parse_bad("term only", "lf1:3"),
        parse_bad("uid of 65", "lf1:1:" + "a" * 65 + ":x"),
        parse_bad("uid with underscore", "lf1:1:a_b:x"),
        parse_bad("empty holder after colon", f"lf1:1:{UID}:"),
        parse_bad("holder of 257 bytes", f"lf1:1:{UID}:{'h' * 257}"),
        parse_bad("control character in holder", f"lf1:1:{UID}:a\tb"),
        parse_bad("DEL in holder", f"lf1:1:{UID}:a\x7fb"),
        parse_bad("newline in holder", f"lf1:1:{UID}:a\nb"),
        parse_bad("space before term", f"lf1: 3:{UID}:x"),
    ],
    "format": [
        {"name": "full", "term": 3, "lease_uid": UID, "holder": A, "ok": True, "stamp": stamp(),
         "field_manager": stamp()},
        {"name": "long holder falls back to the short form in fieldManager", "term": 3, "lease_uid": UID,
         "holder": "p" * 90, "ok": True, "stamp": stamp(holder="p" * 90), "field_manager": stamp(holder=None)},
        {"name": "holder that just fits in fieldManager", "term": 3, "lease_uid": UID,
         "holder": "p" * (128 - len(stamp(holder=None)) - 1), "ok": True,
         "stamp": stamp(holder="p" * (128 - len(stamp(holder=None)) - 1)),
         "field_manager": stamp(holder="p" * (128 - len(stamp(holder=None)) - 1))},
        {"name": "holder one byte too long for fieldManager", "term": 3, "lease_uid": UID,
         "holder": "p" * (128 - len(stamp(holder=None))), "ok": True,
         "stamp": stamp(holder="p" * (128 - len(stamp(holder=None)))), "field_manager": stamp(holder=None)},
        {"name": "negative term", "term": -1, "lease_uid": UID, "holder": A, "ok": False},
        {"name": "empty holder", "term": 1, "lease_uid": UID, "holder": "", "ok": False},
        {"name": "empty uid", "term": 1, "lease_uid": "", "holder": A, "ok": False},
        {"name": "uid with a colon", "term": 1, "lease_uid": "a:b", "holder": A, "ok": False},
        {"name": "holder with a newline", "term": 1, "lease_uid": UID, "holder": "a\nb", "ok": False},
    ],
    "lease_ref": [
        {"name": "same namespace", "text": "ctrl", "object_ns": "default", "ok": True, "ns": "default",
         "name_out": "ctrl"},
        {"name": "other namespace", "text": "ops/ctrl", "object_ns": "default", "ok": True, "ns": "ops",
         "name_out": "ctrl"},
        {"name": "dotted name", "text": "ops/my.ctrl-1", "object_ns": "", "ok": True, "ns": "ops",
         "name_out": "my.ctrl-1"},
        {"name": "cluster-scoped with namespace", "text": "ops/ctrl", "object_ns": "", "ok": True,
         "ns": "ops", "name_out": "ctrl"},
        {"name": "longest namespace and name", "text": "n" * 63 + "/" + ("a" * 63 + ".") * 3 + "a" * 61,
         "object_ns": "", "ok": True, "ns": "n" * 63, "name_out": ("a" * 63 + ".") * 3 + "a" * 61},
        {"name": "cluster-scoped bare name", "text": "ctrl", "object_ns": "", "ok": False},
        {"name": "empty", "text": "", "object_ns": "default", "ok": False},
        {"name": "two slashes", "text": "a/b/c", "object_ns": "default", "ok": False},
        {"name": "leading slash", "text": "/ctrl", "object_ns": "default", "ok": False},
        {"name": "trailing slash", "text": "ops/", "object_ns": "default", "ok": False},
        {"name": "uppercase", "text": "Ctrl", "object_ns": "default", "ok": False},
        {"name": "space", "text": "my ctrl", "object_ns": "default", "ok": False},
        {"name": "namespace with a dot", "text": "a.b/ctrl", "object_ns": "default", "ok": False},
        {"name": "namespace of 64", "text": "n" * 64 + "/ctrl", "object_ns": "default", "ok": False},
        {"name": "name of 254", "text": ("a" * 63 + ".") * 3 + "a" * 62, "object_ns": "default",
         "ok": False},
        {"name": "name ending in a dash", "text": "ctrl-", "object_ns": "default", "ok": False},
        {"name": "over 1024 bytes", "text": "a" * 1025, "object_ns": "default", "ok": False},
    ],
    "merge_patch": [
        {"name": "empty patch", "stamp": {"term": 3, "lease_uid": UID, "holder": A}, "in": None,
         "out": {"metadata": {"annotations": {"leasefence.io/stamp": stamp()}}}},
        {"name": "patch with other annotations",
         "stamp": {"term": 3, "lease_uid": UID, "holder": A},
         "in": {"metadata": {"annotations": {"x": "y"}}, "data": {"k": "v"}},
         "out": {"metadata": {"annotations": {"x": "y", "leasefence.io/stamp": stamp()}},
                 "data": {"k": "v"}}},
        {"name": "patch replacing an old stamp",
         "stamp": {"term": 4, "lease_uid": UID, "holder": B},
         "in": {"metadata": {"annotations": {"leasefence.io/stamp": stamp()}}},
         "out": {"metadata": {"annotations": {"leasefence.io/stamp": stamp(term=4, holder=B)}}}},
    ],
    "json_patch": [
        {"name": "object with annotations", "stamp": {"term": 3, "lease_uid": UID, "holder": A},
         "in": [{"op": "replace", "path": "/data/k", "value": "v2"}], "has_annotations": True,
         "out": [{"op": "replace", "path": "/data/k", "value": "v2"},
                 {"op": "add", "path": "/metadata/annotations/leasefence.io~1stamp", "value": stamp()}]},
        {"name": "object without annotations", "stamp": {"term": 3, "lease_uid": UID, "holder": A},
         "in": None, "has_annotations": False,
         "out": [{"op": "add", "path": "/metadata/annotations",
                  "value": {"leasefence.io/stamp": stamp()}}]},
    ],
}


def merge_extra():
    """Adds tests/vectors/stamps_extra.json (edge cases kept as JSON) to STAMPS."""
    with open(os.path.join(HERE, "stamps_extra.json"), encoding="utf-8") as f:
        extra = json.load(f)
    for section, cases in extra.items():
        if section == "comment":
            continue
        names = {c["name"] for c in STAMPS[section]}
        for c in cases:
            if c["name"] in names:
                raise SystemExit(f"duplicate {section} case: {c['name']}")
            STAMPS[section].append(c)


def write(name, data):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_corpora():
    """Seed corpora for the fuzz targets (tests/fuzz/corpus/<target>/), made
    from the vectors so every rule's inputs are where the fuzzers start."""
    root = os.path.join(HERE, "..", "fuzz", "corpus")
    seeds = {"stamp": [], "lease": [], "review": []}
    for c in STAMPS["parse"]:
        seeds["stamp"].append(c["text"].encode())
    for c in STAMPS["lease_ref"]:
        seeds["stamp"].append(c["text"].encode())
    seen = set()
    for c in CASES:
        if c.get("lease") is not None:
            text = json.dumps(c["lease"], sort_keys=True)
            if text not in seen:
                seen.add(text)
                seeds["lease"].append(text.encode())
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": c["request"]}
        seeds["review"].append(json.dumps(review).encode())
    seeds["lease"] += [b"", b"{}", b"[]", b'{"metadata":{"name":"c","namespace":"d","uid":"u"},"spec":null}']
    seeds["review"] += [b"", b"{}", b"null", b'{"apiVersion":"admission.k8s.io/v1beta1"}']
    for target, items in seeds.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if name.startswith("seed-"):
                os.remove(os.path.join(d, name))
        for i, data in enumerate(items):
            with open(os.path.join(d, f"seed-{i:03d}"), "wb") as f:
                f.write(data)
    return {k: len(v) for k, v in seeds.items()}


if __name__ == "__main__":
    merge_extra()
    write("decisions.json", {"comment": "Generated by generate.py; see docs/protocol.md. Times are UTC.",
                             "cases": CASES})
    write("stamps.json", STAMPS)
    print("seed corpora:", write_corpora())
    print(f"{len(CASES)} decision cases, {sum(len(v) for v in STAMPS.values())} stamp cases")
