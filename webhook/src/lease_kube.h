/*
 * lease_kube.h: Lease sources that read the Kubernetes API (lease_kube.c):
 * "kube" (a quorum GET per decision, coalesced) and "kube-cached" (a watch
 * cache that falls back to the quorum GET whenever it cannot vouch for its
 * copy).
 */
#ifndef LFW_LEASE_KUBE_H
#define LFW_LEASE_KUBE_H

#include "buf.h"
#include "lease_source.h"

#include <leasefence/kube.h>

typedef struct lfw_kube_source lfw_kube_source;

typedef struct lfw_kube_options {
  const char *kubeconfig;           /* NULL or "": in-cluster configuration. */
  bool cached;                      /* Watch cache in front of the quorum reads. */
  int64_t read_timeout_us;          /* One Lease GET; 0: 1 s (--lease-timeout). */
  int64_t max_staleness_us;         /* Cached mode: oldest copy served; 0: 3 s. */
  const char *cache_namespace;      /* Cached mode: watch one namespace (NULL: all). */
  const char *cache_label_selector; /* Cached mode: watch matching Leases (NULL: all). */
} lfw_kube_options;

/* Opens a Kubernetes-backed source. Everything in `opts` is copied or used
 * during the call only. Starts one background thread (the readiness probe in
 * strong mode, the watch in cached mode) that close() stops. On failure
 * returns a negative LF_E* with `err` filled and `*out` zeroed. */
int lfw_lease_kube_open(const lfw_kube_options *opts, lfw_lease_source *out, lf_error *err);

/* Appends the source's metrics (Lease reads, coalescing, the cache) to `out`
 * in the Prometheus text format. `ctx` is the source's. 0, or -1 when `out`
 * overflowed. */
int lfw_lease_kube_metrics(void *ctx, lfw_buf *out);

#endif /* LFW_LEASE_KUBE_H */
