/*
 * review.c: AdmissionReview in, lf_request, decision, AdmissionReview out.
 *
 * The response is written by hand into a reusable buffer rather than built as
 * a jansson tree: it has a fixed shape, and this keeps the hot path to the
 * allocations of parsing the request.
 */
#include "review.h"

#include "log.h"
#include "prune.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define REVIEW_API_VERSION "admission.k8s.io/v1"
#define REVIEW_KIND "AdmissionReview"

/* A plain-text 400 for a body that is not a usable v1 AdmissionReview and
 * whose uid could not be read: the API server cannot match an answer to its
 * request without the uid, so an AdmissionReview would be no better. */
static void answer_text_400(lfw_buf *out, lfw_review_result *res, const char *msg) {
  lfw_buf_reset(out);
  lfw_buf_puts(out, "leasefence: ");
  lfw_buf_puts(out, msg);
  lfw_buf_puts(out, "\n");
  res->http_status = 400;
  res->json = false;
  res->decision = LFW_D_ERROR;
  res->reason = LFW_R_INVALID_REVIEW;
  res->allowed = false;
  lfw_log_json(LFW_LOG_INFO, "invalid review", json_pack("{s:s}", "error", msg));
}

static void begin_response(lfw_buf *out, const char *uid, bool allowed) {
  lfw_buf_reset(out);
  lfw_buf_puts(out, "{\"apiVersion\":\"" REVIEW_API_VERSION "\",\"kind\":\"" REVIEW_KIND
                    "\",\"response\":{\"uid\":");
  lfw_json_cstring(out, uid);
  lfw_buf_puts(out, allowed ? ",\"allowed\":true" : ",\"allowed\":false");
}

static void put_status(lfw_buf *out, int code, const char *reason, const char *msg) {
  lfw_buf_printf(
      out, ",\"status\":{\"metadata\":{},\"status\":\"Failure\",\"code\":%d,\"reason\":", code);
  lfw_json_cstring(out, reason);
  lfw_buf_puts(out, ",\"message\":");
  lfw_json_cstring(out, msg);
  lfw_buf_puts(out, "}");
}

/* A plain-text 500 when memory ran out: the review was not judged, and a
 * 400 would blame the request. (With failurePolicy Fail the API server
 * refuses the write; a retry may find memory.) If even this answer cannot be
 * written, `out` is left overflowed and the HTTP layer answers 500 itself. */
static void answer_oom(lfw_buf *out, lfw_review_result *res) {
  lfw_buf_reset(out);
  lfw_buf_puts(out, "leasefence: out of memory; the review was not judged, retry\n");
  res->http_status = 500;
  res->json = false;
  res->decision = LFW_D_ERROR;
  res->reason = LFW_R_OUT_OF_MEMORY;
  res->allowed = false;
  lfw_log_json(LFW_LOG_ERROR, "out of memory answering a review", NULL);
}

/* An AdmissionReview denying with code 400: the body was readable far enough
 * to find the uid, but something in it is wrong. */
static void answer_review_400(lfw_buf *out, lfw_review_result *res, const char *uid,
                              const char *msg) {
  char text[LF_ERROR_TEXT_MAX + 64];

  snprintf(text, sizeof text, "leasefence: malformed AdmissionReview: %s", msg);
  begin_response(out, uid, false);
  put_status(out, 400, "BadRequest", text);
  lfw_buf_puts(out, "}}");
  res->http_status = 200;
  res->json = true;
  res->decision = LFW_D_ERROR;
  res->reason = LFW_R_INVALID_REVIEW;
  res->allowed = false;
  lfw_log_json(LFW_LOG_INFO, "invalid review", json_pack("{s:s,s:s}", "uid", uid, "error", msg));
}

/* Writes one warning, cut to what the API server accepts, with control
 * characters replaced so it stays a valid HTTP header value there. */
static void put_warning(lfw_buf *out, const char *prefix, const char *msg) {
  char text[LFW_WARNINGS_BYTES_MAX];
  size_t n;
  size_t i;

  snprintf(text, sizeof text, "%s%s", prefix, msg);
  n = lfw_utf8_prefix(text, strlen(text), LFW_WARNING_RUNES_MAX, sizeof text - 1);
  for (i = 0; i < n; i++)
    if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
      text[i] = ' ';
  lfw_buf_puts(out, ",\"warnings\":[");
  lfw_json_string(out, text, n);
  lfw_buf_puts(out, "]");
}

static void put_annotation(lfw_buf *out, bool *first, const char *key, const char *value) {
  lfw_buf_puts(out, *first ? "{" : ",");
  *first = false;
  lfw_json_cstring(out, key);
  lfw_buf_puts(out, ":");
  lfw_json_cstring(out, value);
}

/* Reads the guarding Lease into `view`. `lease` and `cause` back the view. */
static void lookup(const lfw_review_env *env, const lf_lease_ref *ref, unsigned flags,
                   int64_t deadline_us, lf_lease *lease, char *cause, size_t cause_size,
                   lf_lease_view *view) {
  lf_error err;
  int rc;

  memset(view, 0, sizeof *view);
  if (env->source == NULL || env->source->get == NULL) {
    view->status = LF_LEASE_UNAVAILABLE;
    snprintf(cause, cause_size, "no Lease source is configured");
    view->cause = cause;
    return;
  }
  memset(&err, 0, sizeof err);
  rc = env->source->get(env->source->ctx, ref, flags, deadline_us, lease, &err);
  if (rc == LF_OK) {
    view->status = LF_LEASE_OK;
    view->lease = lease;
    /* A source that never caches reads after the request arrived; a caching
     * one does so when asked to read live. */
    view->live = (flags & LFW_LEASE_LIVE) != 0 || !env->source->caches;
  } else if (rc == LF_ENOTFOUND) {
    view->status = LF_LEASE_NOT_FOUND;
  } else {
    view->status = LF_LEASE_UNAVAILABLE;
    snprintf(cause, cause_size, "%s", err.text[0] != '\0' ? err.text : "unknown error");
    view->cause = cause;
  }
}

/* Reads one of our annotations from the parent's metadata into `*dst`,
 * with the checks lf_request_from_review applies to the review's own. */
static int parent_annotation(const json_t *ann, const char *key, const char **dst, size_t *len,
                             char *why, size_t why_size) {
  const json_t *v = json_object_get(ann, key);
  *dst = NULL;
  *len = 0;
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_string(v) || json_string_length(v) > LF_ANNOTATION_MAX) {
    snprintf(why, why_size, "its %s annotation is not a string of at most %d bytes", key,
             LF_ANNOTATION_MAX);
    return -1;
  }
  /* A NUL in it is the decision's to judge, as on any object (lf_object_meta). */
  *dst = json_string_value(v);
  *len = json_string_length(v);
  return 0;
}

/* A write to /scale carries an autoscaling/v1 Scale whose metadata has none
 * of the parent's annotations (docs/protocol.md, 4.2), so the parent's are
 * read and stand in for oldObject's. `*parent` keeps them alive; the caller
 * json_decrefs it. 0, or -1 with `why` filled when they cannot be read: the
 * write is then refused, since its protection cannot be known. */
static int scale_parent(const lfw_review_env *env, lf_request *req, int64_t deadline_us,
                        json_t **parent, char *why, size_t why_size) {
  lf_error err;
  const json_t *ann;

  *parent = NULL;
  if (env->source == NULL || env->source->parent_metadata == NULL) {
    snprintf(why, why_size, "the Lease source \"%s\" cannot read the scaled object",
             env->source != NULL ? env->source->name : "(none)");
    return -1;
  }
  memset(&err, 0, sizeof err);
  if (env->source->parent_metadata(env->source->ctx, req->group, req->version, req->resource,
                                   req->ns, req->name, deadline_us, parent, &err) != LF_OK) {
    snprintf(why, why_size, "%s", err.text[0] != '\0' ? err.text : "unknown error");
    return -1;
  }
  ann = json_object_get(*parent, "annotations");
  if (parent_annotation(ann, LF_ANNOTATION_LEASE, &req->old_object.lease_annotation,
                        &req->old_object.lease_annotation_len, why, why_size) != 0 ||
      parent_annotation(ann, LF_ANNOTATION_STAMP, &req->old_object.stamp_annotation,
                        &req->old_object.stamp_annotation_len, why, why_size) != 0)
    return -1;
  req->old_object.present = true;
  req->old_object.ns = json_string_value(json_object_get(*parent, "namespace"));
  return 0;
}

static void log_decision(const lfw_review_env *env, const lf_request *req, const lf_decision *dec,
                         const lfw_review_result *res) {
  int level = dec->allowed ? LFW_LOG_DEBUG : LFW_LOG_INFO;
  char resource[512];
  char lease[LF_NAMESPACE_MAX + LF_NAME_MAX + 2] = "";
  json_t *f;

  if (!lfw_log_enabled(level))
    return;
  snprintf(resource, sizeof resource, "%s%s%s%s%s", req->group, req->group[0] ? "/" : "",
           req->resource, req->subresource[0] ? "/" : "", req->subresource);
  if (dec->protected_)
    snprintf(lease, sizeof lease, "%s/%s", dec->lease.ns, dec->lease.name);
  f = json_object();
  json_object_set_new(f, "uid", json_string(req->uid));
  json_object_set_new(f, "operation", json_string(lf_operation_name(req->op)));
  json_object_set_new(f, "resource", json_string(resource));
  json_object_set_new(f, "namespace", json_string(req->ns));
  json_object_set_new(f, "name", json_string(req->name));
  json_object_set_new(f, "lease", json_string(lease));
  json_object_set_new(f, "reason", json_string(lf_reason_name(dec->reason)));
  json_object_set_new(f, "message", json_string(dec->message));
  json_object_set_new(f, "allowed", json_boolean(res->allowed));
  json_object_set_new(f, "dry_run", json_boolean(req->dry_run));
  json_object_set_new(f, "mode", json_string(lfw_mode_name(env->mode)));
  lfw_log_json(level, dec->allowed ? "allowed" : "denied", f);
}

/* Parses the review: the pruned projection when it can be made, else (and
 * for the error message of a body that is not valid JSON) the whole body. */
static json_t *parse(const char *body, size_t len, lfw_buf *scratch, bool pruned,
                     json_error_t *jerr) {
  json_t *root = NULL;

  /* JSON_REJECT_DUPLICATES: a review with two "uid" or two "object" keys is
   * ambiguous, and reading the first while the API server used the last
   * would decide on the wrong data. JSON_ALLOW_NUL: "\u0000" is legal in any
   * string of an object; the library refuses it in the few strings it reads
   * whole (docs/protocol.md, section 11). jansson also rejects invalid UTF-8
   * and nesting deeper than 2048. */
  const size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;

  lf_json_watch_begin();
  if (scratch != NULL && (pruned || lfw_prune_review(body, len, scratch) == LFW_PRUNE_OK))
    root = json_loadb(scratch->data, scratch->len, flags, jerr);
  if (root == NULL && !lf_json_watch_failed())
    root = json_loadb(body, len, flags, jerr);
  /* A parse during which memory ran out may have lost bytes of a string
   * without saying so (fencing.h, "jansson's allocations"): an object whose
   * "leasefence.io/lease" key lost one would look unprotected. Not used. */
  if (lf_json_watch_failed()) {
    json_decref(root);
    root = NULL;
    memset(jerr, 0, sizeof *jerr);
    jerr->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
  }
  return root;
}

/* The time a decision is judged at, read after the lookup just made. */
static int64_t decision_time(const lfw_review_env *env) {
  return env->clock != NULL ? env->clock() : lfw_realtime_us();
}

/* lfw_review_handle and lfw_review_handle_pruned: `pruned` says that
 * `scratch` already holds the pruned review. */
static void handle(const lfw_review_env *env, const char *body, size_t len, lfw_buf *scratch,
                   bool pruned, lfw_buf *out, lfw_review_result *res) {
  json_error_t jerr;
  json_t *root = NULL;
  const json_t *request;
  const json_t *juid = NULL;
  const char *uid = NULL;
  const char *s;
  lf_request req;
  lf_error err;
  lf_decision dec;
  lf_lease_ref ref;
  lf_lease lease;
  lf_lease_view view;
  char cause[LF_ERROR_TEXT_MAX];
  char msg[LF_ERROR_TEXT_MAX + 128];
  char num[32];
  bool have_view = false;
  bool first = true;
  json_t *parent = NULL;
  /* One budget for every lookup of this review (the /scale parent, the
   * Lease, a live re-read), so together they stay inside the API server's
   * timeout for the webhook. */
  const int64_t deadline_us = lfw_monotonic_us() + env->lease_timeout_us;

  memset(res, 0, sizeof *res);
  res->op = LFW_OP_UNKNOWN;
  if (len == 0) {
    answer_text_400(out, res,
                    "the request body is empty; expected an admission.k8s.io/v1 AdmissionReview");
    goto out;
  }
  root = parse(body, len, scratch, pruned, &jerr);
  if (root == NULL && json_error_code(&jerr) == json_error_out_of_memory) {
    answer_oom(out, res);
    goto out;
  }
  if (root == NULL) {
    snprintf(msg, sizeof msg, "the body is not valid JSON (line %d, column %d): %s", jerr.line,
             jerr.column, jerr.text);
    answer_text_400(out, res, msg);
    goto out;
  }
  if (!json_is_object(root)) {
    answer_text_400(out, res,
                    "the body is not a JSON object; expected an admission.k8s.io/v1 "
                    "AdmissionReview");
    goto out;
  }
  s = json_string_value(json_object_get(root, "apiVersion"));
  if (s == NULL || strcmp(s, REVIEW_API_VERSION) != 0) {
    snprintf(msg, sizeof msg,
             "apiVersion is %s%.100s%s; this webhook serves only admission.k8s.io/v1 "
             "AdmissionReview (set admissionReviewVersions: [\"v1\"] in the webhook "
             "configuration)",
             s != NULL ? "\"" : "", s != NULL ? s : "missing or not a string",
             s != NULL ? "\"" : "");
    answer_text_400(out, res, msg);
    goto out;
  }
  s = json_string_value(json_object_get(root, "kind"));
  if (s == NULL || strcmp(s, REVIEW_KIND) != 0) {
    snprintf(msg, sizeof msg, "kind is %s%.100s%s; expected AdmissionReview", s != NULL ? "\"" : "",
             s != NULL ? s : "missing or not a string", s != NULL ? "\"" : "");
    answer_text_400(out, res, msg);
    goto out;
  }
  request = json_object_get(root, "request");
  if (json_is_object(request))
    juid = json_object_get(request, "uid");
  /* The uid is echoed only when it is one the API server could have sent:
   * an answer must fit its buffer, and a uid the API server did not send
   * matches none of its requests anyway. */
  if (json_is_string(juid) && json_string_length(juid) > LF_UID_MAX) {
    snprintf(msg, sizeof msg,
             "request.uid is %zu bytes; at most %d are accepted (the API server's uids are "
             "36-character UUIDs)",
             json_string_length(juid), LF_UID_MAX);
    answer_text_400(out, res, msg);
    goto out;
  }
  if (json_is_string(juid) && json_string_length(juid) > 0 &&
      strlen(json_string_value(juid)) == json_string_length(juid))
    uid = json_string_value(juid);

  memset(&err, 0, sizeof err);
  if (lf_request_from_review(root, &req, &err) != LF_OK) {
    if (uid != NULL)
      answer_review_400(out, res, uid, err.text);
    else
      answer_text_400(out, res, err.text[0] != '\0' ? err.text : "malformed AdmissionReview");
    goto out;
  }
  res->op = (req.op >= LF_OP_CREATE && req.op <= LF_OP_CONNECT) ? (int)req.op : LFW_OP_UNKNOWN;

  memset(&dec, 0, sizeof dec);
  if (strcmp(req.subresource, "scale") == 0 && req.op == LF_OP_UPDATE &&
      req.old_object.lease_annotation == NULL &&
      scale_parent(env, &req, deadline_us, &parent, cause, sizeof cause) != 0) {
    /* Fail closed: a write whose protection cannot be known is refused. */
    dec.allowed = false;
    dec.reason = LF_R_LEASE_UNAVAILABLE;
    snprintf(dec.message, sizeof dec.message,
             "leasefence denied the UPDATE of %s/scale %s/%s (LeaseUnavailable): the %s it scales "
             "could not be read to learn whether it is protected: %s. Writes through /scale "
             "are refused until it can be read; retry shortly.",
             req.resource, req.ns, req.name, "object", cause);
  } else if (lf_decide_needs_lease(&req, env->policy, &ref, &dec) == 1) {
    lookup(env, &ref, 0, deadline_us, &lease, cause, sizeof cause, &view);
    lf_decide(&req, &view, decision_time(env), env->policy, &dec);
    if (dec.retry_live && env->source != NULL && env->source->caches) {
      /* A fresher Lease could reverse this denial and the source may have
       * answered from a cache: read live once and decide again. */
      lookup(env, &ref, LFW_LEASE_LIVE, deadline_us, &lease, cause, sizeof cause, &view);
      lf_decide(&req, &view, decision_time(env), env->policy, &dec);
    }
    have_view = true;
  }

  res->http_status = 200;
  res->json = true;
  res->reason = (int)dec.reason;
  res->allowed = dec.allowed;
  if (dec.allowed)
    res->decision = LFW_D_ALLOWED;
  else if (env->mode == LFW_MODE_WARN)
    res->decision = LFW_D_WARNED;
  else if (env->mode == LFW_MODE_DRY_RUN)
    res->decision = LFW_D_DRY_RUN;
  else
    res->decision = LFW_D_DENIED;
  if (res->decision == LFW_D_WARNED || res->decision == LFW_D_DRY_RUN)
    res->allowed = true;

  lfw_metrics_decision(dec.allowed, res->reason, lfw_requester_of(&req, &dec));
  /* A dry run changes nothing, so it leaves no trace either (the webhook
   * configuration declares sideEffects: None). */
  if (res->decision == LFW_D_DENIED && !req.dry_run && env->events != NULL) {
    lfw_event_denial denial;

    lfw_events_denial_from(&req, &dec, json_object_get(root, "request"), decision_time(env),
                           &denial);
    lfw_events_report(env->events, &denial);
  }

  begin_response(out, req.uid, res->allowed);
  if (!res->allowed)
    put_status(out, 403, "Forbidden", dec.message);
  if (res->decision == LFW_D_WARNED)
    put_warning(out, "leasefence (warn mode, not enforced): ", dec.message);
  else if (dec.reason == LF_R_ADMITTED_UNAVAILABLE) {
    /* Warnings are cut at 256 characters: the cause (which names the
     * Lease) goes first, not after the decision's long preamble. */
    snprintf(msg, sizeof msg, "admitted WITHOUT fencing: %s",
             have_view && view.cause != NULL ? view.cause : "the Lease could not be read");
    put_warning(out, "leasefence: ", msg);
  }

  /* Audit annotation keys have no prefix: the API server prefixes each with
   * the webhook's name ("<webhook>/reason"), and a key with a slash of its own
   * would make that an invalid annotation key, which the API server drops. */
  lfw_buf_puts(out, ",\"auditAnnotations\":");
  put_annotation(out, &first, "reason", lf_reason_name(dec.reason));
  if (res->decision == LFW_D_WARNED || res->decision == LFW_D_DRY_RUN)
    put_annotation(out, &first, "not-enforced", lfw_mode_name(env->mode));
  if (dec.protected_) {
    snprintf(msg, sizeof msg, "%s/%s", dec.lease.ns, dec.lease.name);
    put_annotation(out, &first, "lease", msg);
  }
  if (dec.has_presented) {
    snprintf(num, sizeof num, "%" PRId32, dec.presented.term);
    put_annotation(out, &first, "presented-term", num);
    put_annotation(out, &first, "presented-lease-uid", dec.presented.lease_uid);
    if (dec.presented.holder[0] != '\0')
      put_annotation(out, &first, "presented-holder", dec.presented.holder);
  }
  /* Only what the denial itself may show (docs/protocol.md, section 5.3). */
  if (have_view && view.status == LF_LEASE_OK && dec.lease_disclosed) {
    snprintf(num, sizeof num, "%" PRId32, lease.transitions);
    put_annotation(out, &first, "lease-term", num);
    put_annotation(out, &first, "lease-holder", lease.holder);
  }
  lfw_buf_puts(out, "}}}");
  log_decision(env, &req, &dec, res);
out:
  /* Every answer is bounded far below out's limit (a uid of at most
   * LF_UID_MAX, messages of at most LF_ERROR_TEXT_MAX), so only memory can
   * have run out. */
  if (out->overflow)
    answer_oom(out, res);
  json_decref(parent);
  json_decref(root);
}

void lfw_review_handle(const lfw_review_env *env, const char *body, size_t len, lfw_buf *scratch,
                       lfw_buf *out, lfw_review_result *res) {
  handle(env, body, len, scratch, false, out, res);
}

void lfw_review_handle_pruned(const lfw_review_env *env, const char *body, size_t len,
                              lfw_buf *pruned, lfw_buf *out, lfw_review_result *res) {
  handle(env, body, len, pruned, pruned != NULL, out, res);
}
