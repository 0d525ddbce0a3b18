/*
 * review.h: one AdmissionReview in, one answer out.
 *
 * This is the whole request path except HTTP: parse the body, read it into an
 * lf_request, decide with the fencing library (reading the guarding Lease
 * from the Lease source), apply the enforcement mode, log, and write the
 * response body. It has no network and takes the time as a parameter, so the
 * tests drive it directly with the shared decision vectors.
 */
#ifndef LFW_REVIEW_H
#define LFW_REVIEW_H

#include "buf.h"
#include "config.h"
#include "events.h"
#include "lease_source.h"
#include "metrics.h"

#include <leasefence/fencing.h>
#include <stdbool.h>
#include <stdint.h>

/* Warnings the API server accepts: at most 256 characters each and 4096
 * bytes in all (k8s.io/apiserver's warning recorder). */
#define LFW_WARNING_RUNES_MAX 256
#define LFW_WARNINGS_BYTES_MAX 4096

/* Everything one review needs besides its body; shared by all threads and
 * read-only while serving. */
typedef struct lfw_review_env {
  const lf_policy *policy;
  lfw_mode mode;
  const lfw_lease_source *source; /* NULL: every Lease is unavailable. */
  int64_t lease_timeout_us;       /* Budget of all the lookups of one review. */
  /* The wall clock in µs, read after the Lease is read so expiry is judged
   * at the moment of the decision, not at the request's arrival. NULL: the
   * real one (lfw_realtime_us); tests give a fixed one. */
  int64_t (*clock)(void);
  /* Where denials are reported as Events (events.h); NULL: nowhere. */
  lfw_events *events;
} lfw_review_env;

/* What happened, for the HTTP layer, the metrics and the tests. */
typedef struct lfw_review_result {
  int http_status;             /* 200 (an AdmissionReview), 400 or 500 (plain text). */
  bool json;                   /* The body is JSON, else text/plain. */
  int op;                      /* Metrics operation index (lf_operation or 0). */
  lfw_decision_label decision; /* Metrics decision. */
  int reason;                  /* lf_reason or LFW_R_*. */
  bool allowed;                /* The answer's "allowed" (when http_status 200). */
} lfw_review_result;

/* Answers the AdmissionReview in `body` (`len` bytes), judging time by
 * env->clock.
 * `out` is reset and receives the response body (bounded by its own max; 64
 * KiB always suffices). `scratch` (may be NULL) holds the pruned review
 * (prune.h) and must allow `len` bytes; without it the whole body is parsed.
 * Both buffers stay the caller's, for reuse. Never fails: every input gets
 * an answer; when memory runs out, a plain-text 500 saying so (or, if even
 * that cannot be written, `out` overflowed). */
void lfw_review_handle(const lfw_review_env *env, const char *body, size_t len, lfw_buf *scratch,
                       lfw_buf *out, lfw_review_result *res);

/* As lfw_review_handle, for a body its caller has already pruned: `pruned`
 * holds what lfw_prune_review(body, len, pruned) made when it answered
 * LFW_PRUNE_OK, or is NULL when it did not (the whole body is parsed then).
 * Spares the second scan of the body. */
void lfw_review_handle_pruned(const lfw_review_env *env, const char *body, size_t len,
                              lfw_buf *pruned, lfw_buf *out, lfw_review_result *res);

#endif /* LFW_REVIEW_H */
