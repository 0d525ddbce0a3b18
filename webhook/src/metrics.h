/*
 * metrics.h: the webhook's Prometheus metrics.
 *
 * Every counter is a relaxed atomic in a fixed array indexed by label values,
 * so the hot path costs a few atomic adds and never allocates or locks.
 * Rendering walks the arrays and writes the text exposition format (0.0.4).
 */
#ifndef LFW_METRICS_H
#define LFW_METRICS_H

#include "buf.h"

#include <leasefence/fencing.h>
#include <stdbool.h>
#include <stdint.h>

/* operation label: the request's operation, or "unknown" before it is read. */
enum {
  LFW_OP_UNKNOWN = 0, /* lf_operation values 1..4 map to themselves. */
  LFW_OP_COUNT = 5,
};

/* decision label: what the webhook answered. */
typedef enum lfw_decision_label {
  LFW_D_ALLOWED = 0, /* Admitted by the fencing decision. */
  LFW_D_DENIED,      /* Denied (mode deny). */
  LFW_D_WARNED,      /* Fencing denied it; admitted with a warning (mode warn). */
  LFW_D_DRY_RUN,     /* Fencing denied it; admitted silently (mode dry-run). */
  LFW_D_ERROR,       /* The request was not a usable AdmissionReview. */
  LFW_D_COUNT
} lfw_decision_label;

/* reason label: the lf_reason names, then the webhook's own. */
enum {
  LFW_R_INVALID_REVIEW = LF_R_COUNT, /* Bad JSON, wrong version, bad field. */
  LFW_R_TOO_LARGE,                   /* Body over --max-request-bytes. */
  LFW_R_UNSUPPORTED_MEDIA_TYPE,      /* Not application/json. */
  LFW_R_OUT_OF_MEMORY,               /* The review could not be judged: no memory. */
  LFW_R_TOTAL
};

/* requester label: who asked, for decided reviews. The writer classes of
 * docs/protocol.md (section 5.1, lf_decision.writer), with the exempt split
 * into Kubernetes' own control plane and whom the operator named, and the
 * others (and writes decided before the class mattered) split by the kind of
 * identity. */
typedef enum lfw_requester {
  LFW_REQ_GUARDED_CONTROLLER = 0, /* The guarded controller's writers (fenced). */
  LFW_REQ_KUBERNETES,             /* Exempt: a built-in control-plane identity. */
  LFW_REQ_EXEMPT,                 /* Exempt: --exempt-user or --exempt-group. */
  LFW_REQ_SERVICE_ACCOUNT,        /* Another service account: a tool in a pod. */
  LFW_REQ_PERSON,                 /* Neither a service account nor a system: user. */
  LFW_REQ_SYSTEM,                 /* Another system: identity (a node, the API server). */
  LFW_REQ_COUNT
} lfw_requester;

/* The requester of `req` as decided in `dec`. Pure. */
lfw_requester lfw_requester_of(const lf_request *req, const lf_decision *dec);

/* Counts one decided review by the decision's verdict (before the mode),
 * reason and requester. */
void lfw_metrics_decision(bool allowed, int reason, lfw_requester who);

/* What became of denials reported as Events (events.h). */
typedef enum lfw_event_count {
  LFW_EV_CREATED = 0,        /* An Event created. */
  LFW_EV_PATCHED,            /* A series count sent. */
  LFW_EV_AGGREGATED,         /* A denial folded into a live series. */
  LFW_EV_DROPPED_QUEUE_FULL, /* The queue was full. */
  LFW_EV_DROPPED_TABLE_FULL, /* The series table was full. */
  LFW_EV_CREATE_FAILED,      /* The API server refused or did not answer a create. */
  LFW_EV_PATCH_FAILED,       /* Likewise a series update. */
  LFW_EV_COUNT
} lfw_event_count;

void lfw_metrics_event(lfw_event_count what);
/* The count so far, for tests. */
uint64_t lfw_metrics_event_value(lfw_event_count what);

void lfw_metrics_request(int op, lfw_decision_label decision, int reason, int64_t duration_us);
void lfw_metrics_inflight_add(int delta);
int64_t lfw_metrics_inflight(void);
void lfw_metrics_cert_reload(bool ok);
/* The serving certificate's notAfter, in seconds since the epoch. */
void lfw_metrics_cert_expiry(int64_t not_after);

/* Appends the whole exposition to `out`. 0, or -1 if `out` overflowed. */
int lfw_metrics_render(lfw_buf *out);

/* Name of a reason label value (lf_reason_name for the library's). */
const char *lfw_reason_label(int reason);

#endif /* LFW_METRICS_H */
