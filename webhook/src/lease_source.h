/*
 * lease_source.h: where the webhook reads Leases from.
 *
 * A Lease source is a small vtable plus a context pointer. The review path
 * calls get() once per fenced write; implementations must be safe to call
 * from several server threads at once. Sources:
 *  - "kube" (lease_kube.c): a quorum GET per decision, coalesced; the default.
 *  - "kube-cached" (lease_kube.c): a watch cache in front of "kube".
 *  - "file:DIR" (lease_file.c): DIR/<namespace>/<name>.json, read on every
 *    lookup; for tests and demos.
 */
#ifndef LFW_LEASE_SOURCE_H
#define LFW_LEASE_SOURCE_H

#include "buf.h"

#include <leasefence/fencing.h>
#include <stdbool.h>
#include <stdint.h>

/* get() flag: bypass any cache and read the Lease from its origin now. The
 * review path sets it when a decision asks for it (lf_decision.retry_live:
 * the stamp names a newer term than the cached Lease). Sources without a
 * cache ignore it. */
#define LFW_LEASE_LIVE 0x1u

typedef struct lfw_lease_source {
  const char *name; /* Short name for logs ("file"). */
  void *ctx;        /* The implementation's state; passed to every call. */

  /* Looks up the Lease `ref`. `deadline_us` is an absolute CLOCK_MONOTONIC
   * time in microseconds (see lfw_monotonic_us()) by which the call must
   * return; a source that cannot answer in time returns LF_ETIMEDOUT.
   * Returns:
   *   LF_OK        `*out` holds the Lease;
   *   LF_ENOTFOUND the Lease does not exist;
   *   other LF_E*  the Lease could not be read; `err->text` says why (it
   *                becomes the "cause" in the denial message, so no secrets).
   * `*out` and `*err` are the caller's. */
  int (*get)(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us, lf_lease *out,
             lf_error *err);

  /* True when the source can answer lookups (for /readyz). When it returns
   * false it may write a short reason into `why` (`why_size` bytes). */
  bool (*ready)(void *ctx, char *why, size_t why_size);

  /* Releases `ctx`. May be NULL. */
  void (*close)(void *ctx);

  /* True when get() may answer from a cache. The review path then reads
   * live (LFW_LEASE_LIVE) before any denial a fresher Lease could reverse
   * (lf_decision.retry_live); for a source that always reads live that
   * second read would only repeat the first. */
  bool caches;

  /* Reads the metadata of the object that a /scale write goes to: the API
   * server sends the webhook a Scale object without the parent's
   * annotations (docs/protocol.md, 4.2). `group` is "" for the core group,
   * `ns` "" for a cluster-scoped object. On LF_OK `*out` is a new reference
   * to the parent's metadata object (the caller json_decrefs it); other
   * codes as get(). May be NULL: the source cannot, and /scale writes are
   * then refused. */
  int (*parent_metadata)(void *ctx, const char *group, const char *version, const char *resource,
                         const char *ns, const char *name, int64_t deadline_us, json_t **out,
                         lf_error *err);

  /* Appends the source's own metrics to the /metrics page. May be NULL.
   * 0, or -1 when `out` overflowed. */
  int (*metrics)(void *ctx, lfw_buf *out);
} lfw_lease_source;

/* How Kubernetes-backed sources are set up (from the command line). */
typedef struct lfw_lease_source_config {
  const char *kubeconfig;
  int64_t read_timeout_us;
  int64_t max_staleness_us;
  const char *cache_namespace;
  const char *cache_label_selector;
} lfw_lease_source_config;

/* Opens the source named by `spec` ("kube", "kube-cached" or "file:DIR");
 * `cfg` (may be NULL) sets up the Kubernetes-backed ones. On failure returns
 * a negative LF_E* code with `err` filled, and `*out` is left zeroed. */
int lfw_lease_source_open(const char *spec, const lfw_lease_source_config *cfg,
                          lfw_lease_source *out, lf_error *err);

/* Closes a source opened by lfw_lease_source_open; accepts a zeroed one. */
void lfw_lease_source_close(lfw_lease_source *src);

/* The file source, for direct use by tests. `dir` is copied. */
int lfw_lease_file_open(const char *dir, lfw_lease_source *out, lf_error *err);

#endif /* LFW_LEASE_SOURCE_H */
