/*
 * The decision, driven by the shared vectors (tests/vectors/decisions.json):
 * every case runs as its own cmocka test, named after the case. A few rules
 * that vectors cannot express (idempotence, the two-step API, message
 * bounds) are tested directly below.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void run_case(void **state) {
  const json_t *c = *state;
  const json_t *expect = json_object_get(c, "expect");
  json_t *review = lft_review(json_object_get(c, "request"));
  lf_request req;
  lf_lease lease;
  lf_lease_view view = {0};
  lf_decision d, again;
  lf_error err = {0};
  lft_policy p;

  int rc = lf_request_from_review(review, &req, &err);
  if (json_is_true(json_object_get(expect, "review_error"))) {
    assert_int_not_equal(rc, LF_OK);
    const json_t *needle;
    size_t i;
    json_array_foreach(json_object_get(expect, "message_contains"), i, needle) {
      if (strstr(err.text, json_string_value(needle)) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err.text, json_string_value(needle));
      }
    }
    json_decref(review);
    return;
  }
  if (rc != LF_OK) {
    fail_msg("review rejected: %s", err.text);
  }

  const char *status = json_string_value(json_object_get(c, "lease_status"));
  if (strcmp(status, "ok") == 0) {
    if (lf_lease_from_json(json_object_get(c, "lease"), &lease, &err) != LF_OK) {
      fail_msg("vector Lease rejected: %s", err.text);
    }
    view.status = LF_LEASE_OK;
    view.lease = &lease;
  } else if (strcmp(status, "not_found") == 0) {
    view.status = LF_LEASE_NOT_FOUND;
  } else {
    view.status = LF_LEASE_UNAVAILABLE;
    view.cause = json_string_value(json_object_get(c, "lease_cause"));
  }
  lft_policy_from_json(&p, json_object_get(c, "policy"));
  int64_t now = lft_time(json_string_value(json_object_get(c, "now")));

  lf_decide(&req, &view, now, &p.policy, &d);
  const char *want = json_string_value(json_object_get(expect, "reason"));
  if (strcmp(lf_reason_name(d.reason), want) != 0 ||
      d.allowed != json_is_true(json_object_get(expect, "allowed"))) {
    fail_msg("got %s %s, want %s %s\n  message: %s", d.allowed ? "allowed" : "denied",
             lf_reason_name(d.reason),
             json_is_true(json_object_get(expect, "allowed")) ? "allowed" : "denied", want,
             d.message);
  }
  const json_t *needle;
  size_t i;
  json_array_foreach(json_object_get(expect, "message_contains"), i, needle) {
    if (strstr(d.message, json_string_value(needle)) == NULL) {
      fail_msg("message lacks \"%s\": %s", json_string_value(needle), d.message);
    }
  }
  const json_t *lease_ref = json_object_get(expect, "lease");
  if (lease_ref != NULL) {
    char got[LF_NAMESPACE_MAX + LF_NAME_MAX + 2];
    snprintf(got, sizeof(got), "%s/%s", d.lease.ns, d.lease.name);
    assert_string_equal(got, json_string_value(lease_ref));
  }
  const json_t *retry = json_object_get(expect, "retry_live");
  if (retry != NULL) {
    assert_int_equal(d.retry_live, json_is_true(retry));
  }
  /* A fresher Lease read is only ever asked for to reconsider a denial. */
  assert_false(d.allowed && d.retry_live);
  /* Every denial tells a person what happened; every message is bounded. */
  assert_true(strlen(d.message) > 40);
  assert_true(strlen(d.message) < LF_MESSAGE_MAX);
  assert_non_null(strstr(d.message, want));

  /* Decisions are idempotent: the API server may ask twice. */
  lf_decide(&req, &view, now, &p.policy, &again);
  assert_int_equal(again.allowed, d.allowed);
  assert_int_equal(again.reason, d.reason);
  assert_string_equal(again.message, d.message);
  json_decref(review);
}

/* The two-step API: needs_lease names the guarding Lease exactly when the
 * full decision would consult it. */
static void test_needs_lease_names_guard(void **state) {
  (void)state;
  json_t *vectors = lft_load_vectors("decisions.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(vectors, "cases"), i, c) {
    const json_t *expect = json_object_get(c, "expect");
    if (json_object_get(expect, "review_error") != NULL) {
      continue;
    }
    json_t *review = lft_review(json_object_get(c, "request"));
    lf_request req;
    lf_error err;
    lf_lease_ref ref;
    lf_decision d;
    lft_policy p;
    assert_int_equal(lf_request_from_review(review, &req, &err), LF_OK);
    lft_policy_from_json(&p, json_object_get(c, "policy"));
    int needs = lf_decide_needs_lease(&req, &p.policy, &ref, &d);
    const char *reason = json_string_value(json_object_get(expect, "reason"));
    bool final = strcmp(reason, "NotProtected") == 0 || strcmp(reason, "Exempt") == 0 ||
                 strcmp(reason, "MalformedProtection") == 0;
    if (needs != (final ? 0 : 1)) {
      fail_msg("%s: needs_lease returned %d", json_string_value(json_object_get(c, "name")), needs);
    }
    if (final) {
      assert_string_equal(lf_reason_name(d.reason), reason);
    }
    json_decref(review);
  }
  json_decref(vectors);
}

/* Holders near the bounds still give a bounded message that names both. */
static void test_message_bounded_with_long_holders(void **state) {
  (void)state;
  char holder_a[LF_HOLDER_MAX + 1], holder_b[LF_HOLDER_MAX + 1], stamp[LF_STAMP_MAX + 1];
  memset(holder_a, 'a', LF_HOLDER_MAX);
  holder_a[LF_HOLDER_MAX] = '\0';
  memset(holder_b, 'b', LF_HOLDER_MAX);
  holder_b[LF_HOLDER_MAX] = '\0';
  lf_stamp s = {.term = 1};
  strcpy(s.lease_uid, "u");
  strcpy(s.holder, holder_a);
  assert_int_equal(lf_stamp_format(&s, stamp, sizeof(stamp), NULL), LF_OK);

  lf_request req = {.uid = "x",
                    .op = LF_OP_UPDATE,
                    .resource = "configmaps",
                    .subresource = "",
                    .ns = "default",
                    .name = "cm",
                    .username = "u"};
  req.object =
      (lf_object_meta){.present = true, .lease_annotation = "ctrl", .stamp_annotation = stamp};
  lf_lease lease = {.transitions = 2, .duration_s = 15, .renew_us = 0, .acquire_us = 0};
  strcpy(lease.ref.ns, "default");
  strcpy(lease.ref.name, "ctrl");
  strcpy(lease.uid, "u");
  strcpy(lease.holder, holder_b);
  lf_lease_view view = {.status = LF_LEASE_OK, .lease = &lease};
  lf_policy policy;
  lf_policy_init(&policy);
  lf_decision d;
  lf_decide(&req, &view, 1000000, &policy, &d);
  assert_false(d.allowed);
  assert_string_equal(lf_reason_name(d.reason), "StaleTerm");
  assert_true(strlen(d.message) < LF_MESSAGE_MAX);
  assert_non_null(strstr(d.message, "\"aaaaaaaa"));
  assert_non_null(strstr(d.message, "\"bbbbbbbb"));
  assert_non_null(strstr(d.message, "...\""));
}

static void test_reason_names_stable(void **state) {
  (void)state;
  /* Names are part of the interface (metrics, logs, alerts): pin a few. */
  assert_string_equal(lf_reason_name(LF_R_NOT_PROTECTED), "NotProtected");
  assert_string_equal(lf_reason_name(LF_R_STALE_TERM), "StaleTerm");
  assert_string_equal(lf_reason_name(LF_R_IDENTITY_MISMATCH), "IdentityMismatch");
  assert_string_equal(lf_reason_name(LF_R_COUNT), "Unknown");
  for (int r = 0; r < LF_R_COUNT; r++) {
    assert_non_null(lf_reason_name((lf_reason)r));
    assert_string_not_equal(lf_reason_name((lf_reason)r), "Unknown");
  }
}

static void test_policy_defaults(void **state) {
  (void)state;
  lf_policy p;
  lf_policy_init(&p);
  assert_int_equal(p.identity, LF_IDENTITY_WHEN_PRESENT);
  assert_int_equal(p.skew_us, 2000000);
  assert_false(p.admit_when_unavailable);
  assert_int_equal(p.n_exempt_groups, 0);
  assert_int_equal(p.n_exempt_users, 3);
}

int main(void) {
  json_t *vectors = lft_load_vectors("decisions.json");
  const json_t *cases = json_object_get(vectors, "cases");
  size_t n = json_array_size(cases);
  struct CMUnitTest *tests = calloc(n, sizeof(*tests));
  int failed;

  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(cases, i);
    tests[i].name = json_string_value(json_object_get(c, "name"));
    tests[i].test_func = run_case;
    tests[i].initial_state = c;
  }
  failed = _cmocka_run_group_tests("decision vectors", tests, n, NULL, NULL);

  const struct CMUnitTest direct[] = {
      cmocka_unit_test(test_needs_lease_names_guard),
      cmocka_unit_test(test_message_bounded_with_long_holders),
      cmocka_unit_test(test_reason_names_stable),
      cmocka_unit_test(test_policy_defaults),
  };
  failed += cmocka_run_group_tests(direct, NULL, NULL);
  free(tests);
  json_decref(vectors);
  return failed;
}
