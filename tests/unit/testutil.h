/*
 * testutil: helpers shared by the C tests (tests/unit, tests/webhook):
 * loading the shared vectors, turning their "policy" objects into lf_policy,
 * times, and wrapping requests into AdmissionReviews.
 */
#ifndef LF_TESTUTIL_H
#define LF_TESTUTIL_H

#include <leasefence/fencing.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* Loads tests/vectors/<name>; fails the test when it cannot. New reference. */
json_t *lft_load_vectors(const char *name);

/* Exemption lists from a vector's policy live here while a case runs. */
typedef struct lft_policy {
  lf_policy policy;
  const char *users[16];
  const char *groups[16];
} lft_policy;

/* Fills `p` from lf_policy_init() and then the vector's "policy" (may be NULL). */
void lft_policy_from_json(lft_policy *p, const json_t *policy);

/* Microseconds for an RFC 3339 string; fails the test on a bad one. */
int64_t lft_time(const char *rfc3339);

/* Wraps a vector's request object in an admission.k8s.io/v1 AdmissionReview
 * (a new reference). */
json_t *lft_review(const json_t *request);

/* An UPDATE request (not a review) of the ConfigMap team/`name`, whose
 * oldObject has uid `uid`, protected by Lease "ctrl" and carrying no stamp,
 * by the pod-bound service account team/ctrl from Pod ctrl-7d9f: a write the
 * webhook denies whatever the Lease. A new reference. */
json_t *lft_unstamped_update(const char *name, const char *uid);

/* `text` with its first `placeholder` replaced by `raw` (the test fails if
 * there is none); the caller frees it. JSON text jansson cannot build (a NUL
 * in a key, numbers beyond double, deep nesting) goes into a body this way. */
char *lft_splice(const char *text, const char *placeholder, const char *raw);

/* True when `haystack` is not NULL and contains `needle`. */
int lft_contains(const char *haystack, const char *needle);

#endif
