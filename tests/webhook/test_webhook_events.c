/*
 * test_webhook_events.c: denials as Events (webhook/src/events.h), without a
 * network: the record built from a review, the token bucket and the series
 * table driven by a fake clock, the request bodies, the bounded queue, and
 * which answers of the review path report an Event.
 */
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "review.h"

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S 1000000LL           /* One second in µs. */
#define T0 (1767225600LL * S) /* 2026-01-01T00:00:00Z: the fake clock's start. */

/* The record the review path would build for `request` and a decision with
 * `reason` and `message`. */
static void denial_of(const json_t *request, lf_reason reason, const char *message, int64_t now,
                      lfw_event_denial *d) {
  json_t *review = lft_review(request);
  lf_request req;
  lf_decision dec;
  lf_error err;

  assert_int_equal(lf_request_from_review(review, &req, &err), LF_OK);
  memset(&dec, 0, sizeof dec);
  dec.reason = reason;
  snprintf(dec.message, sizeof dec.message, "%s", message);
  lfw_events_denial_from(&req, &dec, json_object_get(review, "request"), now, d);
  json_decref(review);
}

static void simple_denial(const char *name, const char *reason_user, int64_t now,
                          lfw_event_denial *d) {
  json_t *r = lft_unstamped_update(name, "uid-1");

  if (reason_user != NULL)
    json_object_set_new(json_object_get(r, "userInfo"), "username", json_string(reason_user));
  denial_of(r, LF_R_STALE_TERM, "leasefence denied it (StaleTerm): stop writing.", now, d);
  json_decref(r);
}

/* ------------------------------------------------------------------------ */
/* The record                                                                */

static void test_denial_fields(void **state) {
  json_t *r = lft_unstamped_update("shard-map", "0b4a-uid");
  lfw_event_denial d;

  (void)state;
  denial_of(r, LF_R_STALE_TERM, "leasefence denied the UPDATE (StaleTerm): stop.", T0, &d);
  assert_string_equal(d.action, "UPDATE");
  assert_string_equal(d.reason, "StaleTerm");
  assert_string_equal(d.api_version, "v1");
  assert_string_equal(d.kind, "ConfigMap");
  assert_string_equal(d.ns, "team");
  assert_string_equal(d.name, "shard-map");
  assert_string_equal(d.uid, "0b4a-uid");
  assert_string_equal(d.username, "system:serviceaccount:team:ctrl");
  assert_string_equal(d.pod_ns, "team");
  assert_string_equal(d.pod, "ctrl-7d9f");
  assert_string_equal(d.note, "leasefence denied the UPDATE (StaleTerm): stop. Writer: "
                              "system:serviceaccount:team:ctrl (pod team/ctrl-7d9f).");
  assert_true(d.at_us == T0);
  json_decref(r);
}

static void test_denial_create_has_no_uid(void **state) {
  json_t *r = lft_unstamped_update("new", "u");
  lfw_event_denial d;

  (void)state;
  /* At admission a CREATE's object already has a uid, which the denial
   * discards: the Event must not name it. */
  json_object_set_new(r, "operation", json_string("CREATE"));
  json_object_del(r, "oldObject");
  json_object_set_new(json_object_get(json_object_get(r, "object"), "metadata"), "uid",
                      json_string("discarded"));
  denial_of(r, LF_R_MISSING_STAMP, "no stamp", T0, &d);
  assert_string_equal(d.action, "CREATE");
  assert_string_equal(d.uid, "");
  json_decref(r);
}

static void test_denial_person_and_group(void **state) {
  json_t *r = lft_unstamped_update("d", "u");
  json_t *ui = json_object_get(r, "userInfo");
  lfw_event_denial d;

  (void)state;
  json_object_set_new(ui, "username", json_string("alice@example.com"));
  json_object_del(ui, "extra");
  json_object_set_new(
      r, "kind",
      json_pack("{s:s,s:s,s:s}", "group", "apps", "version", "v1", "kind", "Deployment"));
  json_object_set_new(
      r, "resource",
      json_pack("{s:s,s:s,s:s}", "group", "apps", "version", "v1", "resource", "deployments"));
  json_object_set_new(r, "subResource", json_string("status"));
  denial_of(r, LF_R_MISSING_STAMP, "m.", T0, &d);
  assert_string_equal(d.api_version, "apps/v1");
  assert_string_equal(d.kind, "Deployment");
  assert_string_equal(d.pod, "");
  assert_string_equal(d.note, "m. Writer: alice@example.com.");
  json_decref(r);
}

static void test_denial_scale_names_the_parent(void **state) {
  json_t *r = lft_unstamped_update("web", "parent-uid");
  lfw_event_denial d;

  (void)state;
  /* A /scale write carries an autoscaling/v1 Scale; the Event is about the
   * Deployment, which kubectl describe selects by kind. */
  json_object_set_new(
      r, "kind",
      json_pack("{s:s,s:s,s:s}", "group", "autoscaling", "version", "v1", "kind", "Scale"));
  json_object_set_new(
      r, "resource",
      json_pack("{s:s,s:s,s:s}", "group", "apps", "version", "v1", "resource", "deployments"));
  json_object_set_new(r, "subResource", json_string("scale"));
  denial_of(r, LF_R_MISSING_STAMP, "m", T0, &d);
  assert_string_equal(d.api_version, "apps/v1");
  assert_string_equal(d.kind, "Deployment");
  assert_string_equal(d.uid, "parent-uid");
  json_decref(r);
}

static void test_denial_note_fits(void **state) {
  json_t *r = lft_unstamped_update("x", "u");
  char message[LF_MESSAGE_MAX];
  char user[600];
  lfw_event_denial d;
  size_t i;
  const char *w;

  (void)state;
  /* A message of 1023 bytes of two-byte characters and a long username:
   * the note stays within 1 KiB, cut at a character, writer whole. */
  for (i = 0; i + 2 < sizeof message; i += 2)
    memcpy(message + i, "\xc3\xa9", 2);
  message[i] = '\0';
  memset(user, 'u', sizeof user - 1);
  user[sizeof user - 1] = '\0';
  json_object_set_new(json_object_get(r, "userInfo"), "username", json_string(user));
  denial_of(r, LF_R_STALE_TERM, message, T0, &d);
  assert_true(strlen(d.note) <= LFW_EVENTS_NOTE_MAX);
  assert_int_equal(strlen(d.username), LFW_EVENTS_USER_MAX);
  w = strstr(d.note, "... Writer: uuuu");
  assert_non_null(w);
  assert_true(((w - d.note) % 2) == 0); /* No half character before the cut. */
  assert_string_equal(d.note + strlen(d.note) - 2, "u.");
  json_decref(r);
}

static void test_denial_keeps_another_namespace_lease_to_the_writer(void **state) {
  json_t *request = lft_unstamped_update("cm", "u");
  json_t *review = lft_review(request);
  lf_request req;
  lf_decision dec;
  lf_error err;
  lfw_event_denial d;

  (void)state;
  assert_int_equal(lf_request_from_review(review, &req, &err), LF_OK);
  memset(&dec, 0, sizeof dec);
  dec.reason = LF_R_STALE_TERM;
  dec.protected_ = true;
  snprintf(dec.message, sizeof dec.message, "held by \"ctrl-b\" in term 4");
  snprintf(dec.lease.ns, sizeof dec.lease.ns, "ops");
  snprintf(dec.lease.name, sizeof dec.lease.name, "ctrl");
  /* Not disclosed, or the Lease in the object's namespace: the message. */
  lfw_events_denial_from(&req, &dec, json_object_get(review, "request"), T0, &d);
  assert_true(lft_contains(d.note, "ctrl-b"));
  dec.lease_disclosed = true;
  snprintf(dec.lease.ns, sizeof dec.lease.ns, "team");
  lfw_events_denial_from(&req, &dec, json_object_get(review, "request"), T0, &d);
  assert_true(lft_contains(d.note, "ctrl-b"));
  /* Disclosed to the writer, of another namespace: not in the Event. */
  snprintf(dec.lease.ns, sizeof dec.lease.ns, "ops");
  lfw_events_denial_from(&req, &dec, json_object_get(review, "request"), T0, &d);
  assert_false(lft_contains(d.note, "ctrl-b"));
  assert_string_equal(d.note,
                      "leasefence denied the UPDATE of configmaps team/cm (StaleTerm); the Lease "
                      "ops/ctrl is in another namespace, so the details went to the writer only. "
                      "Writer: system:serviceaccount:team:ctrl (pod team/ctrl-7d9f).");
  json_decref(review);
  json_decref(request);
}

/* ------------------------------------------------------------------------ */
/* Token bucket                                                              */

static void test_bucket(void **state) {
  lfw_events_bucket b;
  int i;

  (void)state;
  lfw_events_bucket_init(&b, 2, 3, T0);
  for (i = 0; i < 3; i++)
    assert_true(lfw_events_bucket_take(&b, T0));
  assert_false(lfw_events_bucket_take(&b, T0));
  /* Two a second: the next token at +0.5 s, not a microsecond earlier. */
  assert_true(lfw_events_bucket_ready_at(&b, T0) == T0 + S / 2);
  assert_false(lfw_events_bucket_take(&b, T0 + S / 2 - 1));
  assert_true(lfw_events_bucket_take(&b, T0 + S / 2));
  assert_false(lfw_events_bucket_take(&b, T0 + S / 2));
  /* A long pause fills it to the burst, no more. */
  for (i = 0; i < 3; i++)
    assert_true(lfw_events_bucket_take(&b, T0 + 3600 * S));
  assert_false(lfw_events_bucket_take(&b, T0 + 3600 * S));
  /* A clock that steps back gives nothing and takes nothing. */
  assert_false(lfw_events_bucket_take(&b, T0));
  assert_true(lfw_events_bucket_ready_at(&b, T0) == T0 + S / 2);
}

/* ------------------------------------------------------------------------ */
/* Series table                                                              */

#define INTERVAL (10 * S)
#define WINDOW (360 * S)

static void test_table_aggregates_per_object_reason_writer(void **state) {
  lfw_events_table t;
  lfw_event_denial a;
  lfw_event_denial d;

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 8, INTERVAL, WINDOW), 0);
  simple_denial("a", NULL, T0, &a);
  assert_int_equal(lfw_events_table_add(&t, &a, T0), LFW_EVENTS_NEW);
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + 1), LFW_EVENTS_AGGREGATED);
  /* Another object, another writer, another reason, another uid (the object
   * re-created): each its own series. */
  simple_denial("b", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 2), LFW_EVENTS_NEW);
  simple_denial("a", "alice", T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 3), LFW_EVENTS_NEW);
  d = a;
  snprintf(d.reason, sizeof d.reason, "LeaseExpired");
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 4), LFW_EVENTS_NEW);
  d = a;
  snprintf(d.uid, sizeof d.uid, "uid-2");
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 5), LFW_EVENTS_NEW);
  /* The note and action are not part of the key. */
  d = a;
  snprintf(d.action, sizeof d.action, "DELETE");
  snprintf(d.note, sizeof d.note, "other words");
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 6), LFW_EVENTS_AGGREGATED);
  lfw_events_table_free(&t);
}

/* Sends everything due at `now` as if the API server took it; returns the
 * number of requests. */
static int drain(lfw_events_table *t, lfw_events_bucket *b, int64_t now, int *creates, int *patches,
                 int64_t *wake) {
  size_t idx;
  uint32_t count;
  lfw_events_verb v;
  int n = 0;

  while ((v = lfw_events_table_next(t, b, now, &idx, &count, wake)) != LFW_EVENTS_NONE) {
    if (v == LFW_EVENTS_CREATE)
      (*creates)++;
    else
      (*patches)++;
    lfw_events_table_sent(t, idx, v, count, LFW_EVENTS_OK, now);
    n++;
  }
  return n;
}

static void test_table_series_spacing_and_window(void **state) {
  lfw_events_table t;
  lfw_events_bucket b;
  lfw_event_denial a;
  size_t idx = 0;
  uint32_t count = 0;
  int64_t wake = 0;
  int creates = 0;
  int patches = 0;
  int i;

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 8, INTERVAL, WINDOW), 0);
  lfw_events_bucket_init(&b, 100, 100, T0);
  simple_denial("a", NULL, T0, &a);
  assert_int_equal(lfw_events_table_add(&t, &a, T0), LFW_EVENTS_NEW);
  assert_int_equal(lfw_events_table_next(&t, &b, T0, &idx, &count, &wake), LFW_EVENTS_CREATE);
  assert_int_equal(count, 1);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_CREATE, count, LFW_EVENTS_OK, T0);
  /* Nothing moved: nothing to send, no reason to wake. */
  assert_int_equal(lfw_events_table_next(&t, &b, T0, &idx, &count, &wake), LFW_EVENTS_NONE);
  assert_true(wake == INT64_MAX);
  /* A controller retrying 100 times a second for 30 s: one create, then one
   * PATCH per interval, the last one with the whole count. */
  for (i = 1; i <= 3000; i++) {
    int64_t now = T0 + (int64_t)i * S / 100;

    assert_int_equal(lfw_events_table_add(&t, &a, now), LFW_EVENTS_AGGREGATED);
    drain(&t, &b, now, &creates, &patches, &wake);
  }
  assert_int_equal(creates, 0);
  assert_int_equal(patches, 3); /* At +10 s, +20 s, +30 s. */
  assert_int_equal(t.slots[idx].sent, 3001);
  assert_true(t.slots[idx].last_us == T0 + 30 * S);
  /* One more denial: due an interval after the last send. */
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + 31 * S), LFW_EVENTS_AGGREGATED);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 31 * S, &idx, &count, &wake),
                   LFW_EVENTS_NONE);
  assert_true(wake == T0 + 40 * S);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 40 * S, &idx, &count, &wake),
                   LFW_EVENTS_PATCH);
  assert_int_equal(count, 3002);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_PATCH, count, LFW_EVENTS_OK, T0 + 40 * S);
  /* Quiet for less than the window: still the same series. After it: a new
   * Event, under a new name. */
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + 31 * S + WINDOW - 1), LFW_EVENTS_AGGREGATED);
  drain(&t, &b, T0 + 31 * S + WINDOW, &creates, &patches, &wake);
  {
    char old_name[sizeof t.slots[0].event_name];

    memcpy(old_name, t.slots[idx].event_name, sizeof old_name);
    assert_int_equal(lfw_events_table_add(&t, &a, T0 + 31 * S + 2 * WINDOW), LFW_EVENTS_NEW);
    assert_int_equal(lfw_events_table_next(&t, &b, T0 + 31 * S + 2 * WINDOW, &idx, &count, &wake),
                     LFW_EVENTS_CREATE);
    assert_int_equal(count, 1);
    assert_string_not_equal(t.slots[idx].event_name, old_name);
  }
  lfw_events_table_free(&t);
}

static void test_table_rate_limit(void **state) {
  lfw_events_table t;
  lfw_events_bucket b;
  lfw_event_denial d;
  char name[16];
  int64_t wake = 0;
  int creates = 0;
  int patches = 0;
  int i;

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 64, INTERVAL, WINDOW), 0);
  /* One a second, bursts of 5; 20 objects denied at once. */
  lfw_events_bucket_init(&b, 1, 5, T0);
  for (i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "obj-%02d", i);
    simple_denial(name, NULL, T0, &d);
    assert_int_equal(lfw_events_table_add(&t, &d, T0), LFW_EVENTS_NEW);
  }
  assert_int_equal(drain(&t, &b, T0, &creates, &patches, &wake), 5);
  assert_true(wake == T0 + S);
  /* Then one a second, in the order they came. */
  for (i = 1; i <= 15; i++) {
    size_t idx;
    uint32_t count;

    assert_int_equal(lfw_events_table_next(&t, &b, T0 + i * S - 1, &idx, &count, &wake),
                     LFW_EVENTS_NONE);
    assert_int_equal(lfw_events_table_next(&t, &b, T0 + i * S, &idx, &count, &wake),
                     LFW_EVENTS_CREATE);
    snprintf(name, sizeof name, "obj-%02d", 4 + i);
    assert_string_equal(t.slots[idx].first.name, name);
    lfw_events_table_sent(&t, idx, LFW_EVENTS_CREATE, count, LFW_EVENTS_OK, T0 + i * S);
  }
  assert_int_equal(creates, 5);
  lfw_events_table_free(&t);
}

static void test_table_full(void **state) {
  lfw_events_table t;
  lfw_events_bucket b;
  lfw_event_denial d;
  int64_t wake = 0;
  int creates = 0;
  int patches = 0;
  size_t idx;
  uint32_t count;

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 2, INTERVAL, WINDOW), 0);
  lfw_events_bucket_init(&b, 100, 100, T0);
  simple_denial("a", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0), LFW_EVENTS_NEW);
  simple_denial("b", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 1), LFW_EVENTS_NEW);
  /* Neither created yet: nothing may be forgotten, the third is dropped. */
  simple_denial("c", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 2), LFW_EVENTS_FULL);
  drain(&t, &b, T0 + 3, &creates, &patches, &wake);
  assert_int_equal(creates, 2);
  /* "b" seen again, then "c" takes the slot of "a", the least recently
   * seen series the API server has whole. */
  simple_denial("b", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 4), LFW_EVENTS_AGGREGATED);
  simple_denial("c", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 5), LFW_EVENTS_NEW);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 6, &idx, &count, &wake), LFW_EVENTS_CREATE);
  assert_string_equal(t.slots[idx].first.name, "c");
  assert_string_equal(t.slots[1 - idx].first.name, "b");
  /* "b" has a count the API server lacks: it is not a victim either. */
  simple_denial("d", NULL, T0, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, T0 + 7), LFW_EVENTS_FULL);
  lfw_events_table_free(&t);
}

static void test_table_outcomes(void **state) {
  lfw_events_table t;
  lfw_events_bucket b;
  lfw_event_denial a;
  size_t idx;
  uint32_t count;
  int64_t wake;
  char old_name[LF_NAME_MAX + 1];

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 4, INTERVAL, WINDOW), 0);
  lfw_events_bucket_init(&b, 100, 100, T0);
  simple_denial("a", NULL, T0, &a);
  /* A failed create forgets the series: the next denial starts over. */
  assert_int_equal(lfw_events_table_add(&t, &a, T0), LFW_EVENTS_NEW);
  assert_int_equal(lfw_events_table_next(&t, &b, T0, &idx, &count, &wake), LFW_EVENTS_CREATE);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_CREATE, count, LFW_EVENTS_FAILED, T0);
  assert_int_equal(lfw_events_table_next(&t, &b, T0, &idx, &count, &wake), LFW_EVENTS_NONE);
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + 1), LFW_EVENTS_NEW);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 1, &idx, &count, &wake), LFW_EVENTS_CREATE);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_CREATE, count, LFW_EVENTS_OK, T0 + 1);
  /* A PATCH answered 404 (the Event expired): created anew, with the whole
   * count as its series, under another name. */
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + 2), LFW_EVENTS_AGGREGATED);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + INTERVAL + 1, &idx, &count, &wake),
                   LFW_EVENTS_PATCH);
  assert_int_equal(count, 2);
  memcpy(old_name, t.slots[idx].event_name, sizeof old_name);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_PATCH, count, LFW_EVENTS_GONE, T0 + INTERVAL + 1);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + INTERVAL + 2, &idx, &count, &wake),
                   LFW_EVENTS_CREATE);
  assert_int_equal(count, 2);
  assert_string_not_equal(t.slots[idx].event_name, old_name);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_CREATE, count, LFW_EVENTS_OK, T0 + INTERVAL + 2);
  /* A failed PATCH is not retried: the count counts as sent. */
  assert_int_equal(lfw_events_table_add(&t, &a, T0 + INTERVAL + 3), LFW_EVENTS_AGGREGATED);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 3 * INTERVAL, &idx, &count, &wake),
                   LFW_EVENTS_PATCH);
  lfw_events_table_sent(&t, idx, LFW_EVENTS_PATCH, count, LFW_EVENTS_FAILED, T0 + 3 * INTERVAL);
  assert_int_equal(lfw_events_table_next(&t, &b, T0 + 5 * INTERVAL, &idx, &count, &wake),
                   LFW_EVENTS_NONE);
  lfw_events_table_free(&t);
}

/* ------------------------------------------------------------------------ */
/* Request bodies                                                            */

static bool dns_subdomain(const char *s) {
  size_t n = strlen(s);
  size_t i;

  if (n == 0 || n > 253)
    return false;
  for (i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

    if (!alnum && c != '-' && c != '.')
      return false;
    if (!alnum && (i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.'))
      return false;
  }
  return true;
}

static void test_format_create(void **state) {
  lfw_events_table t;
  lfw_event_denial d;
  lfw_buf out;
  json_t *ev;
  json_t *reg;
  json_error_t jerr;

  (void)state;
  assert_int_equal(lfw_events_table_init(&t, 2, INTERVAL, WINDOW), 0);
  simple_denial("Shard_Map", NULL, T0 + 123456, &d);
  assert_int_equal(lfw_events_table_add(&t, &d, d.at_us), LFW_EVENTS_NEW);
  lfw_buf_init(&out, LFW_EVENTS_BODY_MAX);
  assert_int_equal(lfw_events_format_create(&t.slots[0], 1, "webhook-0", &out), 0);
  ev = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, &jerr);
  assert_non_null(ev);
  assert_string_equal(json_string_value(json_object_get(ev, "apiVersion")), "events.k8s.io/v1");
  assert_string_equal(json_string_value(json_object_get(ev, "kind")), "Event");
  assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
  assert_string_equal(json_string_value(json_object_get(ev, "reason")), "StaleTerm");
  assert_string_equal(json_string_value(json_object_get(ev, "action")), "UPDATE");
  assert_string_equal(json_string_value(json_object_get(ev, "eventTime")),
                      "2026-01-01T00:00:00.123456Z");
  assert_string_equal(json_string_value(json_object_get(ev, "reportingController")),
                      "leasefence.io/webhook");
  assert_string_equal(json_string_value(json_object_get(ev, "reportingInstance")), "webhook-0");
  assert_string_equal(json_string_value(json_object_get(ev, "note")), d.note);
  assert_null(json_object_get(ev, "series"));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(ev, "metadata"), "namespace")), "team");
  assert_true(
      dns_subdomain(json_string_value(json_object_get(json_object_get(ev, "metadata"), "name"))));
  assert_true(strncmp(t.slots[0].event_name, "shard-map.", 10) == 0);
  reg = json_object_get(ev, "regarding");
  assert_string_equal(json_string_value(json_object_get(reg, "apiVersion")), "v1");
  assert_string_equal(json_string_value(json_object_get(reg, "kind")), "ConfigMap");
  assert_string_equal(json_string_value(json_object_get(reg, "namespace")), "team");
  assert_string_equal(json_string_value(json_object_get(reg, "name")), "Shard_Map");
  assert_string_equal(json_string_value(json_object_get(reg, "uid")), "uid-1");
  reg = json_object_get(ev, "related");
  assert_string_equal(json_string_value(json_object_get(reg, "kind")), "Pod");
  assert_string_equal(json_string_value(json_object_get(reg, "name")), "ctrl-7d9f");
  json_decref(ev);

  /* With a count of 2 or more the create carries its series; a PATCH
   * carries the series alone. */
  lfw_buf_reset(&out);
  t.slots[0].last_us = T0 + 5 * S;
  assert_int_equal(lfw_events_format_create(&t.slots[0], 7, "w", &out), 0);
  ev = json_loadb(out.data, out.len, 0, &jerr);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "series"), "count")), 7);
  json_decref(ev);
  lfw_buf_reset(&out);
  assert_int_equal(lfw_events_format_patch(&t.slots[0], 9, &out), 0);
  assert_string_equal(
      out.data, "{\"series\":{\"count\":9,\"lastObservedTime\":\"2026-01-01T00:00:05.000000Z\"}}");
  lfw_buf_free(&out);
  lfw_events_table_free(&t);
}

static void test_format_cluster_scoped_and_odd_names(void **state) {
  static const char *const names[] = {"system:controller:x", "-..-", "", "a.b.c", "UPPER.lower"};
  char longname[LF_NAME_MAX + 1];
  lfw_events_table t;
  lfw_event_denial d;
  size_t i;

  (void)state;
  memset(longname, 'x', LF_NAME_MAX);
  longname[LF_NAME_MAX] = '\0';
  assert_int_equal(lfw_events_table_init(&t, 8, INTERVAL, WINDOW), 0);
  for (i = 0; i <= sizeof names / sizeof names[0]; i++) {
    simple_denial(i < sizeof names / sizeof names[0] ? names[i] : longname, NULL, T0, &d);
    d.ns[0] = '\0';
    assert_int_equal(lfw_events_table_add(&t, &d, T0), LFW_EVENTS_NEW);
    assert_string_equal(lfw_events_namespace(&d), "default");
  }
  for (i = 0; i < t.cap; i++)
    if (t.slots[i].used && !dns_subdomain(t.slots[i].event_name))
      fail_msg("not a DNS subdomain: \"%s\"", t.slots[i].event_name);
  lfw_events_table_free(&t);
}

/* ------------------------------------------------------------------------ */
/* The queue and the review path                                             */

static void test_queue_full_drops_and_counts(void **state) {
  lfw_events *ev = lfw_events_new(NULL, NULL);
  lfw_event_denial d;
  uint64_t dropped = lfw_metrics_event_value(LFW_EV_DROPPED_QUEUE_FULL);
  int i;

  (void)state;
  assert_non_null(ev);
  simple_denial("a", NULL, T0, &d);
  /* No sender thread: nothing drains the queue. */
  for (i = 0; i < LFW_EVENTS_QUEUE_MAX; i++)
    assert_true(lfw_events_report(ev, &d));
  assert_int_equal(lfw_events_pending(ev), LFW_EVENTS_QUEUE_MAX);
  assert_false(lfw_events_report(ev, &d));
  assert_false(lfw_events_report(ev, &d));
  assert_int_equal(lfw_metrics_event_value(LFW_EV_DROPPED_QUEUE_FULL), dropped + 2);
  assert_int_equal(lfw_events_pending(ev), LFW_EVENTS_QUEUE_MAX);
  /* Events off: reporting is a no-op. */
  assert_false(lfw_events_report(NULL, &d));
  lfw_events_free(&ev);
  assert_null(ev);
  lfw_events_free(&ev);
}

static int64_t fixed_clock(void) {
  return T0;
}

/* Runs `request` through the review path with no Lease source (so a
 * protected write is denied LeaseUnavailable) and returns how many Events
 * it queued. */
static size_t reported(lfw_mode mode, const json_t *request, bool *allowed) {
  lf_policy policy;
  lfw_review_env env = {0};
  lfw_events *ev = lfw_events_new(NULL, NULL);
  json_t *review = lft_review(request);
  char *body = json_dumps(review, JSON_COMPACT);
  lfw_buf out;
  lfw_review_result res;
  size_t n;

  lf_policy_init(&policy);
  env.policy = &policy;
  env.mode = mode;
  env.lease_timeout_us = 1000000;
  env.clock = fixed_clock;
  env.events = ev;
  lfw_buf_init(&out, 64 * 1024);
  lfw_review_handle(&env, body, strlen(body), NULL, &out, &res);
  *allowed = res.allowed;
  n = lfw_events_pending(ev);
  lfw_buf_free(&out);
  free(body);
  json_decref(review);
  lfw_events_free(&ev);
  return n;
}

static void test_review_reports_denials_only(void **state) {
  json_t *r = lft_unstamped_update("cm", "u");
  bool allowed;

  (void)state;
  assert_int_equal(reported(LFW_MODE_DENY, r, &allowed), 1);
  assert_false(allowed);
  /* A dry run is denied alike, and leaves no Event. */
  json_object_set_new(r, "dryRun", json_true());
  assert_int_equal(reported(LFW_MODE_DENY, r, &allowed), 0);
  assert_false(allowed);
  json_object_set_new(r, "dryRun", json_false());
  /* Not enforced, so not a denial. */
  assert_int_equal(reported(LFW_MODE_WARN, r, &allowed), 0);
  assert_true(allowed);
  assert_int_equal(reported(LFW_MODE_DRY_RUN, r, &allowed), 0);
  /* Admitted: an unprotected object. */
  json_object_del(json_object_get(json_object_get(r, "object"), "metadata"), "annotations");
  json_object_del(json_object_get(json_object_get(r, "oldObject"), "metadata"), "annotations");
  assert_int_equal(reported(LFW_MODE_DENY, r, &allowed), 0);
  assert_true(allowed);
  json_decref(r);
}

static void test_requester_kinds(void **state) {
  static const struct {
    const char *user;
    lf_writer writer;
    lfw_requester want;
  } cases[] = {
      {"system:serviceaccount:team:ctrl", LF_WRITER_CONTROLLER, LFW_REQ_GUARDED_CONTROLLER},
      {"alice", LF_WRITER_CONTROLLER, LFW_REQ_GUARDED_CONTROLLER},
      {"system:serviceaccount:kube-system:deployment-controller", LF_WRITER_EXEMPT,
       LFW_REQ_KUBERNETES},
      {"system:kube-controller-manager", LF_WRITER_EXEMPT, LFW_REQ_KUBERNETES},
      {"system:kube-scheduler", LF_WRITER_EXEMPT, LFW_REQ_KUBERNETES},
      {"ops@example.com", LF_WRITER_EXEMPT, LFW_REQ_EXEMPT},
      {"system:serviceaccount:argocd:argocd-application-controller", LF_WRITER_OTHER,
       LFW_REQ_SERVICE_ACCOUNT},
      {"alice@example.com", LF_WRITER_OTHER, LFW_REQ_PERSON},
      {"kubernetes-admin", LF_WRITER_OTHER, LFW_REQ_PERSON},
      {"system:node:node-1", LF_WRITER_OTHER, LFW_REQ_SYSTEM},
      {"system:serviceaccount:team:ctrl", LF_WRITER_UNKNOWN, LFW_REQ_SERVICE_ACCOUNT},
      {"bob", LF_WRITER_UNKNOWN, LFW_REQ_PERSON},
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lf_request req;
    lf_decision dec;

    memset(&req, 0, sizeof req);
    memset(&dec, 0, sizeof dec);
    req.username = cases[i].user;
    dec.writer = cases[i].writer;
    if (lfw_requester_of(&req, &dec) != cases[i].want)
      fail_msg("%s (%s): requester %d, want %d", cases[i].user, lf_writer_name(cases[i].writer),
               (int)lfw_requester_of(&req, &dec), (int)cases[i].want);
  }
}

/* The review path counts each decision by reason and requester. */
static void test_decisions_metric(void **state) {
  json_t *r = lft_unstamped_update("cm", "u");
  lfw_buf page;
  char series[256];
  bool allowed;
  lf_request req;
  lf_decision dec;
  json_t *review = lft_review(r);
  lf_error err;
  lf_lease_ref ref;
  const char *line;
  double before = 0;

  (void)state;
  /* The same decision the review path will make, for its reason. */
  assert_int_equal(lf_request_from_review(review, &req, &err), LF_OK);
  {
    lf_policy policy;
    lf_lease_view view = {.status = LF_LEASE_UNAVAILABLE, .cause = "no Lease source is configured"};

    lf_policy_init(&policy);
    memset(&dec, 0, sizeof dec);
    if (lf_decide_needs_lease(&req, &policy, &ref, &dec) == 1)
      lf_decide(&req, &view, T0, &policy, &dec);
  }
  assert_false(dec.allowed);
  snprintf(series, sizeof series,
           "leasefence_decisions_total{verdict=\"denied\",reason=\"%s\","
           "requester=\"guarded-controller\"} ",
           lf_reason_name(dec.reason));
  lfw_buf_init(&page, 1 << 20);
  assert_int_equal(lfw_metrics_render(&page), 0);
  line = strstr(page.data, series);
  if (line != NULL)
    before = strtod(line + strlen(series), NULL);
  assert_int_equal(reported(LFW_MODE_DENY, r, &allowed), 1);
  lfw_buf_reset(&page);
  assert_int_equal(lfw_metrics_render(&page), 0);
  line = strstr(page.data, series);
  if (line == NULL)
    fail_msg("no %s in\n%s", series, page.data);
  assert_true(strtod(line + strlen(series), NULL) == before + 1);
  lfw_buf_free(&page);
  json_decref(review);
  json_decref(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_denial_fields),
      cmocka_unit_test(test_denial_create_has_no_uid),
      cmocka_unit_test(test_denial_person_and_group),
      cmocka_unit_test(test_denial_scale_names_the_parent),
      cmocka_unit_test(test_denial_note_fits),
      cmocka_unit_test(test_denial_keeps_another_namespace_lease_to_the_writer),
      cmocka_unit_test(test_bucket),
      cmocka_unit_test(test_table_aggregates_per_object_reason_writer),
      cmocka_unit_test(test_table_series_spacing_and_window),
      cmocka_unit_test(test_table_rate_limit),
      cmocka_unit_test(test_table_full),
      cmocka_unit_test(test_table_outcomes),
      cmocka_unit_test(test_format_create),
      cmocka_unit_test(test_format_cluster_scoped_and_odd_names),
      cmocka_unit_test(test_queue_full_drops_and_counts),
      cmocka_unit_test(test_review_reports_denials_only),
      cmocka_unit_test(test_requester_kinds),
      cmocka_unit_test(test_decisions_metric),
  };

  lfw_log_level = -1; /* The review path logs denials; not wanted here. */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
