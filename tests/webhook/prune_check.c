/*
 * prune_check.c: the scanner must refuse exactly what jansson refuses (but
 * for the documented exceptions), and the library must read the same request
 * from the projection as from the whole body.
 */
#include "prune_check.h"

#include "buf.h"
#include "prune.h"

#include <jansson.h>
#include <leasefence/fencing.h>
#include <stdio.h>
#include <string.h>

static bool str_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

static bool same_meta(const lf_object_meta *a, const lf_object_meta *b) {
  return a->present == b->present && str_eq(a->ns, b->ns) &&
         str_eq(a->lease_annotation, b->lease_annotation) &&
         str_eq(a->stamp_annotation, b->stamp_annotation) &&
         a->lease_annotation_len == b->lease_annotation_len &&
         a->stamp_annotation_len == b->stamp_annotation_len;
}

static bool same_request(const lf_request *a, const lf_request *b) {
  size_t i;

  if (!str_eq(a->uid, b->uid) || a->op != b->op || !str_eq(a->group, b->group) ||
      !str_eq(a->resource, b->resource) || !str_eq(a->subresource, b->subresource) ||
      !str_eq(a->kind, b->kind) || !str_eq(a->ns, b->ns) || !str_eq(a->name, b->name) ||
      a->dry_run != b->dry_run || !str_eq(a->field_manager, b->field_manager) ||
      !str_eq(a->username, b->username) || a->n_groups != b->n_groups ||
      !str_eq(a->pod_name, b->pod_name))
    return false;
  for (i = 0; i < a->n_groups; i++)
    if (!str_eq(a->groups[i], b->groups[i]))
      return false;
  return same_meta(&a->object, &b->object) && same_meta(&a->old_object, &b->old_object);
}

const char *prune_check(const char *in, size_t len, prune_check_stats *stats) {
  static char why[512];
  const char *res = NULL;
  lfw_buf out;
  json_error_t jerr;
  json_t *whole = NULL;
  json_t *pruned = NULL;
  lf_request ra;
  lf_request rb;
  lf_error ea;
  lf_error eb;
  int rc;
  int ca;
  int cb;

  lfw_buf_init(&out, len);
  rc = lfw_prune_review(in, len, &out);
  whole = json_loadb(in, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  stats->checked++;
  if (rc == LFW_PRUNE_INVALID) {
    /* jansson 2.14 skips a raw NUL byte after a literal or a number
     * ({"a":true<NUL>} loads); RFC 8259 allows one nowhere, and the API
     * server never sends one, so the scanner refusing it is right. */
    if (whole != NULL && memchr(in, '\0', len) == NULL)
      res = "the scanner refused a body jansson accepts";
    goto out;
  }
  if (rc != LFW_PRUNE_OK)
    goto out; /* Not an object at the top: the whole body is parsed as it is. */
  if (out.len > len) {
    res = "the projection is longer than the body";
    goto out;
  }
  if (whole == NULL) {
    /* The documented exceptions, in a dropped part: a duplicate key, a
     * number too large for jansson, a NUL in a key, nesting deeper than
     * jansson's 2048 levels. */
    if (strstr(jerr.text, "duplicate") == NULL && strstr(jerr.text, "too big") == NULL &&
        strstr(jerr.text, "overflow") == NULL && strstr(jerr.text, "NUL byte") == NULL &&
        strstr(jerr.text, "depth") == NULL) {
      snprintf(why, sizeof why, "the scanner accepted a body jansson refuses: %s", jerr.text);
      res = why;
    }
    goto out;
  }
  pruned = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (pruned == NULL) {
    snprintf(why, sizeof why, "the projection does not parse: %s", jerr.text);
    res = why;
    goto out;
  }
  stats->accepted++;
  memset(&ea, 0, sizeof ea);
  memset(&eb, 0, sizeof eb);
  ca = lf_request_from_review(whole, &ra, &ea);
  cb = lf_request_from_review(pruned, &rb, &eb);
  if (ca != cb || strcmp(ea.text, eb.text) != 0)
    res = "the library reads the projection differently (error)";
  else if (ca == LF_OK && !same_request(&ra, &rb))
    res = "the library reads the projection differently (fields)";
out:
  json_decref(pruned);
  json_decref(whole);
  lfw_buf_free(&out);
  return res;
}

int prune_check_lease_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                          lf_lease *out, lf_error *err) {
  (void)ctx;
  (void)flags;
  (void)deadline_us;
  (void)err;
  memset(out, 0, sizeof *out);
  out->ref = *ref;
  snprintf(out->uid, sizeof out->uid, "11111111-1111-4111-8111-111111111111");
  snprintf(out->holder, sizeof out->holder, "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001");
  out->duration_s = 15;
  out->transitions = 3;
  out->renew_us = 1767225600000000LL;
  out->acquire_us = LF_TIME_NONE;
  return LF_OK;
}

int64_t prune_check_clock(void) {
  return 1767225605000000LL;
}
