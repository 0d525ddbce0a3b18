/*
 * test_webhook_oom.c: out of memory on the review path and in the
 * Kubernetes client, in the manner of jansson's test_chaos.c: the Nth
 * allocation fails, for N = 1, 2, ... until a run makes no more than N - 1
 * allocations. Every run must end in the answer of a run with memory, or in
 * a clear error; never a crash, and (under ASan/LSan, `./test.sh
 * --sanitize`) never a leak.
 *
 * Allocations are counted in three places: ours, through the linker's
 * --wrap of malloc, calloc, realloc, strdup and strndup (the static
 * libraries' calls and this file's); jansson's, through the library's
 * allocator for it (lf_json_malloc, as the webhook installs it); libcurl's,
 * through curl_global_init_mem. Only the
 * thread running the code under test is counted (`armed`), so the local
 * test server's threads never fail.
 */
#include "testutil.h"

#include "buf.h"
#include "kube_test_server.h"
#include "log.h"
#include "prune_check.h"
#include "review.h"

#include <curl/curl.h>
#include <leasefence/kube.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static _Thread_local bool armed; /* Count (and fail) this thread's allocations. */
static long fail_at;             /* The allocation that fails, from 1; 0: none. */
static long count;               /* Allocations counted since arming. */
static long failed;              /* Allocations failed since arming. */

/* Whether the next counted allocation fails. */
static bool next_fails(void) {
  if (!armed)
    return false;
  count++;
  if (fail_at > 0 && count == fail_at) {
    failed++;
    return true;
  }
  return false;
}

void *__wrap_malloc(size_t n) {
  return next_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
  return next_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
  return next_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
  return next_fails() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n) {
  return next_fails() ? NULL : __real_strndup(s, n);
}

/* libcurl's allocators: the wrapped ones above. (jansson's is the
 * library's lf_json_malloc, whose calls are wrapped too.) */
static void *c_calloc(size_t n, size_t size) {
  return calloc(n, size);
}

static void *c_realloc(void *p, size_t n) {
  return realloc(p, n);
}

static char *c_strdup(const char *s) {
  return strdup(s);
}

static void arm(long n) {
  fail_at = n;
  count = 0;
  failed = 0;
  armed = true;
}

static void disarm(void) {
  armed = false;
  fail_at = 0;
}

/* ------------------------------------------------------------------------ */
/* The review path                                                           */

/* One review: the answer with memory, then the answers with the Nth
 * allocation failing, each either the same or a clear 500. */
static void review_under_oom(const char *body, size_t len, bool with_scratch) {
  lf_policy policy;
  lfw_lease_source src = {.name = "fixed", .get = prune_check_lease_get};
  lfw_review_env env = {0};
  lfw_buf scratch;
  lfw_buf out;
  lfw_review_result want;
  lfw_review_result got;
  char *want_text;
  long n;
  int oom_answers = 0;

  lf_policy_init(&policy);
  env.policy = &policy;
  env.mode = LFW_MODE_DENY;
  env.source = &src;
  env.lease_timeout_us = 1000000;
  env.clock = prune_check_clock;
  lfw_buf_init(&scratch, len);
  lfw_buf_init(&out, 64 * 1024);
  lfw_review_handle(&env, body, len, with_scratch ? &scratch : NULL, &out, &want);
  assert_false(out.overflow);
  want_text = strdup(out.data);
  assert_non_null(want_text);
  for (n = 1;; n++) {
    /* Fresh buffers each time, so their first allocations are counted. */
    lfw_buf_free(&scratch);
    lfw_buf_free(&out);
    arm(n);
    lfw_review_handle(&env, body, len, with_scratch ? &scratch : NULL, &out, &got);
    disarm();
    if (failed == 0)
      break; /* The whole path ran on fewer than n allocations. */
    if (out.overflow) {
      /* Not even the error fitted: the HTTP layer answers 500 itself. */
      oom_answers++;
    } else if (got.http_status == 500) {
      assert_false(got.json);
      assert_int_equal(got.reason, LFW_R_OUT_OF_MEMORY);
      assert_true(lft_contains(out.data, "out of memory"));
      oom_answers++;
    } else if (strcmp(out.data, want_text) != 0 || memcmp(&got, &want, sizeof got) != 0) {
      fail_msg("allocation %ld failing changed the answer to\n%s\nfrom\n%s", n, out.data,
               want_text);
    }
  }
  assert_string_equal(out.data, want_text);
  print_message("%ld allocations on the path; %d failures answered 500\n", n - 1, oom_answers);
  assert_true(n > 1);
  free(want_text);
  lfw_buf_free(&scratch);
  lfw_buf_free(&out);
}

static void test_review_oom(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *cases = json_object_get(root, "cases");
  static const char *const names[] = {
      "current holder and term, update",
      "taken over: stale leader stamps its old term",
      "not protected",
  };
  size_t i;
  size_t k;

  (void)state;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    for (k = 0; k < json_array_size(cases); k++) {
      const json_t *c = json_array_get(cases, k);
      json_t *review;
      char *body;

      if (strcmp(json_string_value(json_object_get(c, "name")), names[i]) != 0)
        continue;
      review = lft_review(json_object_get(c, "request"));
      body = json_dumps(review, JSON_COMPACT);
      assert_non_null(body);
      print_message("%s\n", names[i]);
      review_under_oom(body, strlen(body), true);
      review_under_oom(body, strlen(body), false);
      free(body);
      json_decref(review);
    }
  }
  /* A malformed review, and one the library refuses. */
  {
    static const char *const bad[] = {
        "{\"apiVersion\":",
        "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
        "\"request\":{\"uid\":\"u\",\"operation\":\"PATCH\"}}",
    };

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
      review_under_oom(bad[i], strlen(bad[i]), true);
  }
  json_decref(root);
}

/* ------------------------------------------------------------------------ */
/* The Kubernetes client                                                     */

static const char LEASE[] =
    "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":"
    "\"my-lease\",\"namespace\":\"ns1\",\"uid\":\"u-1\",\"resourceVersion\":\"7\"},\"spec\":{"
    "\"holderIdentity\":\"ctrl-a_aaaaaaaa-0000-4000-8000-000000000001\",\"leaseDurationSeconds\":"
    "15,\"leaseTransitions\":3,"
    "\"renewTime\":\"2026-01-01T00:00:00.000000Z\"}}";

static void lease_handler(const ts_request *req, ts_conn *conn, void *arg) {
  (void)arg;
  if (strcmp(req->path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/my-lease") == 0)
    ts_respond(conn, 200, "application/json", LEASE, sizeof LEASE - 1);
  else
    ts_respond(conn, 404, "application/json", "{}", 2);
}

/* Builds a client, reads the Lease, frees the client: LF_OK with the Lease,
 * or an error code with a message. */
static int client_round(const char *url, lf_lease *lease, lf_error *err) {
  lf_kube_parts parts = {0};
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_kube_options opts = {0};
  const lf_lease_ref ref = {"ns1", "my-lease"};
  int rc;

  parts.server = url;
  parts.ns = "ns1";
  parts.token = "tok-1";
  opts.connect_timeout_ms = 5000;
  rc = lf_kube_config_from_parts(&parts, &cfg, err);
  if (rc == LF_OK)
    rc = lf_kube_client_new(&cfg, &opts, &c, err);
  if (rc == LF_OK)
    rc = lf_kube_get_lease(c, &ref, 5000, lease, err);
  lf_kube_client_free(&c);
  lf_kube_config_free(&cfg);
  return rc;
}

static void test_kube_client_oom(void **state) {
  ts_server *s = ts_start(NULL, lease_handler, NULL);
  char url[64];
  lf_lease lease;
  lf_error err;
  long n;
  int errors = 0;
  int rc;

  (void)state;
  snprintf(url, sizeof url, "http://127.0.0.1:%d", ts_port(s));
  memset(&err, 0, sizeof err);
  assert_int_equal(client_round(url, &lease, &err), LF_OK);
  for (n = 1;; n++) {
    memset(&err, 0, sizeof err);
    arm(n);
    rc = client_round(url, &lease, &err);
    disarm();
    if (failed == 0) {
      assert_int_equal(rc, LF_OK);
      break;
    }
    if (rc == LF_OK) {
      /* The failure was absorbed (a retry, a cache left cold): the Lease
       * must still be the right one. */
      assert_string_equal(lease.holder, "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001");
      continue;
    }
    assert_true(rc < 0);
    assert_int_equal(err.code, rc);
    if (err.text[0] == '\0')
      fail_msg("allocation %ld failing gave error %d without a message", n, rc);
    errors++;
  }
  print_message("%ld allocations to read a Lease; %d failures answered with an error\n", n - 1,
                errors);
  assert_true(errors > 0);
  ts_stop(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_review_oom),
      cmocka_unit_test(test_kube_client_oom),
  };

  json_set_alloc_funcs(lf_json_malloc, lf_json_free);
  if (curl_global_init_mem(CURL_GLOBAL_ALL, malloc, free, c_realloc, c_strdup, c_calloc) != 0)
    return 1;
  lfw_log_level = -1; /* Quiet: the runs are many. */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
