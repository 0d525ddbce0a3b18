/*
 * The decision, driven by the shared vectors (tests/vectors/decisions.json):
 * every case runs as its own cmocka test, named after the case. A few rules
 * that vectors cannot express (idempotence, the two-step API, message
 * bounds) are tested directly below, and each rule of the table is switched
 * off in turn to see a vector fail.
 */
#include "decide_internal.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Lease view a case describes. `lease` backs it. */
static void case_view(const json_t *c, lf_lease *lease, lf_lease_view *view) {
  lf_error err = {0};
  const char *status = json_string_value(json_object_get(c, "lease_status"));
  const json_t *live = json_object_get(c, "lease_live");
  const char *disclose = json_string_value(json_object_get(c, "lease_disclose"));

  memset(view, 0, sizeof(*view));
  if (strcmp(status, "ok") == 0) {
    if (lf_lease_from_json(json_object_get(c, "lease"), lease, &err) != LF_OK) {
      fail_msg("vector Lease rejected: %s", err.text);
    }
    view->status = LF_LEASE_OK;
    view->lease = lease;
  } else if (strcmp(status, "not_found") == 0) {
    view->status = LF_LEASE_NOT_FOUND;
  } else {
    view->status = LF_LEASE_UNAVAILABLE;
    view->cause = json_string_value(json_object_get(c, "lease_cause"));
  }
  view->live = live == NULL || json_is_true(live);
  view->disclose = disclose == NULL                 ? LF_DISCLOSE_DEFAULT
                   : strcmp(disclose, "allow") == 0 ? LF_DISCLOSE_ALLOW
                                                    : LF_DISCLOSE_DENY;
}

/* Decides one case; false (with `why` filled) when it is not decided as the
 * case expects. The review must be valid. */
static bool decide_case(const json_t *c, lf_decision *d, char *why, size_t why_size) {
  const json_t *expect = json_object_get(c, "expect");
  json_t *review = lft_review(json_object_get(c, "request"));
  lf_request req;
  lf_lease lease;
  lf_lease_view view;
  lf_error err = {0};
  lft_policy p;
  bool ok = true;
  const json_t *needle;
  size_t i;

  if (lf_request_from_review(review, &req, &err) != LF_OK) {
    fail_msg("review rejected: %s", err.text);
  }
  case_view(c, &lease, &view);
  lft_policy_from_json(&p, json_object_get(c, "policy"));
  lf_decide(&req, &view, lft_time(json_string_value(json_object_get(c, "now"))), &p.policy, d);
  const char *want = json_string_value(json_object_get(expect, "reason"));
  if (strcmp(lf_reason_name(d->reason), want) != 0 ||
      d->allowed != json_is_true(json_object_get(expect, "allowed"))) {
    snprintf(why, why_size, "got %s %s, want %s", d->allowed ? "allowed" : "denied",
             lf_reason_name(d->reason), want);
    ok = false;
  }
  json_array_foreach(json_object_get(expect, "message_contains"), i, needle) {
    if (ok && strstr(d->message, json_string_value(needle)) == NULL) {
      snprintf(why, why_size, "message lacks \"%s\"", json_string_value(needle));
      ok = false;
    }
  }
  json_array_foreach(json_object_get(expect, "message_excludes"), i, needle) {
    if (ok && strstr(d->message, json_string_value(needle)) != NULL) {
      snprintf(why, why_size, "message discloses \"%s\"", json_string_value(needle));
      ok = false;
    }
  }
  const json_t *retry = json_object_get(expect, "retry_live");
  if (ok && retry != NULL && d->retry_live != json_is_true(retry)) {
    snprintf(why, why_size, "retry_live %d", d->retry_live);
    ok = false;
  }
  const json_t *writer = json_object_get(expect, "writer");
  if (ok && writer != NULL && strcmp(lf_writer_name(d->writer), json_string_value(writer)) != 0) {
    snprintf(why, why_size, "writer %s", lf_writer_name(d->writer));
    ok = false;
  }
  const json_t *disclosed = json_object_get(expect, "lease_disclosed");
  if (ok && disclosed != NULL && d->lease_disclosed != json_is_true(disclosed)) {
    snprintf(why, why_size, "lease_disclosed %d", d->lease_disclosed);
    ok = false;
  }
  json_decref(review);
  return ok;
}

static void run_case(void **state) {
  const json_t *c = *state;
  const json_t *expect = json_object_get(c, "expect");
  json_t *review = lft_review(json_object_get(c, "request"));
  lf_request req;
  lf_lease lease;
  lf_lease_view view;
  lf_decision d, again;
  lf_error err = {0};
  lft_policy p;
  char why[256];

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

  case_view(c, &lease, &view);
  lft_policy_from_json(&p, json_object_get(c, "policy"));
  int64_t now = lft_time(json_string_value(json_object_get(c, "now")));
  const char *want = json_string_value(json_object_get(expect, "reason"));

  if (!decide_case(c, &d, why, sizeof(why))) {
    fail_msg("%s\n  message: %s", why, d.message);
  }
  const json_t *lease_ref = json_object_get(expect, "lease");
  if (lease_ref != NULL) {
    char got[LF_NAMESPACE_MAX + LF_NAME_MAX + 2];
    snprintf(got, sizeof(got), "%s/%s", d.lease.ns, d.lease.name);
    assert_string_equal(got, json_string_value(lease_ref));
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

/* The two-step API: what needs_lease decides, it decides exactly as the
 * whole decision does, whatever the Lease; otherwise it names the guarding
 * Lease, the one the whole decision reports. */
static void test_needs_lease_consistent(void **state) {
  (void)state;
  json_t *vectors = lft_load_vectors("decisions.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(vectors, "cases"), i, c) {
    const json_t *expect = json_object_get(c, "expect");
    if (json_object_get(expect, "review_error") != NULL) {
      continue;
    }
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *review = lft_review(json_object_get(c, "request"));
    lf_request req;
    lf_error err;
    lf_lease_ref ref;
    lf_decision first, whole, blind;
    lf_lease lease;
    lf_lease_view view;
    lft_policy p;
    int64_t now = lft_time(json_string_value(json_object_get(c, "now")));
    assert_int_equal(lf_request_from_review(review, &req, &err), LF_OK);
    lft_policy_from_json(&p, json_object_get(c, "policy"));
    case_view(c, &lease, &view);
    lf_decide(&req, &view, now, &p.policy, &whole);
    if (lf_decide_needs_lease(&req, &p.policy, &ref, &first) == 0) {
      lf_decide(&req, NULL, now, &p.policy, &blind);
      if (first.reason != whole.reason || first.allowed != whole.allowed ||
          strcmp(first.message, whole.message) != 0 || blind.reason != whole.reason) {
        fail_msg("%s: the first step decided %s, the whole decision %s", name,
                 lf_reason_name(first.reason), lf_reason_name(whole.reason));
      }
    } else if (strcmp(ref.ns, whole.lease.ns) != 0 || strcmp(ref.name, whole.lease.name) != 0) {
      fail_msg("%s: the first step names %s/%s, the decision %s/%s", name, ref.ns, ref.name,
               whole.lease.ns, whole.lease.name);
    }
    json_decref(review);
  }
  json_decref(vectors);
}

/* Mutation check: with any one rule of the table switched off, some vector
 * is decided otherwise. A rule no vector needs is a rule no test holds. */
static void test_every_rule_needed(void **state) {
  (void)state;
  json_t *vectors = lft_load_vectors("decisions.json");
  const char *names[64];
  size_t n = lf__decide_rule_names(names, 64);
  assert_true(n > 15);
  for (size_t r = 0; r < n; r++) {
    const json_t *c;
    size_t i;
    const char *caught = NULL;
    lf__decide_disabled = names[r];
    json_array_foreach(json_object_get(vectors, "cases"), i, c) {
      lf_decision d;
      char why[256];
      if (json_object_get(json_object_get(c, "expect"), "review_error") != NULL) {
        continue;
      }
      if (!decide_case(c, &d, why, sizeof(why))) {
        caught = json_string_value(json_object_get(c, "name"));
        break;
      }
    }
    lf__decide_disabled = NULL;
    if (caught == NULL) {
      fail_msg("switching off rule %s fails no vector", names[r]);
    }
    print_message("rule %-24s switched off: caught by \"%s\"\n", names[r], caught);
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
                    .username = "u",
                    .field_manager = stamp};
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
  assert_string_equal(lf_reason_name(LF_R_UNBOUND_HOLDER), "UnboundHolder");
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
  assert_int_equal(p.default_fencing, LF_FENCING_STAMP);
  assert_int_equal(p.skew_us, 2000000);
  assert_false(p.admit_when_unavailable);
  assert_false(p.deny_unstamped);
  assert_int_equal(p.n_exempt_groups, 0);
  /* 44 controller service accounts, kube-controller-manager, kube-scheduler. */
  assert_int_equal(p.n_exempt_users, 46);
}

int main(void) {
  json_t *vectors = lft_load_vectors("decisions.json");
  const json_t *cases = json_object_get(vectors, "cases");
  size_t n = json_array_size(cases);
  struct CMUnitTest *tests = calloc(n, sizeof(*tests));
  int failed;

  if (tests == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }

  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(cases, i);
    tests[i].name = json_string_value(json_object_get(c, "name"));
    tests[i].test_func = run_case;
    tests[i].initial_state = c;
  }
  failed = _cmocka_run_group_tests("decision vectors", tests, n, NULL, NULL);

  const struct CMUnitTest direct[] = {
      cmocka_unit_test(test_needs_lease_consistent),
      cmocka_unit_test(test_every_rule_needed),
      cmocka_unit_test(test_message_bounded_with_long_holders),
      cmocka_unit_test(test_reason_names_stable),
      cmocka_unit_test(test_policy_defaults),
  };
  failed += cmocka_run_group_tests(direct, NULL, NULL);
  free(tests);
  json_decref(vectors);
  return failed;
}
