/*
 * lease_source.h: where the webhook reads Leases from.
 *
 * A Lease source is a small vtable plus a context pointer. The review path
 * calls get() once per fenced write; implementations must be safe to call
 * from several server threads at once. Sources:
 *  - "file:DIR" (lease_file.c): DIR/<namespace>/<name>.json, read on every
 *    lookup; for tests and demos.
 *  - Kubernetes-backed sources (a watch cache, a live GET) plug in here too:
 *    add a constructor and a prefix in lfw_lease_source_open().
 */
#ifndef LFW_LEASE_SOURCE_H
#define LFW_LEASE_SOURCE_H

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
  int (*get)(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
             lf_lease *out, lf_error *err);

  /* True when the source can answer lookups (for /readyz). When it returns
   * false it may write a short reason into `why` (`why_size` bytes). */
  bool (*ready)(void *ctx, char *why, size_t why_size);

  /* Releases `ctx`. May be NULL. */
  void (*close)(void *ctx);
} lfw_lease_source;

/* Opens the source named by `spec` ("file:DIR"). On failure returns a
 * negative LF_E* code with `err` filled, and `*out` is left zeroed. */
int lfw_lease_source_open(const char *spec, lfw_lease_source *out, lf_error *err);

/* Closes a source opened by lfw_lease_source_open; accepts a zeroed one. */
void lfw_lease_source_close(lfw_lease_source *src);

/* The file source, for direct use by tests. `dir` is copied. */
int lfw_lease_file_open(const char *dir, lfw_lease_source *out, lf_error *err);

#endif /* LFW_LEASE_SOURCE_H */
