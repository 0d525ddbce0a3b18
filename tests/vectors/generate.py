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


def holder_hash(holder):
    """The holder hash of docs/protocol.md section 3: 64-bit FNV-1a of the
    holder's bytes, 16 lowercase hex digits. A reference implementation for
    the vectors, checked against the published FNV-1a test values below."""
    h = 0xcbf29ce484222325
    for c in holder.encode():
        h ^= c
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


assert holder_hash("") == "cbf29ce484222325"
assert holder_hash("a") == "af63dc4c8601ec8c"
assert holder_hash("foobar") == "85944171f73967e8"


def short(term=3, uid=UID, holder=A):
    """The fieldManager short form: the holder replaced by its hash."""
    return f"lf1:{term}:{uid}:#{holder_hash(holder)}"


def obj(lease_ann="ctrl", stamp_ann=None, ns="default", name="cm", deleting=False, kind="ConfigMap"):
    ann = {}
    if lease_ann is not None:
        ann["leasefence.io/lease"] = lease_ann
    if stamp_ann is not None:
        ann["leasefence.io/stamp"] = stamp_ann
    meta = {"name": name, "annotations": ann}
    if ns:
        meta["namespace"] = ns
    if deleting:
        meta["deletionTimestamp"] = "2025-12-31T23:59:00Z"
        meta["finalizers"] = ["example.io/cleanup"]
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": {"k": "v"}}


# The guarded controller's service account: in the Lease's namespace.
CTRL_SA = "system:serviceaccount:default:ctrl"
AUTO = object()  # fieldManager: the helper's per-request stamp, copied from the object's stamp


def request(op="UPDATE", new=None, old=None, pod="ctrl-a", user=CTRL_SA,
            groups=None, sub=None, fm=AUTO, dry=False, ns="default", name="cm",
            resource="configmaps", kind="ConfigMap", group="", node=None):
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
    if pod is not None or node is not None:
        r["userInfo"]["extra"] = {}
    if pod is not None:
        r["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] = [pod]
        r["userInfo"]["extra"]["authentication.kubernetes.io/pod-uid"] = ["0000"]
    if node is not None:
        r["userInfo"]["extra"]["authentication.kubernetes.io/node-name"] = [node]
    if op in ("CREATE", "UPDATE"):
        r["object"] = new if new is not None else obj(stamp_ann=stamp())
        r["options"] = {"apiVersion": "meta.k8s.io/v1",
                        "kind": "CreateOptions" if op == "CREATE" else "UpdateOptions"}
        if fm is AUTO:
            # What the helpers send: the stamp they put on the object, per request.
            fm = r["object"]["metadata"].get("annotations", {}).get("leasefence.io/stamp")
            if fm is not None and (not fm.startswith("lf1:") or len(fm) > 128):
                fm = None
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
         lease_ref=None, contains=None, retry_live=None, live=None, disclose=None, excludes=None,
         writer=None, disclosed=None):
    """One decision vector. `live`: whether the Lease read started after the
    request arrived (default true); `disclose`: the webhook's finding on
    whether the requester may read the Lease ("allow", "deny"; default: the
    namespace rule)."""
    c = {"name": name,
         "request": req if req is not None else request(),
         "lease": lease() if lease_obj == "default" else lease_obj,
         "lease_status": status,
         "now": at(now),
         "expect": {"allowed": expect_allowed, "reason": reason}}
    if status == "unavailable":
        c["lease_cause"] = "connection refused"
    if live is not None:
        c["lease_live"] = live
    if disclose is not None:
        c["lease_disclose"] = disclose
    if policy:
        c["policy"] = policy
    if lease_ref:
        c["expect"]["lease"] = lease_ref
    if contains:
        c["expect"]["message_contains"] = contains
    if excludes:
        c["expect"]["message_excludes"] = excludes
    if retry_live is not None:
        c["expect"]["retry_live"] = retry_live
    if writer is not None:
        c["expect"]["writer"] = writer
    if disclosed is not None:
        c["expect"]["lease_disclosed"] = disclosed
    CASES.append(c)


def review_error(name, req, contains):
    CASES.append({"name": name, "request": req, "lease": lease(), "lease_status": "ok", "now": at(5),
                  "expect": {"review_error": True, "message_contains": contains}})


# --- G1: current holder and term ------------------------------------------
case("current holder and term, update", True, "Current", lease_ref="default/ctrl",
     contains=["ctrl-a_", "term 3"], retry_live=False, writer="controller", disclosed=True)
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
     req=request(new=obj(stamp_ann=stamp(holder=B)), pod=None), retry_live=True)
case("Lease deleted and re-created", False, "LeaseRecreated",
     lease_obj=lease(uid=UID2, term=0), contains=[UID, UID2, "re-created"], retry_live=True)
case("stamp of another Lease", False, "OtherLease",
     req=request(new=obj(stamp_ann=stamp(uid=UID2, holder=B)), old=obj(stamp_ann=stamp()), pod=None),
     contains=[UID2, "another Lease", "Lease default/ctrl"], retry_live=True)
case("stamp of another Lease over an object never stamped", False, "OtherLease",
     req=request(new=obj(stamp_ann=stamp(uid=UID2, holder=B)), old=obj(stamp_ann=None), pod=None))
case("released Lease", False, "LeaseReleased",
     lease_obj=lease(holder="", duration=1), contains=["no holder", "acquire"], excludes=["wait"],
     retry_live=True)
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
case("stamp carried forward into the per-request stamp by the old leader's pod", False, "IdentityMismatch",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 pod="ctrl-a"),
     lease_obj=lease(holder=B, term=4))
case("same pod name in another namespace, stamp copied per request", False, "IdentityMismatch",
     req=request(user="system:serviceaccount:team-a:reconciler", pod="reconciler-0",
                 new=obj(lease_ann="team-b/ctrl", stamp_ann=stamp(holder="reconciler-0_0f")),
                 old=obj(lease_ann="team-b/ctrl", stamp_ann=stamp(holder="reconciler-0_0f"))),
     lease_obj=lease(holder="reconciler-0_0f", ns="team-b"), contains=["team-a", "team-b"])
case("pod of the holder's name in the Lease's namespace", True, "Current",
     req=request(user="system:serviceaccount:team-b:reconciler", pod="reconciler-0",
                 new=obj(lease_ann="team-b/ctrl", stamp_ann=stamp(holder="reconciler-0_0f")),
                 old=obj(lease_ann="team-b/ctrl", stamp_ann=stamp(holder="reconciler-0_0f"))),
     lease_obj=lease(holder="reconciler-0_0f", ns="team-b"))
case("pod identity without a service account's namespace", False, "IdentityMismatch",
     req=request(user="alice", pod="ctrl-a"))
case("hostNetwork holder <node>_<uuid>, request from a pod on that node", True, "Current",
     req=request(pod="ctrl-7d9f-x2k4p", node="node-1",
                 new=obj(stamp_ann=stamp(holder="node-1_5b0b")), old=obj(stamp_ann=stamp(holder="node-1_5b0b"))),
     lease_obj=lease(holder="node-1_5b0b"))
case("hostNetwork holder, request from a pod on another node", False, "IdentityMismatch",
     req=request(pod="ctrl-7d9f-abcde", node="node-2",
                 new=obj(stamp_ann=stamp(holder="node-1_5b0b")), old=obj(stamp_ann=stamp(holder="node-1_5b0b"))),
     lease_obj=lease(holder="node-1_5b0b"), contains=["node-2"])
case("hostNetwork holder, pod on that node but of another namespace", False, "IdentityMismatch",
     req=request(pod="ctrl-7d9f-x2k4p", node="node-1", user="system:serviceaccount:other:ctrl",
                 new=obj(stamp_ann=stamp(holder="node-1_5b0b")), old=obj(stamp_ann=stamp(holder="node-1_5b0b"))),
     lease_obj=lease(holder="node-1_5b0b"))

# --- G2: per-object order of tenures ------------------------------------------
case("object already written in a newer term", False, "OlderThanObject",
     req=request(new=obj(stamp_ann=stamp(term=3)), old=obj(stamp_ann=stamp(term=5))), retry_live=False,
     contains=["term 5", "term 3"])
case("object's stored stamp is of another Lease uid", True, "Current",
     req=request(new=obj(stamp_ann=stamp(term=3)), old=obj(stamp_ann=stamp(term=9, uid=UID2))))
case("object's stored stamp is malformed", True, "Current",
     req=request(old=obj(stamp_ann="garbage")))
case("coordinated election: new holder writes over the previous holder's tenure, live read", True, "Current",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=A)),
                 pod="ctrl-b"),
     lease_obj=lease(holder=B, term=4))
case("coordinated election: same term, another holder stored, cached read", False, "OlderThanObject",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=A)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 pod=None),
     lease_obj=lease(holder=A, term=4), live=False, retry_live=True, contains=["ctrl-b_", "live"])
case("coordinated election: stale holder's status write with the short form", False, "NotHolder",
     req=request(sub="status", fm=short(term=4, holder=A), new=obj(stamp_ann=stamp(term=4, holder=B)),
                 old=obj(stamp_ann=stamp(term=4, holder=B)), pod=None, resource="widgets", kind="Widget",
                 group="test.leasefence.io"),
     lease_obj=lease(holder=B, term=4), retry_live=True, contains=["#" + holder_hash(A)])
case("coordinated election: the new holder's write on a cached copy naming the previous holder", False,
     "NotHolder",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=A)),
                 pod="ctrl-b"),
     lease_obj=lease(holder=A, term=4), live=False, retry_live=True)

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
OPS_SA = "system:serviceaccount:ops:ctrl"
case("cross-namespace Lease", True, "Current",
     req=request(user=OPS_SA, new=obj(lease_ann="ops/ctrl", stamp_ann=stamp()),
                 old=obj(lease_ann="ops/ctrl", stamp_ann=stamp())),
     lease_obj=lease(ns="ops"), lease_ref="ops/ctrl")
case("cluster-scoped object, namespaced Lease", True, "Current",
     req=request(user=OPS_SA, new=obj(lease_ann="ops/ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 old=obj(lease_ann="ops/ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 ns=None, name="w", resource="widgets", kind="Widget", group="test.leasefence.io"),
     lease_obj=lease(ns="ops"), lease_ref="ops/ctrl")
case("cluster-scoped object with a bare Lease name", False, "MalformedProtection",
     req=request(new=obj(lease_ann="ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 old=obj(lease_ann="ctrl", stamp_ann=stamp(), ns=None, name="w"),
                 ns=None, name="w", resource="widgets", kind="Widget", group="test.leasefence.io"),
     contains=["cluster-scoped"])

# --- disclosure of a Lease in another namespace -----------------------------------
TENANT = "system:serviceaccount:tenant:app"
case("tenant names kube-system's Lease with a made-up stamp: nothing of the Lease shown", False, "OtherLease",
     req=request(user=TENANT, pod=None, ns="tenant", op="CREATE",
                 new=obj(ns="tenant", lease_ann="kube-system/kube-controller-manager",
                         stamp_ann=stamp(term=0, uid="x", holder="me"))),
     lease_obj=lease(ns="kube-system", name="kube-controller-manager"),
     contains=["kube-system/kube-controller-manager", "not shown"], excludes=[UID, A, "term 3"],
     disclosed=False)
case("stale term against a Lease in another namespace: its state not shown", False, "StaleTerm",
     req=request(user=OPS_SA, pod=None, new=obj(lease_ann="ops/ctrl", stamp_ann=stamp(term=2, holder=B)),
                 old=obj(lease_ann="ops/ctrl", stamp_ann=stamp(term=2))),
     lease_obj=lease(ns="ops"), contains=["term 2", "not shown"], excludes=[A, "term 3"], disclosed=False)
case("stale term against a Lease in another namespace the requester may read", False, "StaleTerm",
     req=request(user=OPS_SA, pod=None, new=obj(lease_ann="ops/ctrl", stamp_ann=stamp(term=2)),
                 old=obj(lease_ann="ops/ctrl", stamp_ann=stamp(term=2))),
     lease_obj=lease(ns="ops"), disclose="allow", contains=[A, "term 3"], disclosed=True)
case("stale term in the object's namespace, reading refused by the webhook's check", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=2, holder=B)), old=obj(stamp_ann=stamp(term=2)), pod=None),
     disclose="deny", excludes=[A, "term 3"], disclosed=False)

# --- bad stamps and annotations ---------------------------------------------------
case("missing stamp", False, "MissingStamp", req=request(new=obj(stamp_ann=None)),
     contains=["fieldManager", "lf1:"], writer="controller")
case("annotation only, no per-request stamp (helpers before the per-request rule)", False, "MissingStamp",
     req=request(fm=None), contains=["fieldManager"])
case("per-request stamp only, no annotation on the object", False, "MissingStamp",
     req=request(new=obj(stamp_ann=None), fm=stamp()), contains=["leasefence.io/stamp"])
case("malformed per-request stamp", False, "MalformedStamp", req=request(fm="lf1:x"))
case("malformed stamp annotation", False, "MalformedStamp", req=request(new=obj(stamp_ann="lf1:x"), fm=stamp()))
case("unknown stamp version in the annotation", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="lf2:3:" + UID + ":" + A), fm=stamp()))
case("stamp with leading zero in term", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="lf1:03:" + UID + ":" + A), fm=stamp()))
case("oversized stamp", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp(holder="h" * 300)), fm=stamp()), contains=["at most"])
case("stamp annotation over 1024 bytes", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="x" * 1025), fm=stamp()), contains=["at most"])
case("holder-less stamp on an object", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp(holder=None)), fm=stamp()), contains=["no holder"])
case("holder hash on an object", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=short()), fm=short()), contains=["hash"])
case("holder-less short form in fieldManager", False, "MalformedStamp",
     req=request(fm=stamp(holder=None)), contains=["no holder"])
case("annotation and per-request stamp disagree", False, "ConflictingStamps",
     req=request(new=obj(stamp_ann=stamp(term=2)), fm=stamp()), contains=["term 2"])
case("annotation and per-request short form agree", True, "Current", req=request(fm=short()))
case("annotation and per-request short form name other holders", False, "ConflictingStamps",
     req=request(new=obj(stamp_ann=stamp(holder=B)), fm=short(), pod=None))
case("malformed protection annotation", False, "MalformedProtection",
     req=request(new=obj(lease_ann="a/b/c", stamp_ann=stamp())))
case("protection annotation with an uppercase name", False, "MalformedProtection",
     req=request(new=obj(lease_ann="Ctrl", stamp_ann=stamp()), old=obj(lease_ann=None)))
case("stored malformed protection corrected by the controller", True, "Current",
     req=request(old=obj(lease_ann="bad name", stamp_ann=stamp())))
case("stored malformed protection kept by the write", False, "MalformedProtection",
     req=request(new=obj(lease_ann="bad name", stamp_ann=stamp()), old=obj(lease_ann="bad name", stamp_ann=stamp())))
case("protection annotation over 1024 bytes", False, "MalformedProtection",
     req=request(new=obj(lease_ann="a" * 1025, stamp_ann=stamp()), old=obj(lease_ann=None)))
case("empty protection annotation", False, "MalformedProtection",
     req=request(new=obj(lease_ann="", stamp_ann=stamp()), old=obj(lease_ann=None)))

# --- dry run ------------------------------------------------------------------
case("dry-run write with a current stamp", True, "Current", req=request(dry=True))
case("dry-run write with a stale stamp is judged like a real one", False, "StaleTerm",
     req=request(dry=True, new=obj(stamp_ann=stamp(term=2))), contains=["dry-run"])


# --- subresources ---------------------------------------------------------------
def status_req(fm, old_stamp=None, pod="ctrl-a", new=None, user=CTRL_SA, kind="Widget"):
    o = obj(stamp_ann=old_stamp if old_stamp is not None else stamp(), kind=kind)
    return request(sub="status", fm=fm, new=new if new is not None else copy.deepcopy(o), old=o, pod=pod,
                   resource="widgets", kind=kind, group="test.leasefence.io", user=user)


case("status write stamped in fieldManager", True, "Current", req=status_req(stamp()))
case("status write stamped with the short form", True, "Current", req=status_req(short()))
case("status write without a fieldManager stamp", False, "MissingStamp",
     req=status_req("kubectl-edit"), contains=["fieldManager"])
case("status write with a stale fieldManager stamp", False, "StaleTerm", req=status_req(stamp(term=2)))
case("status write older than the object's stored term", False, "OlderThanObject",
     req=status_req(stamp(term=3), old_stamp=stamp(term=5)))
case("status write that would remove the protection (annotations persist)", False, "ProtectionChange",
     req=status_req(stamp(), new=obj(lease_ann=None, stamp_ann=stamp(), kind="Widget")),
     lease_obj=None, status="unavailable", contains=["/status"])
case("status write that would store a forged term", False, "StampChange",
     req=status_req(stamp(), new=obj(stamp_ann=stamp(term=2147483647), kind="Widget")),
     lease_obj=None, status="unavailable", contains=["2147483647"])
case("status write that stores its own per-request stamp", True, "Current",
     req=status_req(stamp(), old_stamp=stamp(term=2), new=obj(stamp_ann=stamp(), kind="Widget")))
case("status write that removes the stamp", False, "StampChange",
     req=status_req(stamp(), new=obj(stamp_ann=None, kind="Widget")))

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
     contains=["does not exist", "election"], excludes=["wait"], retry_live=True)
case("Lease unavailable, fail closed", False, "LeaseUnavailable", lease_obj=None, status="unavailable",
     contains=["connection refused"])
case("Lease unavailable, fail open", True, "AdmittedUnavailable", lease_obj=None, status="unavailable",
     policy={"admit_when_unavailable": True}, contains=["WITHOUT fencing", "connection refused"])
case("fail open never waives G2: older term than the object's, Lease unavailable", False, "OlderThanObject",
     req=request(new=obj(stamp_ann=stamp(term=5)), old=obj(stamp_ann=stamp(term=6))),
     lease_obj=None, status="unavailable", policy={"admit_when_unavailable": True})
case("fail open never waives the per-request stamp", False, "MissingStamp",
     req=request(fm=None), lease_obj=None, status="unavailable", policy={"admit_when_unavailable": True})
case("fail open never waives the annotation's agreement", False, "ConflictingStamps",
     req=request(new=obj(stamp_ann=stamp(term=2)), fm=stamp()), lease_obj=None, status="unavailable",
     policy={"admit_when_unavailable": True})

# --- exemptions: Kubernetes' own controllers and the break glass -------------------
def ksa(name):
    return "system:serviceaccount:kube-system:" + name


KSYS_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
case("garbage collector deletes a protected object", True, "Exempt",
     req=request(op="DELETE", old=obj(stamp_ann=None), pod=None, user=ksa("generic-garbage-collector")),
     lease_obj=None, status="unavailable", writer="exempt")
for ctrl, res, kind, grp in [("deployment-controller", "deployments", "Deployment", "apps"),
                             ("statefulset-controller", "statefulsets", "StatefulSet", "apps"),
                             ("replicaset-controller", "replicasets", "ReplicaSet", "apps"),
                             ("daemon-set-controller", "daemonsets", "DaemonSet", "apps"),
                             ("job-controller", "jobs", "Job", "batch"),
                             ("cronjob-controller", "cronjobs", "CronJob", "batch")]:
    case(f"{ctrl} writes {res}/status without a stamp", True, "Exempt",
         req=request(sub="status", fm=None, pod=None, user=ksa(ctrl), groups=KSYS_GROUPS, resource=res,
                     kind=kind, group=grp, new=obj(stamp_ann=stamp(), kind=kind),
                     old=obj(stamp_ann=stamp(), kind=kind)),
         lease_obj=None, status="unavailable")
case("horizontal-pod-autoscaler writes /scale", True, "Exempt",
     req=request(sub="scale", fm=None, pod=None, user=ksa("horizontal-pod-autoscaler"), resource="deployments",
                 kind="Scale", group="apps", new=obj(lease_ann=None, kind="Scale"), old=obj(stamp_ann=stamp())),
     lease_obj=None, status="unavailable")
case("kube-controller-manager without per-controller credentials", True, "Exempt",
     req=request(sub="status", fm=None, pod=None, user="system:kube-controller-manager", groups=[]),
     lease_obj=None, status="unavailable")
case("kube-scheduler", True, "Exempt",
     req=request(fm=None, pod=None, user="system:kube-scheduler", groups=[]), lease_obj=None,
     status="unavailable")
case("deployment controller scales down an old ReplicaSet carrying a copied stamp of an older term", True,
     "Exempt",
     req=request(pod=None, fm=None, user=ksa("deployment-controller"), resource="replicasets", kind="ReplicaSet",
                 group="apps", new=obj(stamp_ann=stamp(term=3), kind="ReplicaSet"),
                 old=obj(stamp_ann=stamp(term=3), kind="ReplicaSet")),
     lease_obj=lease(holder=B, term=4))
case("namespace controller deletes an object whose stored protection is malformed", True, "Exempt",
     req=request(op="DELETE", pod=None, user=ksa("namespace-controller"), old=obj(lease_ann="My-Controller")))
# A NUL is legal in any annotation value (Go's encoder sends "\u0000"); in
# fencing's own it is malformed where fencing reads it, never before the
# writer's class is known, so Kubernetes' controllers are never refused for it.
case("namespace controller deletes an object whose stored stamp holds a NUL", True, "Exempt",
     req=request(op="DELETE", pod=None, user=ksa("namespace-controller"), old=obj(stamp_ann=stamp() + "\x00x")))
case("namespace controller deletes an object whose stored protection holds a NUL", True, "Exempt",
     req=request(op="DELETE", pod=None, user=ksa("namespace-controller"), old=obj(lease_ann="ctrl\x00x")))
case("controller's stamp annotation holds a NUL", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp() + "\x00x"), fm=stamp()), contains=["NUL"])
case("protection annotation holds a NUL", False, "MalformedProtection",
     req=request(new=obj(lease_ann="ctrl\x00x", stamp_ann=stamp()), old=obj(lease_ann=None)),
     contains=["NUL"])
case("garbage collector deletes an object whose stored stamp is over the size bound", True, "Exempt",
     req=request(op="DELETE", pod=None, user=ksa("generic-garbage-collector"), old=obj(stamp_ann="x" * 5000)))
case("exempt group fixes a malformed protection", True, "Exempt",
     req=request(pod=None, fm=None, user="alice", groups=["breakglass"], new=obj(lease_ann="my-controller"),
                 old=obj(lease_ann="My-Controller")),
     policy={"exempt_groups": ["breakglass"]})
case("exempt group from the policy", True, "Exempt",
     req=request(new=obj(stamp_ann=None), pod=None, user="alice", groups=["breakglass"]),
     policy={"exempt_groups": ["breakglass"]})
case("exempt users replaced by the policy: the garbage collector is then an other writer", True,
     "OtherWriter",
     req=request(op="DELETE", old=obj(stamp_ann=None), pod=None, user=ksa("generic-garbage-collector")),
     policy={"exempt_users": []}, writer="other")
case("CONNECT is never fenced", True, "NotProtected",
     req=dict(request(op="DELETE"), operation="CONNECT"))

# --- others: people and tools ---------------------------------------------------------
ALICE = dict(pod=None, user="alice", groups=["system:authenticated"], fm=None)
ARGO = dict(pod="argocd-application-controller-0", user="system:serviceaccount:argocd:argocd-application-controller",
            fm="argocd-controller")
FLUX = dict(pod="kustomize-controller-5d8f-x", user="system:serviceaccount:flux-system:kustomize-controller",
            fm="kustomize-controller")
HELM = dict(pod="ci-runner-7f9c-q", user="system:serviceaccount:ci:runner", fm="helm")
case("person edits with kubectl, carrying the current stamp forward", True, "OtherWriter",
     req=request(**ALICE), writer="other")
case("person edits with kubectl after the term moved on", True, "OtherWriter",
     req=request(**ALICE), lease_obj=lease(holder=B, term=4))
case("person's edit needs no Lease: admitted while it cannot be read", True, "OtherWriter",
     req=request(**ALICE), lease_obj=None, status="unavailable")
case("person replaces the object without the stamp", True, "OtherWriter",
     req=request(new=obj(stamp_ann=None), **ALICE))
case("Argo CD sync from its pod, carrying the stamp forward", True, "OtherWriter", req=request(**ARGO))
case("Argo CD self-heal after a leader change", True, "OtherWriter", req=request(**ARGO),
     lease_obj=lease(holder=B, term=4))
case("Flux dry run", True, "OtherWriter", req=request(dry=True, **FLUX))
case("Flux force-recreate: the delete", True, "OtherWriter",
     req=request(op="DELETE", pod=FLUX["pod"], user=FLUX["user"]))
case("Flux force-recreate: the create with the current stamp", True, "OtherWriter",
     req=request(op="CREATE", **FLUX))
case("Helm upgrade from a CI runner pod", True, "OtherWriter", req=request(**HELM))
case("reloader restarts a protected Deployment", True, "OtherWriter",
     req=request(pod="reloader-6c9-x", user="system:serviceaccount:reloader:reloader", fm="reloader",
                 resource="deployments", kind="Deployment", group="apps",
                 new=obj(stamp_ann=stamp(), kind="Deployment"), old=obj(stamp_ann=stamp(), kind="Deployment")))
case("KEDA's operator writes /scale", True, "OtherWriter",
     req=request(sub="scale", pod="keda-operator-1", user="system:serviceaccount:keda:keda-operator", fm="keda",
                 resource="deployments", kind="Scale", group="apps", new=obj(lease_ann=None, kind="Scale"),
                 old=obj(stamp_ann=stamp())),
     lease_obj=None, status="unavailable")
case("person scales a ReplicaSet protected by copied annotations", True, "OtherWriter",
     req=request(sub="scale", resource="replicasets", kind="Scale", group="apps",
                 new=obj(lease_ann=None, kind="Scale"), old=obj(stamp_ann=stamp(term=2)), **ALICE))
case("kubectl rollout undo copies an older tenure's stamp back", True, "OtherWriter",
     req=request(resource="deployments", kind="Deployment", group="apps",
                 new=obj(stamp_ann=stamp(term=3, holder=A), kind="Deployment"),
                 old=obj(stamp_ann=stamp(term=4, holder=B), kind="Deployment"), **ALICE),
     lease_obj=lease(holder=B, term=4))
case("person stores a stamp ahead of the Lease", False, "StampChange",
     req=request(new=obj(stamp_ann=stamp(term=2147483647)), **ALICE), contains=["ahead"], retry_live=True)
case("person stores a malformed stamp", False, "MalformedStamp",
     req=request(new=obj(stamp_ann="lf1:nope"), **ALICE), lease_obj=None, status="unavailable")
case("person changes the protection and the stamp in one write", False, "StampChange",
     req=request(new=obj(lease_ann="other", stamp_ann=stamp(term=9)), **ALICE), lease_obj=None,
     status="unavailable")
case("person's status write that would remove the protection", False, "ProtectionChange",
     req=status_req(None, new=obj(lease_ann=None, stamp_ann=stamp(), kind="Widget"), pod=None, user="alice"),
     lease_obj=None, status="unavailable")
case("person's status write that would change the stamp", False, "StampChange",
     req=status_req(None, new=obj(stamp_ann=stamp(term=2), kind="Widget"), pod=None, user="alice"),
     lease_obj=None, status="unavailable")
case("person corrects a malformed stored protection", True, "OtherWriter",
     req=request(new=obj(lease_ann="my-controller"), old=obj(lease_ann="My-Controller"), **ALICE))
case("person's write keeps a malformed protection", False, "MalformedProtection",
     req=request(new=obj(lease_ann="My-Controller"), old=obj(lease_ann="My-Controller"), **ALICE),
     contains=["annotate"])
case("person edits an object whose stored stamp holds a NUL, keeping it", True, "OtherWriter",
     req=request(new=obj(stamp_ann=stamp() + "\x00x"), old=obj(stamp_ann=stamp() + "\x00x"), **ALICE))
case("person changes a stored stamp only past its NUL", False, "MalformedStamp",
     req=request(new=obj(stamp_ann=stamp() + "\x00y"), old=obj(stamp_ann=stamp() + "\x00x"), **ALICE),
     contains=["NUL"])
case("a tool in the controller's own namespace is one of its writers", False, "MissingStamp",
     req=request(pod="helm-runner-0", user="system:serviceaccount:default:helm", fm="helm"),
     contains=["default"])

# --- restores and decommissioning ----------------------------------------------------------
VELERO = dict(pod="velero-5f-x", user="system:serviceaccount:velero:velero", fm="velero")
case("restore before the Lease exists", True, "Unguarded",
     req=request(op="CREATE", **VELERO), lease_obj=None, status="not_found")
case("restore after the Lease was re-created with a new uid", True, "OtherWriter",
     req=request(op="CREATE", **VELERO), lease_obj=lease(uid=UID2, term=0))
case("restore with the Lease held, stamp no newer than the Lease", True, "OtherWriter",
     req=request(op="CREATE", **VELERO), lease_obj=lease(holder=B, term=4))
case("restore of a stamp ahead of the live Lease", False, "StampChange",
     req=request(op="CREATE", new=obj(stamp_ann=stamp(term=9)), **VELERO))
case("restore without the Lease's namespace restored yet, Lease unreadable", False, "LeaseUnavailable",
     req=request(op="CREATE", **VELERO), lease_obj=None, status="unavailable")
case("admin removes the protection while the controller leads", False, "ProtectionChange",
     req=request(new=obj(lease_ann=None), **ALICE), contains=["Stop the controller"], excludes=["wait"], retry_live=True)
case("admin removes the protection after the Lease was released", True, "Unguarded",
     req=request(new=obj(lease_ann=None), **ALICE), lease_obj=lease(holder="", duration=1))
case("admin removes the protection after the Lease expired", True, "Unguarded",
     req=request(new=obj(lease_ann=None), **ALICE), now=20)
case("admin removes the protection after the Lease was deleted", True, "Unguarded",
     req=request(new=obj(lease_ann=None, stamp_ann=None), **ALICE), lease_obj=None, status="not_found")
case("admin moves the protection to another Lease while the controller leads", False, "ProtectionChange",
     req=request(new=obj(lease_ann="other"), **ALICE))
case("prune deletes a protected object while the controller leads", True, "OtherWriter",
     req=request(op="DELETE", pod=ARGO["pod"], user=ARGO["user"]))
case("controller removes its finalizer, the Lease gone (namespace deletion)", True, "Unguarded",
     req=request(new=obj(stamp_ann=stamp(), deleting=True), old=obj(stamp_ann=stamp(), deleting=True)),
     lease_obj=None, status="not_found")
case("controller removes its finalizer, the Lease released", True, "Unguarded",
     req=request(new=obj(stamp_ann=stamp(), deleting=True), old=obj(stamp_ann=stamp(), deleting=True)),
     lease_obj=lease(holder="", duration=1))
case("controller deletes an object being deleted, the Lease gone", True, "Unguarded",
     req=request(op="DELETE", old=obj(stamp_ann=stamp(), deleting=True)), lease_obj=None, status="not_found")
case("admin removes a finalizer, the Lease gone", True, "OtherWriter",
     req=request(new=obj(stamp_ann=stamp(), deleting=True), old=obj(stamp_ann=stamp(), deleting=True), **ALICE),
     lease_obj=None, status="not_found")
case("controller writes an object not being deleted, the Lease gone", False, "LeaseNotFound",
     req=request(new=obj(stamp_ann=stamp()), old=obj(stamp_ann=stamp())), lease_obj=None, status="not_found")

# --- strict mode ---------------------------------------------------------------------------
STRICT = {"unstamped_writes": "deny"}
case("strict mode: a person's edit without a per-request stamp", False, "MissingStamp",
     req=request(**ALICE), policy=STRICT, contains=["--unstamped-writes=deny"], writer="controller")
case("strict mode: a tool's sync from its pod", False, "MissingStamp", req=request(**ARGO), policy=STRICT)
case("strict mode: a person's delete is judged as a fenced delete", True, "Current",
     req=request(op="DELETE", pod=None, user="alice"), policy=STRICT)
case("strict mode: exempt writers stay exempt", True, "Exempt",
     req=request(sub="status", fm=None, pod=None, user=ksa("deployment-controller")), policy=STRICT)

# --- a stale ex-leader tries every exempted and other path under its own identity -------------
# The Lease moved on to ctrl-b in term 4; ctrl-a (pod ctrl-a, the controller's service account)
# resumes with term 3 in its cache.
B4 = lease(holder=B, term=4)
STALE = dict(lease_obj=B4)
case("stale: carries the stored stamp forward without a per-request stamp", False, "MissingStamp",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)), fm=None),
     **STALE)
case("stale: MergeFrom patch with its own per-request stamp over the new leader's", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 fm=stamp(term=3)), **STALE)
case("stale: the same MergeFrom patch without a pod identity", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 fm=stamp(term=3), pod=None), **STALE)
case("stale: status write without a per-request stamp", False, "MissingStamp",
     req=status_req(None, old_stamp=stamp(term=4, holder=B)), **STALE)
case("stale: status write with its own stamp", False, "StaleTerm",
     req=status_req(stamp(term=3), old_stamp=stamp(term=4, holder=B)), **STALE)
case("stale: status write that removes the protection with a copied stamp", False, "ProtectionChange",
     req=status_req(stamp(term=4, holder=B), old_stamp=stamp(term=4, holder=B),
                    new=obj(lease_ann=None, stamp_ann=stamp(term=4, holder=B), kind="Widget")), **STALE)
case("stale: /scale with a copied stamp", False, "IdentityMismatch",
     req=request(sub="scale", fm=stamp(term=4, holder=B), resource="deployments", kind="Scale", group="apps",
                 new=obj(lease_ann=None, kind="Scale"), old=obj(stamp_ann=stamp(term=4, holder=B))), **STALE)
case("stale: delete of an object the new leader stamped", False, "IdentityMismatch",
     req=request(op="DELETE", old=obj(stamp_ann=stamp(term=4, holder=B))), **STALE)
case("stale: removes the protection without a per-request stamp", False, "MissingStamp",
     req=request(new=obj(lease_ann=None, stamp_ann=stamp(term=4, holder=B)),
                 old=obj(stamp_ann=stamp(term=4, holder=B)), fm=None), **STALE)
case("stale: lowers the stored stamp as a rollback would", False, "MissingStamp",
     req=request(new=obj(stamp_ann=stamp(term=3)), old=obj(stamp_ann=stamp(term=4, holder=B)), fm=None),
     **STALE)
case("stale: re-creates a deleted object as a restore would", False, "MissingStamp",
     req=request(op="CREATE", fm=None), **STALE)
case("stale: removes its finalizer while the new leader holds the Lease", False, "StaleTerm",
     req=request(new=obj(stamp_ann=stamp(term=3), deleting=True), old=obj(stamp_ann=stamp(term=3), deleting=True)),
     **STALE)
case("stale: hostNetwork pod on another node with a copied stamp", False, "IdentityMismatch",
     req=request(pod="ctrl-x", node="node-2", new=obj(stamp_ann=stamp(term=4, holder="node-1_5b0b")),
                 old=obj(stamp_ann=stamp(term=4, holder="node-1_5b0b"))),
     lease_obj=lease(holder="node-1_5b0b", term=4))
case("stale: writes with a fieldManager of a tool's name", False, "MissingStamp",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 fm="argocd-controller"), **STALE)
case("stale: dry run of an unstamped write", False, "MissingStamp",
     req=request(dry=True, fm=None), **STALE)
case("stale: under fail-open, older than the object", False, "OlderThanObject",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 fm=stamp(term=3)),
     lease_obj=None, status="unavailable", policy={"admit_when_unavailable": True})
case("limit: a plain token copying the stored stamp into its per-request stamp is not told apart", True,
     "Current",
     req=request(new=obj(stamp_ann=stamp(term=4, holder=B)), old=obj(stamp_ann=stamp(term=4, holder=B)),
                 fm=stamp(term=4, holder=B), pod=None), **STALE)

# --- identity fencing (section 7a) ------------------------------------------------
IDN = "identity:ctrl"
UUID_HOLDER = "3f2c1a9e-5b7d-4c1e-9a2b-0c4d5e6f7a8b"
TAKEN = {"lease_obj": lease(holder=B, term=4)}
PERSON = {"user": "alice", "groups": ["system:authenticated"], "pod": None}


def iobj(stamp_ann=None, lease_ann=IDN, **kw):
    return obj(lease_ann=lease_ann, stamp_ann=stamp_ann, **kw)


def ireq(op="UPDATE", new=None, old=None, fm=None, **kw):
    return request(op=op, new=new if new is not None else iobj(), old=old if old is not None else iobj(),
                   fm=fm, **kw)


def istatus(**kw):
    return ireq(sub="status", new=iobj(kind="Widget"), old=iobj(kind="Widget"), resource="widgets",
                kind="Widget", group="test.leasefence.io", **kw)


case("identity: the holder's pod writes without a stamp", True, "Current", req=ireq(),
     contains=["fenced by identity", "holder's pod", "ctrl-a_", "term 3"], retry_live=False,
     writer="controller", lease_ref="default/ctrl", disclosed=True)
case("identity: the holder's pod creates", True, "Current", req=ireq(op="CREATE"))
case("identity: the holder's pod writes /status", True, "Current", req=istatus())
case("identity: the holder's pod deletes an object stamped in an older term", True, "Current",
     req=ireq(op="DELETE", old=iobj(stamp(term=2))))
case("identity: the holder's pod carries an older stored stamp forward", True, "Current",
     req=ireq(new=iobj(stamp(term=2)), old=iobj(stamp(term=2))))
case("identity: the holder's pod removes the stored stamp", True, "Current",
     req=ireq(new=iobj(), old=iobj(stamp())))
case("identity: holder named by the pod alone", True, "Current", lease_obj=lease(holder="ctrl-a"), req=ireq())
case("identity by default (--default-fencing=identity)", True, "Current",
     req=request(new=obj(), old=obj(), fm=None), policy={"default_fencing": "identity"})
case("identity: hostNetwork holder, a pod on the holder's node", True, "Current",
     req=ireq(pod="ctrl-x", node="node-1"), lease_obj=lease(holder="node-1_5b0b"), contains=["holder's node"])
case("identity: stale pod after a takeover", False, "IdentityMismatch", req=ireq(), **TAKEN,
     contains=["ctrl-a", "ctrl-b_", "term 4", "without a stamp", "does not lead"], retry_live=True)
case("identity: stale pod writes /status", False, "IdentityMismatch", req=istatus(), **TAKEN)
case("identity: stale pod deletes", False, "IdentityMismatch",
     req=ireq(op="DELETE", old=iobj(stamp(term=4, holder=B))), **TAKEN)
case("identity: stale pod creates", False, "IdentityMismatch", req=ireq(op="CREATE"), **TAKEN)
case("identity: hostNetwork holder, a pod on another node", False, "IdentityMismatch",
     req=ireq(pod="ctrl-x", node="node-2"), lease_obj=lease(holder="node-1_5b0b"))
case("identity: a pod of the holder's name in another namespace (strict mode)", False, "IdentityMismatch",
     req=ireq(user="system:serviceaccount:other:ctrl"), policy={"unstamped_writes": "deny"},
     contains=["namespace other"])
case("identity: a tool in a pod of the Lease's namespace", False, "IdentityMismatch",
     req=ireq(user="system:serviceaccount:default:reloader", pod="reloader-7d9f8-x2k4q"),
     contains=["reloader-7d9f8-x2k4q", "exempt group"])
case("identity: Lease in another namespace, its holder not shown", False, "IdentityMismatch",
     req=ireq(new=iobj(lease_ann="identity:other/ctrl"), old=iobj(lease_ann="identity:other/ctrl"),
              user="system:serviceaccount:other:ctrl", pod="ctrl-x"),
     lease_obj=lease(ns="other"), excludes=["ctrl-a_"], contains=["not shown"], disclosed=False)
case("identity: no pod identity", False, "IdentityRequired", req=ireq(pod=None),
     contains=["no pod identity", "projected", "fieldManager=lf1:", "exempt group"])
case("identity: no pod identity, Lease unavailable and failing open", False, "IdentityRequired",
     req=ireq(pod=None), lease_obj=None, status="unavailable", policy={"admit_when_unavailable": True})
case("identity: a person in strict mode", False, "IdentityRequired", req=ireq(**PERSON),
     policy={"unstamped_writes": "deny"}, excludes=["exempt group"])
case("identity: holder is a bare UUID (client-go example -id)", False, "UnboundHolder", req=ireq(),
     lease_obj=lease(holder=UUID_HOLDER), contains=[UUID_HOLDER, "names no pod or node", "downward API"],
     retry_live=True)
case("identity: holder a pod name cannot hold", False, "UnboundHolder", req=ireq(),
     lease_obj=lease(holder="Ctrl A (pid 7)"))
case("identity: holder's hostname part a UUID", False, "UnboundHolder", req=ireq(pod=UUID_HOLDER),
     lease_obj=lease(holder=UUID_HOLDER + "_1"))
case("identity: Lease expired", False, "LeaseExpired", req=ireq(), now=20, retry_live=True)
case("identity: holder's clock ahead", False, "ClockSkew", req=ireq(), now=-10)
case("identity: Lease released", False, "LeaseReleased", req=ireq(), lease_obj=lease(holder=""),
     contains=["acquire the Lease first"], excludes=["stamp presents"])
case("identity: Lease does not exist", False, "LeaseNotFound", req=ireq(), lease_obj=None, status="not_found")
case("identity: finalizer removed while nobody leads", True, "Unguarded",
     req=ireq(new=iobj(deleting=True), old=iobj(deleting=True), pod="ctrl-x"), now=20)
case("identity: the holder's pod stores a stamp of its own", False, "StampChange",
     req=ireq(new=iobj(stamp(term=9)), old=iobj(stamp())), contains=["no per-request stamp"])
case("identity: a stamped write is judged by its stamp (stale)", False, "StaleTerm",
     req=ireq(new=iobj(stamp(term=2)), old=iobj(stamp(term=2)), fm=stamp(term=2)))
case("identity: a stamped write is judged by its stamp (current)", True, "Current",
     req=ireq(new=iobj(stamp()), old=iobj(stamp(term=2)), fm=stamp()), contains=["the stamp is current"])
case("identity: the stale pod copies the new leader's stamp", False, "IdentityMismatch",
     req=ireq(new=iobj(stamp(term=4, holder=B)), old=iobj(stamp(term=4, holder=B)), fm=stamp(term=4, holder=B)),
     **TAKEN)
case("identity: a stale stamped delete of an object fenced by identity", False, "IdentityMismatch",
     req=ireq(op="DELETE", old=iobj(stamp(term=3))), **TAKEN)
case("identity: a person edits the object", True, "OtherWriter", req=ireq(**PERSON), writer="other")
case("identity: a tool in a pod of another namespace", True, "OtherWriter",
     req=ireq(user="system:serviceaccount:argocd:argocd-application-controller", pod="argocd-0"))
case("identity: Kubernetes' deployment controller writes /status", True, "Exempt",
     req=ireq(sub="status", user=ksa("deployment-controller"), pod=None, new=iobj(kind="Deployment"),
              old=iobj(kind="Deployment"), resource="deployments", kind="Deployment", group="apps"), **TAKEN)
case("identity: a person switches the object to identity while the controller leads", False,
     "ProtectionChange", req=request(new=obj(lease_ann=IDN), old=obj(), fm=None, **PERSON))
case("identity: the stamped controller switches the object to identity", True, "Current",
     req=request(new=obj(lease_ann=IDN, stamp_ann=stamp()), old=obj(stamp_ann=stamp())))
case("identity: the holder's pod switches the object back to stamps", True, "Current",
     req=ireq(new=obj(lease_ann="stamp:ctrl")))
case("identity: a stale pod cannot shed identity fencing", False, "IdentityMismatch",
     req=ireq(new=obj(lease_ann=None)), **TAKEN)
case("identity: an unstamped write cannot switch a stamped object to identity", False, "MissingStamp",
     req=request(new=iobj(stamp()), old=obj(stamp_ann=stamp()), fm=None))
case("identity: a mode the protocol does not know", False, "MalformedProtection",
     req=request(new=obj(lease_ann="ident:ctrl"), old=obj(lease_ann="ident:ctrl"), fm=None),
     contains=["fencing mode"])
case("--default-fencing=identity: an object that asks for stamps", False, "MissingStamp",
     req=request(new=obj(lease_ann="stamp:ctrl"), old=obj(lease_ann="stamp:ctrl"), fm=None),
     policy={"default_fencing": "identity"})

# --- reviews that are not valid ----------------------------------------------------
bad = request()
bad["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] = ["a", "b"]
review_error("two pod names", bad, ["pod-name"])
bad = request(node="n1")
bad["userInfo"]["extra"]["authentication.kubernetes.io/node-name"] = ["n1", "n2"]
review_error("two node names", bad, ["node-name"])
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
        parse_ok("holder-less form of earlier helpers", f"lf1:7:{UID}", 7, UID, ""),
        parse_ok("short form with a holder hash", short(term=7), 7, UID, "#" + holder_hash(A)),
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
         "holder": "p" * 90, "ok": True, "stamp": stamp(holder="p" * 90), "field_manager": short(holder="p" * 90)},
        {"name": "holder that just fits in fieldManager", "term": 3, "lease_uid": UID,
         "holder": "p" * (128 - len(stamp(holder=None)) - 1), "ok": True,
         "stamp": stamp(holder="p" * (128 - len(stamp(holder=None)) - 1)),
         "field_manager": stamp(holder="p" * (128 - len(stamp(holder=None)) - 1))},
        {"name": "holder one byte too long for fieldManager", "term": 3, "lease_uid": UID,
         "holder": "p" * (128 - len(stamp(holder=None))), "ok": True,
         "stamp": stamp(holder="p" * (128 - len(stamp(holder=None)))),
         "field_manager": short(holder="p" * (128 - len(stamp(holder=None))))},
        {"name": "holder that looks like a holder hash", "term": 1, "lease_uid": UID,
         "holder": "#0123456789abcdef", "ok": False},
        {"name": "holder like a hash but of other length", "term": 1, "lease_uid": UID,
         "holder": "#0123456789abcde", "ok": True, "stamp": stamp(term=1, holder="#0123456789abcde"),
         "field_manager": stamp(term=1, holder="#0123456789abcde")},
        {"name": "negative term", "term": -1, "lease_uid": UID, "holder": A, "ok": False},
        {"name": "empty holder", "term": 1, "lease_uid": UID, "holder": "", "ok": False},
        {"name": "empty uid", "term": 1, "lease_uid": "", "holder": A, "ok": False},
        {"name": "uid with a colon", "term": 1, "lease_uid": "a:b", "holder": A, "ok": False},
        {"name": "holder with a newline", "term": 1, "lease_uid": UID, "holder": "a\nb", "ok": False},
    ],
    # The holder hash of docs/protocol.md section 3 (64-bit FNV-1a, 16 hex digits).
    "holder_hash": [
        {"name": "empty", "holder": "", "hash": "cbf29ce484222325"},
        {"name": "one byte", "holder": "a", "hash": "af63dc4c8601ec8c"},
        {"name": "client-go identity", "holder": A, "hash": holder_hash(A)},
        {"name": "hostNetwork identity", "holder": "node-1_5b0b", "hash": holder_hash("node-1_5b0b")},
        {"name": "UTF-8 bytes", "holder": "pod-é", "hash": holder_hash("pod-é")},
        {"name": "256 bytes", "holder": H256, "hash": holder_hash(H256)},
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


# The protection annotation: an optional fencing mode, then a Lease reference
# (docs/protocol.md section 2). "fencing" is the mode the value names, ""
# when it names none (the webhook's --default-fencing then applies).
PROTECTION = [
    {"name": "identity mode", "text": "identity:ctrl", "object_ns": "default", "ok": True,
     "ns": "default", "name_out": "ctrl", "fencing": "identity"},
    {"name": "stamp mode, other namespace", "text": "stamp:ops/ctrl", "object_ns": "default", "ok": True,
     "ns": "ops", "name_out": "ctrl", "fencing": "stamp"},
    {"name": "identity mode on a cluster-scoped object", "text": "identity:ops/ctrl", "object_ns": "",
     "ok": True, "ns": "ops", "name_out": "ctrl", "fencing": "identity"},
    {"name": "a Lease named identity", "text": "identity", "object_ns": "default", "ok": True,
     "ns": "default", "name_out": "identity", "fencing": ""},
    {"name": "a Lease named stamp", "text": "stamp", "object_ns": "default", "ok": True,
     "ns": "default", "name_out": "stamp", "fencing": ""},
    {"name": "identity mode, a Lease named identity", "text": "identity:identity", "object_ns": "default",
     "ok": True, "ns": "default", "name_out": "identity", "fencing": "identity"},
    {"name": "stamp mode, a namespace named identity", "text": "stamp:identity/stamp", "object_ns": "",
     "ok": True, "ns": "identity", "name_out": "stamp", "fencing": "stamp"},
    {"name": "mode glued to the name", "text": "identityctrl", "object_ns": "default", "ok": True,
     "ns": "default", "name_out": "identityctrl", "fencing": ""},
    {"name": "identity mode, cluster-scoped bare name", "text": "identity:ctrl", "object_ns": "", "ok": False},
    {"name": "mode alone", "text": "identity:", "object_ns": "default", "ok": False},
    {"name": "empty mode", "text": ":ctrl", "object_ns": "default", "ok": False},
    {"name": "colon alone", "text": ":", "object_ns": "default", "ok": False},
    {"name": "two colons", "text": "identity::ctrl", "object_ns": "default", "ok": False},
    {"name": "two modes", "text": "identity:stamp:ctrl", "object_ns": "default", "ok": False},
    {"name": "two modes, the other order", "text": "stamp:identity:ctrl", "object_ns": "default", "ok": False},
    {"name": "unknown mode", "text": "token:ctrl", "object_ns": "default", "ok": False},
    {"name": "a namespace where the mode goes", "text": "ops:ctrl", "object_ns": "default", "ok": False},
    {"name": "a stamp where the mode goes", "text": "lf1:ctrl", "object_ns": "default", "ok": False},
    {"name": "mode in upper case", "text": "Identity:ctrl", "object_ns": "default", "ok": False},
    {"name": "mode all upper case", "text": "STAMP:ctrl", "object_ns": "default", "ok": False},
    {"name": "space before the colon", "text": "identity :ctrl", "object_ns": "default", "ok": False},
    {"name": "space after the colon", "text": "identity: ctrl", "object_ns": "default", "ok": False},
    {"name": "leading space", "text": " identity:ctrl", "object_ns": "default", "ok": False},
    {"name": "mode after the namespace", "text": "ops/identity:ctrl", "object_ns": "default", "ok": False},
    {"name": "mode as a suffix", "text": "ctrl:identity", "object_ns": "default", "ok": False},
    {"name": "mode then a slash", "text": "identity:/ctrl", "object_ns": "default", "ok": False},
    {"name": "mode then a newline", "text": "identity:ctrl\n", "object_ns": "default", "ok": False},
    {"name": "mode then a NUL", "text": "identity:\u0000ctrl", "object_ns": "default", "ok": False},
    {"name": "NUL inside the mode", "text": "ident\u0000ity:ctrl", "object_ns": "default", "ok": False},
    {"name": "over 1024 bytes with the mode", "text": "identity:" + "a" * 1016, "object_ns": "default",
     "ok": False},
]


def add_protection():
    """STAMPS["protection"]: every lease_ref case as it stands (naming no
    mode) and behind each mode prefix, then PROTECTION."""
    out = []
    for prefix, mode in (("", ""), ("stamp:", "stamp"), ("identity:", "identity")):
        for c in STAMPS["lease_ref"]:
            p = dict(c, name=(mode or "no mode") + ", " + c["name"], text=prefix + c["text"])
            if p["ok"]:
                p["fencing"] = mode
            out.append(p)
    names = {c["name"] for c in out}
    for c in PROTECTION:
        if c["name"] in names:
            raise SystemExit(f"duplicate protection case: {c['name']}")
        out.append(c)
    STAMPS["protection"] = out


def write(name, data):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_corpora():
    """Seed corpora for the fuzz targets (tests/fuzz/corpus/<target>/), made
    from the vectors so every rule's inputs are where the fuzzers start."""
    root = os.path.join(HERE, "..", "fuzz", "corpus")
    seeds = {"stamp": [], "lease": [], "review": [], "protection": []}
    for c in STAMPS["parse"]:
        seeds["stamp"].append(c["text"].encode())
    for c in STAMPS["lease_ref"]:
        seeds["stamp"].append(c["text"].encode())
    for c in STAMPS["protection"]:
        seeds["protection"].append(c["text"].encode())
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
    add_protection()
    write("decisions.json", {"comment": "Generated by generate.py; see docs/protocol.md. Times are UTC.",
                             "cases": CASES})
    write("stamps.json", STAMPS)
    print("seed corpora:", write_corpora())
    print(f"{len(CASES)} decision cases, {sum(len(v) for v in STAMPS.values())} stamp cases")
