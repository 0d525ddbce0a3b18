/*
 * whtest.h: helpers shared by the webhook's tests.
 */
#ifndef LFW_WHTEST_H
#define LFW_WHTEST_H

#include <jansson.h>
#include <leasefence/fencing.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* Loads tests/vectors/<name>; fails the test if it cannot. */
json_t *wht_load_vectors(const char *name);

/* A policy read from a vector's "policy" object (NULL: the defaults). The
 * strings point into `policy`, which must outlive the result. */
typedef struct wht_policy {
  lf_policy policy;
  const char *users[16];
  const char *groups[16];
} wht_policy;

void wht_policy_from_json(wht_policy *p, const json_t *policy);

/* RFC 3339 to microseconds; fails the test on a bad time. */
int64_t wht_time(const char *rfc3339);

/* Wraps a vector's request object in an admission.k8s.io/v1 AdmissionReview
 * (a new reference). */
json_t *wht_review(const json_t *request);

/* True when `haystack` contains `needle`. */
int wht_contains(const char *haystack, const char *needle);

#endif
