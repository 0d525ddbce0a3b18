#!/usr/bin/env python3
"""Writes the benchmarks' fixed AdmissionReview and its Lease.

    bench/make-review.py OUT_DIR [LEASE_UID]

OUT_DIR/review.json: an UPDATE of a protected ConfigMap (16 data keys in
object and oldObject, 2.4 kB) from a pod-bound service account, stamped with
the current term of Lease default/ctrl (per request in fieldManager, and on
the object). OUT_DIR/leases/default/ctrl.json: that
Lease, renewed now for an hour (the file Lease source reads it; the
Kubernetes benchmarks create it in the API server). LEASE_UID defaults to a
fixed one; pass the real uid when the Lease lives in an API server.
"""
import datetime
import json
import os
import sys

out = sys.argv[1]
uid = sys.argv[2] if len(sys.argv) > 2 else "11111111-1111-4111-8111-111111111111"
holder = "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001"
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
os.makedirs(f"{out}/leases/default", exist_ok=True)
lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "ctrl", "namespace": "default", "uid": uid, "resourceVersion": "1"},
         "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3600, "leaseTransitions": 3,
                  "renewTime": now, "acquireTime": now}}
json.dump(lease, open(f"{out}/leases/default/ctrl.json", "w"))
stamp = f"lf1:3:{uid}:{holder}"


def obj():
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "shard-map", "namespace": "default",
                         "uid": "5e1c0f6e-0000-4000-8000-00000000abcd", "resourceVersion": "4711",
                         "labels": {"app.kubernetes.io/name": "ctrl"},
                         "annotations": {"leasefence.io/lease": "ctrl", "leasefence.io/stamp": stamp}},
            "data": {f"shard-{i}": f"node-{i % 7}" for i in range(16)}}


review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
          "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                      "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                      "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                      "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                      "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
                      "name": "shard-map", "namespace": "default", "operation": "UPDATE",
                      "userInfo": {"username": "system:serviceaccount:default:ctrl",
                                   "uid": "8c2b4e1a-0000-4000-8000-000000000001",
                                   "groups": ["system:serviceaccounts", "system:serviceaccounts:default",
                                              "system:authenticated"],
                                   "extra": {"authentication.kubernetes.io/pod-name": ["ctrl-a"],
                                             "authentication.kubernetes.io/pod-uid": ["0000"]}},
                      "object": obj(), "oldObject": obj(), "dryRun": False,
                      "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions",
                                  "fieldManager": stamp}}}
json.dump(review, open(f"{out}/review.json", "w"))
