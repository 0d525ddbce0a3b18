/*
 * test_webhook_review.c: the review path (webhook/src/review.c) in process.
 *
 * Every case of tests/vectors/decisions.json goes through lfw_review_handle
 * with its own Lease, policy and fixed "now", served by a stub Lease source,
 * and the AdmissionReview that comes out is checked against the case. Then
 * the enforcement modes, warnings, and malformed reviews.
 */
#include "testutil.h"

#include "buf.h"
#include "config.h"
#include "lease_source.h"
#include "log.h"
#include "prune.h"
#include "review.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stub source answers from one vector case. */
typedef struct stub {
  const json_t *c;
  int calls;
  int live_calls;
} stub;

static int stub_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                    lf_lease *out, lf_error *err) {
  stub *s = ctx;
  const char *status = json_string_value(json_object_get(s->c, "lease_status"));
  const char *cause = json_string_value(json_object_get(s->c, "lease_cause"));

  (void)ref;
  (void)deadline_us;
  s->calls++;
  if (flags & LFW_LEASE_LIVE)
    s->live_calls++;
  if (strcmp(status, "not_found") == 0)
    return LF_ENOTFOUND;
  if (strcmp(status, "unavailable") == 0) {
    err->code = LF_EIO;
    snprintf(err->text, sizeof err->text, "%s", cause != NULL ? cause : "connection refused");
    return LF_EIO;
  }
  assert_int_equal(lf_lease_from_json(json_object_get(s->c, "lease"), out, err), LF_OK);
  return LF_OK;
}

static bool stub_ready(void *ctx, char *why, size_t why_size) {
  (void)ctx;
  (void)why;
  (void)why_size;
  return true;
}

typedef struct answer {
  lfw_review_result res;
  json_t *body; /* Parsed JSON answer, or NULL for text. */
  char *text;
} answer;

static void answer_free(answer *a) {
  json_decref(a->body);
  free(a->text);
  memset(a, 0, sizeof *a);
}

/* The decision time of the review being run: reviews carry a vector's
 * fixed "now", handed to the review path as its clock. */
static int64_t fixed_now;

static int64_t fixed_clock(void) {
  return fixed_now;
}

/* Runs one review body through the handler and checks the answer is well
 * formed: valid JSON with the AdmissionReview shape, or plain text. With
 * `compare_whole`, parsing the whole body must answer the same (it cannot
 * where a dropped part holds what only the scanner takes: prune.h). */
static void run_ex(const lfw_review_env *env, const char *body, size_t len, int64_t now, answer *a,
                   bool compare_whole) {
  lfw_buf out;
  lfw_buf whole;
  lfw_buf scratch;
  lfw_review_result res_whole;
  json_error_t jerr;

  memset(a, 0, sizeof *a);
  lfw_buf_init(&out, 64 * 1024);
  lfw_buf_init(&whole, 64 * 1024);
  lfw_buf_init(&scratch, len);
  lfw_review_env timed = *env;
  fixed_now = now;
  timed.clock = fixed_clock;
  lfw_review_handle(&timed, body, len, &scratch, &out, &a->res);
  assert_false(out.overflow);
  assert_non_null(out.data);
  /* The pruned parse (prune.h) answers exactly as parsing the whole body,
   * and so does a projection the caller made (as the server does). */
  if (compare_whole) {
    lfw_review_handle(&timed, body, len, NULL, &whole, &res_whole);
    assert_string_equal(out.data, whole.data);
    assert_memory_equal(&a->res, &res_whole, sizeof res_whole);
    lfw_buf_reset(&scratch);
    bool pruned = lfw_prune_review(body, len, &scratch) == LFW_PRUNE_OK;
    lfw_review_handle_pruned(&timed, body, len, pruned ? &scratch : NULL, &whole, &res_whole);
    assert_string_equal(out.data, whole.data);
    assert_memory_equal(&a->res, &res_whole, sizeof res_whole);
  }
  lfw_buf_free(&whole);
  lfw_buf_free(&scratch);
  a->text = strdup(out.data);
  if (a->res.json) {
    assert_int_equal(a->res.http_status, 200);
    a->body = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, &jerr);
    if (a->body == NULL)
      fail_msg("answer is not JSON (%s): %s", jerr.text, out.data);
    assert_string_equal(json_string_value(json_object_get(a->body, "apiVersion")),
                        "admission.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(a->body, "kind")), "AdmissionReview");
  } else {
    assert_int_equal(a->res.http_status, 400);
  }
  lfw_buf_free(&out);
}

static void run(const lfw_review_env *env, const char *body, size_t len, int64_t now, answer *a) {
  run_ex(env, body, len, now, a, true);
}

static void run_json(const lfw_review_env *env, const json_t *review, int64_t now, answer *a) {
  char *body = json_dumps(review, JSON_COMPACT);

  run(env, body, strlen(body), now, a);
  free(body);
}

static const json_t *resp(const answer *a) {
  return json_object_get(a->body, "response");
}

static const char *annotation(const answer *a, const char *key) {
  return json_string_value(json_object_get(json_object_get(resp(a), "auditAnnotations"), key));
}

static const char *status_message(const answer *a) {
  return json_string_value(json_object_get(json_object_get(resp(a), "status"), "message"));
}

static json_int_t status_code(const answer *a) {
  return json_integer_value(json_object_get(json_object_get(resp(a), "status"), "code"));
}

static void test_vectors(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *cases = json_object_get(root, "cases");
  size_t i;

  (void)state;
  assert_true(json_array_size(cases) > 0);
  for (i = 0; i < json_array_size(cases); i++) {
    const json_t *c = json_array_get(cases, i);
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *expect = json_object_get(c, "expect");
    const json_t *request = json_object_get(c, "request");
    const json_t *mc = json_object_get(expect, "message_contains");
    lft_policy p;
    stub s = {c, 0, 0};
    lfw_lease_source src = {
        .name = "stub", .ctx = &s, .get = stub_get, .ready = stub_ready, .caches = true};
    lfw_review_env env = {0};
    json_t *review = lft_review(request);
    answer a;
    const char *uid = json_string_value(json_object_get(request, "uid"));
    size_t k;

    lft_policy_from_json(&p, json_object_get(c, "policy"));
    env.policy = &p.policy;
    env.mode = LFW_MODE_DENY;
    env.source = &src;
    env.lease_timeout_us = 1000000;
    env.clock = NULL; /* run() gives each review its case's fixed time */
    print_message("case: %s\n", name);
    run_json(&env, review, lft_time(json_string_value(json_object_get(c, "now"))), &a);
    if (json_is_true(json_object_get(expect, "review_error"))) {
      /* With a uid: an AdmissionReview denying with 400; without: HTTP 400. */
      if (a.res.json) {
        assert_non_null(uid);
        assert_false(json_is_true(json_object_get(resp(&a), "allowed")));
        assert_int_equal(status_code(&a), 400);
        for (k = 0; k < json_array_size(mc); k++)
          assert_true(lft_contains(status_message(&a), json_string_value(json_array_get(mc, k))));
      } else {
        for (k = 0; k < json_array_size(mc); k++)
          assert_true(lft_contains(a.text, json_string_value(json_array_get(mc, k))));
      }
      assert_int_equal(a.res.decision, LFW_D_ERROR);
    } else if (json_is_false(json_object_get(c, "lease_live"))) {
      /* A case decided on a cached copy: the webhook reads live and decides
       * again, which the pure vector does not describe. */
      assert_true(a.res.json);
      assert_int_equal(s.live_calls, 3); /* Once per answer of run(). */
    } else {
      bool allowed = json_is_true(json_object_get(expect, "allowed"));
      const json_t *disclosed = json_object_get(expect, "lease_disclosed");
      const json_t *mexcl = json_object_get(expect, "message_excludes");

      assert_true(a.res.json);
      assert_string_equal(json_string_value(json_object_get(resp(&a), "uid")), uid);
      assert_int_equal(json_is_true(json_object_get(resp(&a), "allowed")), allowed);
      assert_string_equal(annotation(&a, "reason"),
                          json_string_value(json_object_get(expect, "reason")));
      if (json_object_get(expect, "lease") != NULL)
        assert_string_equal(annotation(&a, "lease"),
                            json_string_value(json_object_get(expect, "lease")));
      /* The audit annotations show no more of the Lease than the message.
       * (A case that states the requester's right to read the Lease stands
       * for a check this stub source does not make.) */
      if (json_object_get(c, "lease_disclose") != NULL) {
        disclosed = NULL;
        mexcl = NULL;
        mc = NULL;
      }
      if (json_is_false(disclosed)) {
        assert_null(annotation(&a, "lease-holder"));
        assert_null(annotation(&a, "lease-term"));
      } else if (json_is_true(disclosed)) {
        assert_non_null(annotation(&a, "lease-holder"));
      }
      for (k = 0; k < json_array_size(mexcl); k++)
        assert_false(lft_contains(status_message(&a), json_string_value(json_array_get(mexcl, k))));
      if (!allowed) {
        assert_int_equal(status_code(&a), 403);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(resp(&a), "status"), "reason")),
            "Forbidden");
        for (k = 0; k < json_array_size(mc); k++)
          assert_true(lft_contains(status_message(&a), json_string_value(json_array_get(mc, k))));
      }
      /* A decision that asks for a live read gets exactly one (run() answers
       * each review three times: pruned, whole, and pruned by the caller). */
      if (json_object_get(expect, "retry_live") != NULL)
        assert_int_equal(s.live_calls, json_is_true(json_object_get(expect, "retry_live")) ? 3 : 0);
      assert_true(s.live_calls <= 3);
      if (strcmp(json_string_value(json_object_get(expect, "reason")), "AdmittedUnavailable") ==
          0) {
        const json_t *w = json_object_get(resp(&a), "warnings");

        assert_int_equal(json_array_size(w), 1);
        for (k = 0; k < json_array_size(mc); k++)
          assert_true(lft_contains(json_string_value(json_array_get(w, 0)),
                                   json_string_value(json_array_get(mc, k))));
      } else {
        assert_null(json_object_get(resp(&a), "warnings"));
      }
    }
    answer_free(&a);
    json_decref(review);
  }
  json_decref(root);
}

/* Finds a vector case by name. */
static const json_t *find_case(const json_t *root, const char *name) {
  const json_t *cases = json_object_get(root, "cases");
  size_t i;

  for (i = 0; i < json_array_size(cases); i++)
    if (strcmp(json_string_value(json_object_get(json_array_get(cases, i), "name")), name) == 0)
      return json_array_get(cases, i);
  fail_msg("no vector named %s", name);
  return NULL;
}

static void run_case_in_mode(const json_t *c, lfw_mode mode, answer *a) {
  lft_policy p;
  static stub s;
  static lfw_lease_source src;
  lfw_review_env env = {0};
  json_t *review = lft_review(json_object_get(c, "request"));

  s.c = c;
  s.calls = 0;
  s.live_calls = 0;
  src = (lfw_lease_source){
      .name = "stub", .ctx = &s, .get = stub_get, .ready = stub_ready, .caches = true};
  lft_policy_from_json(&p, json_object_get(c, "policy"));
  env.policy = &p.policy;
  env.mode = mode;
  env.source = &src;
  env.lease_timeout_us = 1000000;
  env.clock = NULL; /* run() gives each review its case's fixed time */
  run_json(&env, review, lft_time(json_string_value(json_object_get(c, "now"))), a);
  json_decref(review);
}

static void test_modes(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *stale = find_case(root, "taken over: stale leader stamps its old term");
  const json_t *current = find_case(root, "current holder and term, update");
  answer a;
  const json_t *w;

  (void)state;
  /* warn: admitted, with the denial's message as a warning. */
  run_case_in_mode(stale, LFW_MODE_WARN, &a);
  assert_true(json_is_true(json_object_get(resp(&a), "allowed")));
  assert_null(json_object_get(resp(&a), "status"));
  w = json_object_get(resp(&a), "warnings");
  assert_int_equal(json_array_size(w), 1);
  assert_true(lft_contains(json_string_value(json_array_get(w, 0)), "warn mode"));
  assert_true(lft_contains(json_string_value(json_array_get(w, 0)), "StaleTerm"));
  assert_string_equal(annotation(&a, "not-enforced"), "warn");
  assert_string_equal(annotation(&a, "reason"), "StaleTerm");
  assert_int_equal(a.res.decision, LFW_D_WARNED);
  answer_free(&a);

  /* dry-run: admitted silently, counted as such. */
  run_case_in_mode(stale, LFW_MODE_DRY_RUN, &a);
  assert_true(json_is_true(json_object_get(resp(&a), "allowed")));
  assert_null(json_object_get(resp(&a), "warnings"));
  assert_string_equal(annotation(&a, "not-enforced"), "dry-run");
  assert_int_equal(a.res.decision, LFW_D_DRY_RUN);
  answer_free(&a);

  /* Allowed writes look the same in every mode. */
  run_case_in_mode(current, LFW_MODE_WARN, &a);
  assert_true(json_is_true(json_object_get(resp(&a), "allowed")));
  assert_null(json_object_get(resp(&a), "warnings"));
  assert_null(annotation(&a, "not-enforced"));
  assert_int_equal(a.res.decision, LFW_D_ALLOWED);
  answer_free(&a);
  json_decref(root);
}

/* A holder of 200 two-byte characters makes the message far longer than a
 * warning may be: the warning is cut to 256 characters at a boundary. */
static void test_warning_truncated(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  json_t *c = json_deep_copy(find_case(root, "taken over: stale leader stamps its old term"));
  json_t *spec = json_object_get(json_object_get(c, "lease"), "spec");
  char holder[512] = "";
  answer a;
  const char *w;
  size_t runes = 0;
  size_t i;

  (void)state;
  for (i = 0; i < 120; i++)
    strcat(holder, "\xc3\xa9"); /* é */
  json_object_set_new(spec, "holderIdentity", json_string(holder));
  run_case_in_mode(c, LFW_MODE_WARN, &a);
  w = json_string_value(json_array_get(json_object_get(resp(&a), "warnings"), 0));
  assert_non_null(w); /* jansson checked it is valid UTF-8. */
  for (i = 0; w[i] != '\0'; i++)
    if (((unsigned char)w[i] & 0xc0) != 0x80)
      runes++;
  assert_true(runes <= 256);
  assert_true(runes >= 200);
  answer_free(&a);
  json_decref(c);
  json_decref(root);
}

static void test_utf8_prefix(void **state) {
  (void)state;
  assert_int_equal(lfw_utf8_prefix("abc", 3, 2, 100), 2);
  assert_int_equal(lfw_utf8_prefix("\xc3\xa9\xc3\xa9", 4, 10, 3), 2);
  assert_int_equal(lfw_utf8_prefix("\xe2\x82\xac!", 4, 1, 100), 3);
  assert_int_equal(lfw_utf8_prefix("\xe2\x82", 2, 5, 100), 0); /* Cut sequence. */
}

static lfw_review_env plain_env(lf_policy *policy) {
  lfw_review_env env = {0};

  lf_policy_init(policy);
  env.policy = policy;
  env.mode = LFW_MODE_DENY;
  env.source = NULL;
  env.lease_timeout_us = 1000000;
  env.clock = NULL; /* run() gives each review its case's fixed time */
  return env;
}

#define TEXT_400(body, needle) expect_text_400(body, strlen(body), needle)

static void expect_text_400(const char *body, size_t len, const char *needle) {
  lf_policy policy;
  lfw_review_env env = plain_env(&policy);
  answer a;

  run(&env, body, len, 0, &a);
  assert_false(a.res.json);
  assert_int_equal(a.res.http_status, 400);
  if (!lft_contains(a.text, needle))
    fail_msg("answer \"%s\" does not say \"%s\"", a.text, needle);
  answer_free(&a);
}

static void test_malformed(void **state) {
  static const char deep_open[] = "[";
  char *deep;
  size_t i;
  const size_t depth = 100000;

  (void)state;
  TEXT_400("", "empty");
  TEXT_400("{\"apiVersion\":", "not valid JSON");
  TEXT_400("[1,2]", "not a JSON object");
  /* A duplicate key among the members the webhook reads. (In the parts it
   * drops, duplicates are not looked for: see prune.h.) */
  TEXT_400("{\"kind\":\"a\",\"kind\":\"b\"}", "duplicate object key");
  TEXT_400("{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\","
           "\"request\":{\"uid\":\"u\"}}",
           "only admission.k8s.io/v1");
  TEXT_400("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\",\"request\":{}}",
           "expected AdmissionReview");
  TEXT_400("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
           "\"request\":{\"uid\":\"\\u00ff\xff\"}}",
           "not valid JSON"); /* Invalid UTF-8. */
  TEXT_400("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "request");
  /* 100 000 levels of nesting: refused by the parser's depth limit, without
   * recursion trouble. */
  deep = malloc(2 * depth);
  assert_non_null(deep);
  for (i = 0; i < depth; i++) {
    deep[i] = deep_open[0];
    deep[2 * depth - 1 - i] = ']';
  }
  expect_text_400(deep, 2 * depth, "not valid JSON");
  free(deep);
}

/* Replaces the value at `path` (dot-separated) in a copy of the review. */
static json_t *with_value(const json_t *review, const char *path, json_t *value) {
  json_t *copy = json_deep_copy(review);
  json_t *node = copy;
  char buf[256];
  char *save = NULL;
  char *part;
  char *next;

  snprintf(buf, sizeof buf, "%s", path);
  part = strtok_r(buf, ".", &save);
  while (part != NULL) {
    next = strtok_r(NULL, ".", &save);
    if (next == NULL) {
      json_object_set_new(node, part, value);
      break;
    }
    node = json_object_get(node, part);
    assert_non_null(node);
    part = next;
  }
  return copy;
}

/* Every field the webhook reads, given each wrong JSON type: always a well
 * formed answer, never a crash; fields whose type is fixed are refused. */
static void test_wrong_types(void **state) {
  static const char *const fields[] = {
      "request.uid",
      "request.kind",
      "request.resource",
      "request.subResource",
      "request.name",
      "request.namespace",
      "request.operation",
      "request.userInfo",
      "request.userInfo.username",
      "request.userInfo.groups",
      "request.userInfo.extra",
      "request.object",
      "request.oldObject",
      "request.options",
      "request.dryRun",
      "request.object.metadata",
      "request.object.metadata.annotations",
      "request.oldObject.metadata",
      "request.kind.kind",
      "request.resource.resource",
      "request.resource.group",
      "request",
  };
  /* Fields that must be of one type, so any other type is an error. */
  static const char *const strict[] = {"request.uid", "request.operation", "request.dryRun",
                                       "request.userInfo.groups", "request"};
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *c = find_case(root, "current holder and term, update");
  json_t *review = lft_review(json_object_get(c, "request"));
  lf_policy policy;
  lfw_review_env env = plain_env(&policy);
  size_t f;
  int t;

  (void)state;
  for (f = 0; f < sizeof fields / sizeof fields[0]; f++) {
    for (t = 0; t < 5; t++) {
      json_t *v = t == 0   ? json_integer(42)
                  : t == 1 ? json_true()
                  : t == 2 ? json_array()
                  : t == 3 ? json_pack("{s:i}", "x", 1)
                           : json_string("x");
      json_t *bad = with_value(review, fields[f], v);
      answer a;
      size_t k;
      bool is_strict = false;

      run_json(&env, bad, 0, &a);
      for (k = 0; k < sizeof strict / sizeof strict[0]; k++)
        if (strcmp(strict[k], fields[f]) == 0)
          is_strict = true;
      /* A string where a string belongs is not a wrong type. */
      if (is_strict &&
          !(t == 4 && (strcmp(fields[f], "request.uid") == 0 ||
                       strcmp(fields[f], "request.operation") == 0)) &&
          !(t == 2 && strcmp(fields[f], "request.userInfo.groups") == 0) &&
          !(t == 1 && strcmp(fields[f], "request.dryRun") == 0)) {
        if (a.res.decision != LFW_D_ERROR)
          fail_msg("%s of JSON type %d was accepted: %s", fields[f], t, a.text);
      }
      if (a.res.json && a.res.decision == LFW_D_ERROR)
        assert_int_equal(status_code(&a), 400);
      answer_free(&a);
      json_decref(bad);
    }
  }
  json_decref(review);
  json_decref(root);
}

static void test_uid_echo(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *c = find_case(root, "not protected");
  json_t *review = lft_review(json_object_get(c, "request"));
  json_t *req = json_object_get(review, "request");
  lf_policy policy;
  lfw_review_env env = plain_env(&policy);
  answer a;

  (void)state;
  /* A uid with characters that need escaping comes back exactly. */
  json_object_set_new(req, "uid", json_string("a\"b\\c\u00e9-\x01"));
  run_json(&env, review, 0, &a);
  assert_true(a.res.json);
  assert_string_equal(json_string_value(json_object_get(resp(&a), "uid")), "a\"b\\c\u00e9-\x01");
  answer_free(&a);
  json_decref(review);
  json_decref(root);
}

/* /scale: the Scale object has no annotations, so the parent's are read
 * through the source and judged as oldObject's (docs/protocol.md, 4.2). */
typedef struct scale_stub {
  stub base;
  int rc;            /* What parent_metadata returns. */
  const char *lease; /* The parent's protection annotation, or NULL. */
  const char *stamp; /* The parent's stamp annotation, or NULL. */
  int parent_calls;
} scale_stub;

static int scale_parent_md(void *ctx, const char *group, const char *version, const char *resource,
                           const char *ns, const char *name, int64_t deadline_us, json_t **out,
                           lf_error *err) {
  scale_stub *s = ctx;
  (void)deadline_us;
  s->parent_calls++;
  assert_string_equal(group, "apps");
  assert_string_equal(version, "v1");
  assert_string_equal(resource, "deployments");
  assert_string_equal(ns, "default");
  assert_string_equal(name, "web");
  if (s->rc != LF_OK) {
    err->code = s->rc;
    snprintf(err->text, sizeof err->text, "HTTP 503 from the API server");
    return s->rc;
  }
  json_t *ann = json_object();
  if (s->lease != NULL)
    json_object_set_new(ann, LF_ANNOTATION_LEASE, json_string(s->lease));
  if (s->stamp != NULL)
    json_object_set_new(ann, LF_ANNOTATION_STAMP, json_string(s->stamp));
  *out = json_pack("{s:s, s:s, s:o}", "name", "web", "namespace", "default", "annotations", ann);
  return LF_OK;
}

static int scale_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                     lf_lease *out, lf_error *err) {
  return stub_get(&((scale_stub *)ctx)->base, ref, flags, deadline_us, out, err);
}

static void test_scale(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *c = find_case(root, "current holder and term, update");
  const char *stamp = json_string_value(json_object_get(
      json_object_get(
          json_object_get(json_object_get(json_object_get(c, "request"), "object"), "metadata"),
          "annotations"),
      LF_ANNOTATION_STAMP));
  int64_t now = lft_time(json_string_value(json_object_get(c, "now")));
  static const struct {
    int rc;
    const char *lease;
    const char *fm; /* fieldManager */
    bool with_parent_reader;
    const char *reason;
  } cases[] = {
      {LF_OK, "ctrl", "STAMP", true, "Current"},
      {LF_OK, "ctrl", "kubectl-scale", true, "MissingStamp"},
      {LF_OK, NULL, "kubectl-scale", true, "NotProtected"},
      {LF_EIO, "ctrl", "STAMP", true, "LeaseUnavailable"},
      {LF_OK, "ctrl", "STAMP", false, "LeaseUnavailable"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    scale_stub s = {.base = {c, 0, 0}, .rc = cases[i].rc, .lease = cases[i].lease, .stamp = stamp};
    lfw_lease_source src = {.name = "stub",
                            .ctx = &s,
                            .get = scale_get,
                            .ready = stub_ready,
                            .parent_metadata =
                                cases[i].with_parent_reader ? scale_parent_md : NULL};
    lf_policy policy;
    lfw_review_env env = plain_env(&policy);
    env.source = &src;
    json_t *scale = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i}}", "apiVersion", "autoscaling/v1",
                              "kind", "Scale", "metadata", "name", "web", "namespace", "default",
                              "spec", "replicas", 3);
    json_t *req =
        json_pack("{s:s, s:{s:s,s:s,s:s}, s:{s:s,s:s,s:s}, s:s, s:s, s:s, s:s, s:O, s:O, s:{s:s}, "
                  "s:{s:s, s:[s], s:{s:[s]}}}",
                  "uid", "u-scale", "kind", "group", "autoscaling", "version", "v1", "kind",
                  "Scale", "resource", "group", "apps", "version", "v1", "resource", "deployments",
                  "subResource", "scale", "namespace", "default", "name", "web", "operation",
                  "UPDATE", "object", scale, "oldObject", scale, "options", "fieldManager",
                  strcmp(cases[i].fm, "STAMP") == 0 ? stamp : cases[i].fm, "userInfo", "username",
                  "system:serviceaccount:default:ctrl", "groups", "system:serviceaccounts", "extra",
                  LF_EXTRA_POD_NAME, "ctrl-a");
    json_t *review = lft_review(req);
    answer a;
    run_json(&env, review, now, &a);
    assert_true(a.res.json);
    if (strcmp(annotation(&a, "reason"), cases[i].reason) != 0)
      fail_msg("case %zu: reason %s, want %s: %s", i, annotation(&a, "reason"), cases[i].reason,
               a.text);
    assert_int_equal(s.parent_calls, cases[i].with_parent_reader ? 3 : 0); /* run() asks thrice */
    if (cases[i].rc != LF_OK)
      assert_true(lft_contains(status_message(&a), "HTTP 503"));
    answer_free(&a);
    json_decref(review);
    json_decref(req);
    json_decref(scale);
  }
  json_decref(root);
}

/* `levels` nested arrays around a string, as JSON text. */
static char *nested(size_t levels) {
  char *t = malloc(2 * levels + 4);
  size_t i;

  assert_non_null(t);
  for (i = 0; i < levels; i++)
    t[i] = '[';
  memcpy(t + levels, "\"x\"", 3);
  for (i = 0; i < levels; i++)
    t[levels + 3 + i] = ']';
  t[2 * levels + 3] = '\0';
  return t;
}

/* A key of `n` bytes, as a JSON member with a string value. */
static char *long_key(size_t n) {
  char *t = malloc(n + 8);

  assert_non_null(t);
  t[0] = '"';
  memset(t + 1, 'k', n);
  memcpy(t + 1 + n, "\":\"v\"", 5);
  t[n + 6] = '\0';
  return t;
}

/* Runs the current-term update of the vectors with `data` (JSON text) as the
 * data of both objects, `ann` as the value of an unrelated annotation,
 * `extra` as one more userInfo.extra member and `group` as one more group,
 * and checks the answer is exactly the one without them. */
static void expect_same_answer(const char *data, const char *ann, const char *extra,
                               const char *group) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *c = find_case(root, "current holder and term, update");
  json_t *review = lft_review(json_object_get(c, "request"));
  json_t *req = json_object_get(review, "request");
  const char *objs[] = {"object", "oldObject"};
  lft_policy p;
  stub st = {c, 0, 0};
  lfw_lease_source src = {
      .name = "stub", .ctx = &st, .get = stub_get, .ready = stub_ready, .caches = true};
  lfw_review_env env = {
      .policy = NULL, .mode = LFW_MODE_DENY, .source = &src, .lease_timeout_us = 1000000};
  int64_t now = lft_time(json_string_value(json_object_get(c, "now")));
  answer base;
  answer a;
  char *text;
  char *next;
  size_t i;

  lft_policy_from_json(&p, json_object_get(c, "policy"));
  env.policy = &p.policy;
  run_json(&env, review, now, &base);
  assert_true(json_is_true(json_object_get(resp(&base), "allowed")));
  for (i = 0; i < 2; i++) {
    json_t *obj = json_object_get(req, objs[i]);

    json_object_set_new(obj, "data", json_string("@DATA@"));
    json_object_set_new(json_object_get(json_object_get(obj, "metadata"), "annotations"),
                        "example.com/other", json_string("@ANN@"));
  }
  json_object_set_new(json_object_get(json_object_get(req, "userInfo"), "extra"), "@EXTRA@",
                      json_null());
  json_array_append_new(json_object_get(json_object_get(req, "userInfo"), "groups"),
                        json_string("@GROUP@"));
  const char *const edits[][2] = {
      {"\"@DATA@\"", data}, {"\"@DATA@\"", data},   {"\"@ANN@\"", ann},
      {"\"@ANN@\"", ann},   {"\"@GROUP@\"", group}, {"\"@EXTRA@\":null", extra},
  };
  text = json_dumps(review, JSON_COMPACT);
  for (i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    next = lft_splice(text, edits[i][0], edits[i][1]);
    free(text);
    text = next;
  }
  run_ex(&env, text, strlen(text), now, &a, false);
  if (strcmp(a.text, base.text) != 0)
    fail_msg("a legal object was answered\n%.500s\ninstead of\n%.500s", a.text, base.text);
  answer_free(&a);
  answer_free(&base);
  free(text);
  json_decref(review);
  json_decref(root);
}

/* Every string, number, key and nesting the API server can send in a part
 * fencing does not read is accepted, and changes nothing. */
static void test_legal_objects(void **state) {
  static const char *const datas[] = {
      "{\"k\":\"a\\u0000b\"}", /* NUL in a value */
      "{\"a\\u0000b\":\"v\"}", /* NUL in a key */
      "{\"k\":\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \xe2\x80\xa8 \\u2028 \xc3\xa9\"}", /* UTF-8 */
      "{\"k\":123456789012345678901234567890123456789}", /* beyond int64 */
      "{\"k\":1e400,\"l\":-1e-400,\"m\":-0.0e+0}",       /* beyond double */
      "{\"k\":[],\"l\":{},\"m\":[{}],\"n\":\"\"}",
  };
  char *deep = nested(9990);
  char *deep_data = NULL;
  char *key = long_key(300 * 1024);
  char *key_data = NULL;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof datas / sizeof datas[0]; i++)
    expect_same_answer(datas[i], "\"x\"", "\"x\":[\"y\"]", "\"g\"");
  /* Nesting as deep as the API server's decoder allows (10 000 levels). */
  deep_data = malloc(strlen(deep) + 8);
  assert_non_null(deep_data);
  sprintf(deep_data, "{\"d\":%s}", deep);
  expect_same_answer(deep_data, "\"x\"", "\"x\":[\"y\"]", "\"g\"");
  key_data = malloc(strlen(key) + 3);
  assert_non_null(key_data);
  sprintf(key_data, "{%s}", key);
  expect_same_answer(key_data, "\"x\"", "\"x\":[\"y\"]", "\"g\"");
  /* NUL in an unrelated annotation, in another authenticator's extra key
   * and value, and in a group (which then exempts nobody). */
  expect_same_answer("{\"k\":\"\\u0000\"}", "\"a\\u0000b\"",
                     "\"example.com/a\\u0000b\":[\"c\\u0000d\"]", "\"g\\u0000h\"");
  free(key_data);
  free(key);
  free(deep_data);
  free(deep);
}

/* Sets member `key` of the object at `parent` (dot-separated; "" is the
 * review) to raw JSON text, and runs the review. */
static void run_with_raw(const char *case_name, const char *parent, const char *key,
                         const char *raw, answer *a) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *c = find_case(root, case_name);
  json_t *review = lft_review(json_object_get(c, "request"));
  json_t *node = review;
  lf_policy policy;
  lfw_review_env env = plain_env(&policy);
  char buf[256];
  char *save = NULL;
  char *part;
  char *text;
  char *spliced;

  snprintf(buf, sizeof buf, "%s", parent);
  for (part = strtok_r(buf, ".", &save); part != NULL; part = strtok_r(NULL, ".", &save)) {
    node = json_object_get(node, part);
    assert_non_null(node);
  }
  json_object_set_new(node, key, json_string("@RAW@"));
  text = json_dumps(review, JSON_COMPACT);
  spliced = lft_splice(text, "\"@RAW@\"", raw);
  run(&env, spliced, strlen(spliced), 0, a);
  free(spliced);
  free(text);
  json_decref(review);
  json_decref(root);
}

/* The strings of the request fencing reads whole are refused with a NUL in
 * them, each with a message naming it (docs/protocol.md, section 11). The
 * object's annotations are not among them: their NUL is the decision's to
 * judge (the vectors "... holds a NUL ..."), so an exempt writer is never
 * refused for it. */
static void test_nul_where_read(void **state) {
  static const struct {
    const char *parent;
    const char *key;
    const char *says;
  } cases[] = {
      {"request.userInfo", "username", "request.userInfo.username contains a NUL"},
      {"request", "name", "request.name contains a NUL"},
      {"request", "namespace", "request.namespace contains a NUL"},
      {"request.options", "fieldManager", "request.options.fieldManager contains a NUL"},
      {"request", "operation", "request.operation must be"},
  };
  size_t i;
  answer a;

  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_with_raw("current holder and term, update", cases[i].parent, cases[i].key,
                 "\"ctrl\\u0000x\"", &a);
    assert_true(a.res.json);
    assert_int_equal(a.res.decision, LFW_D_ERROR);
    assert_int_equal(status_code(&a), 400);
    if (!lft_contains(status_message(&a), cases[i].says))
      fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].key, status_message(&a), cases[i].says);
    answer_free(&a);
  }
  /* The uid cannot be echoed with a NUL in it: plain-text 400. */
  run_with_raw("current holder and term, update", "request", "uid", "\"u\\u0000v\"", &a);
  assert_false(a.res.json);
  assert_true(lft_contains(a.text, "request.uid"));
  answer_free(&a);
  /* "admission.k8s.io/v1" followed by a NUL is not v1. */
  run_with_raw("current holder and term, update", "", "apiVersion",
               "\"admission.k8s.io/v1\\u0000\"", &a);
  assert_int_equal(a.res.decision, LFW_D_ERROR);
  answer_free(&a);
}

/* A uid far beyond the API server's gets a clear 400, never a 500 for an
 * answer that does not fit. */
static void test_uid_bound(void **state) {
  char *uid = malloc(100 * 1024 + 3);
  answer a;

  (void)state;
  assert_non_null(uid);
  uid[0] = '"';
  memset(uid + 1, 'u', 100 * 1024);
  strcpy(uid + 1 + 100 * 1024, "\"");
  run_with_raw("current holder and term, update", "request", "uid", uid, &a);
  assert_false(a.res.json);
  assert_int_equal(a.res.http_status, 400);
  assert_true(lft_contains(a.text, "request.uid is 102400 bytes; at most 64"));
  answer_free(&a);
  /* 64 bytes are echoed. */
  memset(uid + 1, 'u', 64);
  strcpy(uid + 65, "\"");
  run_with_raw("current holder and term, update", "request", "uid", uid, &a);
  assert_true(a.res.json);
  assert_int_equal((int)strlen(json_string_value(json_object_get(resp(&a), "uid"))), 64);
  answer_free(&a);
  free(uid);
}

/* An object in another namespace than the request's is refused, not judged
 * with a bare Lease name resolved against either namespace. */
static void test_namespace_mismatch(void **state) {
  answer a;

  (void)state;
  run_with_raw("current holder and term, update", "request.object.metadata", "namespace",
               "\"other\"", &a);
  assert_int_equal(a.res.decision, LFW_D_ERROR);
  assert_true(lft_contains(status_message(&a), "request.object.metadata.namespace is \"other\" "
                                               "but request.namespace is \"default\""));
  answer_free(&a);
  run_with_raw("current holder and term, update", "request.oldObject.metadata", "namespace",
               "\"other\"", &a);
  assert_int_equal(a.res.decision, LFW_D_ERROR);
  assert_true(lft_contains(status_message(&a), "request.oldObject.metadata.namespace"));
  answer_free(&a);
  /* A cluster-scoped request with a namespaced object. */
  run_with_raw("current holder and term, update", "request", "namespace", "\"\"", &a);
  assert_int_equal(a.res.decision, LFW_D_ERROR);
  answer_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),           cmocka_unit_test(test_modes),
      cmocka_unit_test(test_warning_truncated), cmocka_unit_test(test_utf8_prefix),
      cmocka_unit_test(test_malformed),         cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_uid_echo),          cmocka_unit_test(test_scale),
      cmocka_unit_test(test_legal_objects),     cmocka_unit_test(test_nul_where_read),
      cmocka_unit_test(test_uid_bound),         cmocka_unit_test(test_namespace_mismatch),
  };

  lfw_log_level = LFW_LOG_ERROR; /* Keep the test output to the results. */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
