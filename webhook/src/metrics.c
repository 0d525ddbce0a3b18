/*
 * metrics.c: counters, one histogram and gauges, rendered on demand.
 */
#include "metrics.h"

#include <stdatomic.h>
#include <string.h>

static const char *const op_names[LFW_OP_COUNT] = {"unknown", "CREATE", "UPDATE", "DELETE",
                                                   "CONNECT"};
static const char *const decision_names[LFW_D_COUNT] = {"allowed", "denied", "warned", "dry_run",
                                                        "error"};

/* Upper bounds of the duration histogram, in microseconds. The webhook
 * answers in tens of microseconds; the API server's timeout is seconds. */
static const int64_t bucket_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                    10000, 25000, 50000, 100000, 250000, 1000000};
#define N_BUCKETS (sizeof bucket_us / sizeof bucket_us[0])

static atomic_uint_fast64_t requests[LFW_OP_COUNT][LFW_D_COUNT][LFW_R_TOTAL];
static atomic_uint_fast64_t hist[N_BUCKETS + 1]; /* Last: above every bound. */
static atomic_uint_fast64_t hist_sum_us;
static atomic_int_fast64_t inflight;
static atomic_uint_fast64_t reloads[2];    /* [0] failure, [1] success */
static atomic_int_fast64_t cert_not_after; /* 0 until a certificate is loaded. */
static atomic_uint_fast64_t events[LFW_EV_COUNT];
static atomic_uint_fast64_t decisions[2][LF_R_COUNT][LFW_REQ_COUNT]; /* [allowed] */

static const char *const requester_names[LFW_REQ_COUNT] = {
    "guarded-controller", "kubernetes-controller", "exempt", "service-account", "person", "system"};

const char *lfw_reason_label(int reason) {
  switch (reason) {
  case LFW_R_INVALID_REVIEW:
    return "InvalidReview";
  case LFW_R_TOO_LARGE:
    return "RequestTooLarge";
  case LFW_R_UNSUPPORTED_MEDIA_TYPE:
    return "UnsupportedMediaType";
  case LFW_R_OUT_OF_MEMORY:
    return "OutOfMemory";
  default:
    if (reason >= 0 && reason < LF_R_COUNT)
      return lf_reason_name((lf_reason)reason);
    return "Unknown";
  }
}

void lfw_metrics_request(int op, lfw_decision_label decision, int reason, int64_t duration_us) {
  size_t b = 0;

  if (op < 0 || op >= LFW_OP_COUNT)
    op = LFW_OP_UNKNOWN;
  if (reason < 0 || reason >= LFW_R_TOTAL)
    reason = LFW_R_INVALID_REVIEW;
  if ((int)decision < 0 || decision >= LFW_D_COUNT)
    decision = LFW_D_ERROR;
  atomic_fetch_add_explicit(&requests[op][decision][reason], 1, memory_order_relaxed);
  if (duration_us < 0)
    duration_us = 0;
  while (b < N_BUCKETS && duration_us > bucket_us[b])
    b++;
  atomic_fetch_add_explicit(&hist[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&hist_sum_us, (uint_fast64_t)duration_us, memory_order_relaxed);
}

void lfw_metrics_inflight_add(int delta) {
  atomic_fetch_add_explicit(&inflight, delta, memory_order_relaxed);
}

int64_t lfw_metrics_inflight(void) {
  return (int64_t)atomic_load_explicit(&inflight, memory_order_relaxed);
}

void lfw_metrics_cert_reload(bool ok) {
  atomic_fetch_add_explicit(&reloads[ok ? 1 : 0], 1, memory_order_relaxed);
}

static bool has_prefix(const char *s, const char *prefix) {
  return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* One of the library's built-in exempt users (lf_policy_init), as opposed to
 * one the operator added. */
static bool built_in_exempt(const char *username) {
  lf_policy defaults;
  size_t i;

  if (username == NULL)
    return false;
  lf_policy_init(&defaults);
  for (i = 0; i < defaults.n_exempt_users; i++)
    if (strcmp(defaults.exempt_users[i], username) == 0)
      return true;
  return false;
}

lfw_requester lfw_requester_of(const lf_request *req, const lf_decision *dec) {
  if (dec->writer == LF_WRITER_CONTROLLER)
    return LFW_REQ_GUARDED_CONTROLLER;
  if (dec->writer == LF_WRITER_EXEMPT)
    return built_in_exempt(req->username) ? LFW_REQ_KUBERNETES : LFW_REQ_EXEMPT;
  if (has_prefix(req->username, "system:serviceaccount:"))
    return LFW_REQ_SERVICE_ACCOUNT;
  if (has_prefix(req->username, "system:"))
    return LFW_REQ_SYSTEM;
  return LFW_REQ_PERSON;
}

void lfw_metrics_decision(bool allowed, int reason, lfw_requester who) {
  if (reason < 0 || reason >= LF_R_COUNT || (int)who < 0 || who >= LFW_REQ_COUNT)
    return;
  atomic_fetch_add_explicit(&decisions[allowed ? 1 : 0][reason][who], 1, memory_order_relaxed);
}

void lfw_metrics_event(lfw_event_count what) {
  if ((int)what >= 0 && what < LFW_EV_COUNT)
    atomic_fetch_add_explicit(&events[what], 1, memory_order_relaxed);
}

uint64_t lfw_metrics_event_value(lfw_event_count what) {
  if ((int)what < 0 || what >= LFW_EV_COUNT)
    return 0;
  return (uint64_t)atomic_load_explicit(&events[what], memory_order_relaxed);
}

static void render_events(lfw_buf *out) {
  lfw_buf_printf(out,
                 "# HELP leasefence_events_posted_total Requests about denial Events the API "
                 "server accepted, by verb (create: a new Event; patch: a series count).\n"
                 "# TYPE leasefence_events_posted_total counter\n"
                 "leasefence_events_posted_total{verb=\"create\"} %llu\n"
                 "leasefence_events_posted_total{verb=\"patch\"} %llu\n",
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_CREATED),
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_PATCHED));
  lfw_buf_printf(out,
                 "# HELP leasefence_events_aggregated_total Denials folded into the series of "
                 "an Event already reported (same object, reason and writer).\n"
                 "# TYPE leasefence_events_aggregated_total counter\n"
                 "leasefence_events_aggregated_total %llu\n",
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_AGGREGATED));
  lfw_buf_printf(out,
                 "# HELP leasefence_events_dropped_total Denials never reported as an Event, "
                 "by cause.\n"
                 "# TYPE leasefence_events_dropped_total counter\n"
                 "leasefence_events_dropped_total{cause=\"queue_full\"} %llu\n"
                 "leasefence_events_dropped_total{cause=\"table_full\"} %llu\n",
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_DROPPED_QUEUE_FULL),
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_DROPPED_TABLE_FULL));
  lfw_buf_printf(out,
                 "# HELP leasefence_events_failed_total Event requests the API server refused "
                 "or did not answer in time, by verb (not retried).\n"
                 "# TYPE leasefence_events_failed_total counter\n"
                 "leasefence_events_failed_total{verb=\"create\"} %llu\n"
                 "leasefence_events_failed_total{verb=\"patch\"} %llu\n",
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_CREATE_FAILED),
                 (unsigned long long)lfw_metrics_event_value(LFW_EV_PATCH_FAILED));
}

void lfw_metrics_cert_expiry(int64_t not_after) {
  atomic_store_explicit(&cert_not_after, not_after, memory_order_relaxed);
}

int lfw_metrics_render(lfw_buf *out) {
  uint64_t cum = 0;
  size_t b;
  int op;
  int d;
  int r;

  lfw_buf_puts(out, "# HELP leasefence_requests_total AdmissionReviews answered, by "
                    "operation, decision and reason.\n"
                    "# TYPE leasefence_requests_total counter\n");
  for (op = 0; op < LFW_OP_COUNT; op++)
    for (d = 0; d < LFW_D_COUNT; d++)
      for (r = 0; r < LFW_R_TOTAL; r++) {
        uint64_t v = atomic_load_explicit(&requests[op][d][r], memory_order_relaxed);

        /* Series that never happened are left out to keep the page short. */
        if (v == 0)
          continue;
        lfw_buf_printf(out,
                       "leasefence_requests_total{operation=\"%s\",decision=\"%s\","
                       "reason=\"%s\"} %llu\n",
                       op_names[op], decision_names[d], lfw_reason_label(r), (unsigned long long)v);
      }

  lfw_buf_puts(out, "# HELP leasefence_decisions_total Reviews decided, by the decision's "
                    "verdict (before the mode), reason and requester (the writer's class, "
                    "docs/protocol.md section 5.1).\n"
                    "# TYPE leasefence_decisions_total counter\n");
  for (op = 0; op < 2; op++)
    for (r = 0; r < LF_R_COUNT; r++)
      for (d = 0; d < LFW_REQ_COUNT; d++) {
        uint64_t v = atomic_load_explicit(&decisions[op][r][d], memory_order_relaxed);

        if (v == 0)
          continue;
        lfw_buf_printf(out,
                       "leasefence_decisions_total{verdict=\"%s\",reason=\"%s\","
                       "requester=\"%s\"} %llu\n",
                       op == 1 ? "allowed" : "denied", lf_reason_name((lf_reason)r),
                       requester_names[d], (unsigned long long)v);
      }

  lfw_buf_puts(out, "# HELP leasefence_request_duration_seconds Time from a review's first "
                    "byte being handed to the webhook to its answer.\n"
                    "# TYPE leasefence_request_duration_seconds histogram\n");
  for (b = 0; b <= N_BUCKETS; b++) {
    cum += atomic_load_explicit(&hist[b], memory_order_relaxed);
    if (b < N_BUCKETS)
      lfw_buf_printf(out, "leasefence_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                     (double)bucket_us[b] / 1e6, (unsigned long long)cum);
    else
      lfw_buf_printf(out, "leasefence_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                     (unsigned long long)cum);
  }
  lfw_buf_printf(out, "leasefence_request_duration_seconds_sum %.6f\n",
                 (double)atomic_load_explicit(&hist_sum_us, memory_order_relaxed) / 1e6);
  lfw_buf_printf(out, "leasefence_request_duration_seconds_count %llu\n", (unsigned long long)cum);

  lfw_buf_printf(out,
                 "# HELP leasefence_inflight_requests Requests being handled now.\n"
                 "# TYPE leasefence_inflight_requests gauge\n"
                 "leasefence_inflight_requests %lld\n",
                 (long long)lfw_metrics_inflight());
  lfw_buf_printf(out,
                 "# HELP leasefence_certificate_reloads_total Serving certificate reloads "
                 "after a change on disk, by result.\n"
                 "# TYPE leasefence_certificate_reloads_total counter\n"
                 "leasefence_certificate_reloads_total{result=\"success\"} %llu\n"
                 "leasefence_certificate_reloads_total{result=\"failure\"} %llu\n",
                 (unsigned long long)atomic_load_explicit(&reloads[1], memory_order_relaxed),
                 (unsigned long long)atomic_load_explicit(&reloads[0], memory_order_relaxed));
  render_events(out);
  lfw_buf_printf(out,
                 "# HELP leasefence_serving_certificate_expiry_timestamp_seconds notAfter of "
                 "the serving certificate in use, in seconds since the epoch.\n"
                 "# TYPE leasefence_serving_certificate_expiry_timestamp_seconds gauge\n"
                 "leasefence_serving_certificate_expiry_timestamp_seconds %lld\n",
                 (long long)atomic_load_explicit(&cert_not_after, memory_order_relaxed));
  lfw_buf_printf(out,
                 "# HELP leasefence_build_info The webhook's version.\n"
                 "# TYPE leasefence_build_info gauge\n"
                 "leasefence_build_info{version=\"%s\"} 1\n",
                 LFW_VERSION);
  return out->overflow ? -1 : 0;
}
