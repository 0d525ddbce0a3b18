/*
 * events.h: a Warning Event on each object whose write was denied.
 *
 * A denial reaches the writer (its error) and the webhook's log, but the
 * people who look after an object look at `kubectl describe` and
 * `kubectl get events`. For every denied write that is not a dry run, the
 * review path builds a fixed-size record (lfw_events_denial_from) and hands
 * it to lfw_events_report(), which copies it into a bounded queue and
 * returns: it never waits for the API server and never changes the answer.
 * A denial that finds the queue full is dropped and counted.
 *
 * One thread drains the queue and talks to the API server:
 *  - Repeats of one (object, reason, writer) fold into one Event, as
 *    client-go's events.k8s.io recorder does (tools/events): the first denial
 *    creates the Event, later ones raise its series.count, sent as a PATCH
 *    at most once per series interval. A series ends once no repeat came for
 *    the series window; the next denial then starts a new Event.
 *  - A token bucket bounds what is sent to the API server altogether
 *    (--event-qps, --event-burst), however many objects are denied; what
 *    waits for a token keeps aggregating.
 *  - Everything is bounded: the queue (LFW_EVENTS_QUEUE_MAX records) and the
 *    table of live series (LFW_EVENTS_SERIES_MAX). When the table is full, a
 *    new series takes the slot of the least recently seen series whose count
 *    the API server already has; when there is none, the denial is dropped
 *    and counted.
 *
 * Events are events.k8s.io/v1: it has the series (count, lastObservedTime)
 * this aggregation needs, a note of at most 1 KiB, and the API server checks
 * the fields strictly on create. It is the same resource core/v1 serves, so
 * `kubectl get events` and `kubectl describe` (which selects on
 * involvedObject name, namespace, kind and uid) show them. `regarding` names
 * the object with the uid from the review's oldObject (or object); a denied
 * CREATE has no uid, so its Event shows in `kubectl get events` but in no
 * `kubectl describe` (the object does not exist). `related` names the
 * writer's Pod when the token was pod-bound.
 *
 * The table and the token bucket are pure: time is passed in, so the tests
 * drive them with a fake clock. Prefix lfw_events_.
 */
#ifndef LFW_EVENTS_H
#define LFW_EVENTS_H

#include "buf.h"

#include <leasefence/fencing.h>
#include <leasefence/kube.h>
#include <stdbool.h>
#include <stdint.h>

#define LFW_EVENTS_QUEUE_MAX 128  /* Denials waiting for the sender thread. */
#define LFW_EVENTS_SERIES_MAX 256 /* Series (one Event each) remembered at once. */
#define LFW_EVENTS_NOTE_MAX 1024  /* events.k8s.io/v1 note limit, in bytes. */
#define LFW_EVENTS_USER_MAX 256   /* Bytes of a username kept (cut at a character). */
#define LFW_EVENTS_KIND_MAX 63    /* Kinds are DNS-1035 labels. */
/* "<group>/<version>": a DNS subdomain and a DNS label. */
#define LFW_EVENTS_API_VERSION_MAX (LF_NAME_MAX + 1 + 63)
/* events.k8s.io/v1 limits on reportingInstance and on the Event's name. */
#define LFW_EVENTS_INSTANCE_MAX 128
#define LFW_EVENTS_BODY_MAX (16 * 1024) /* One Event as JSON, with room to spare. */

/* Defaults of the settings below. */
#define LFW_EVENTS_QPS_DEFAULT 5
#define LFW_EVENTS_BURST_DEFAULT 25
#define LFW_EVENTS_INTERVAL_US_DEFAULT (10 * 1000000LL)   /* Series PATCH spacing. */
#define LFW_EVENTS_WINDOW_US_DEFAULT (6 * 60 * 1000000LL) /* client-go's finishTime. */
#define LFW_EVENTS_TIMEOUT_MS_DEFAULT 3000                /* One request. */

/* reportingController of every Event (a qualified name, as the API asks). */
#define LFW_EVENTS_CONTROLLER "leasefence.io/webhook"

/* ------------------------------------------------------------------------ */
/* One denial, as reported                                                  */

/* Everything an Event needs, copied (a record outlives its review). Strings
 * are NUL-terminated and may be empty. */
typedef struct lfw_event_denial {
  char action[16];                                  /* The operation: "UPDATE". */
  char reason[48];                                  /* lf_reason_name(). */
  char api_version[LFW_EVENTS_API_VERSION_MAX + 1]; /* Of the object: "apps/v1". */
  char kind[LFW_EVENTS_KIND_MAX + 1];
  char ns[LF_NAMESPACE_MAX + 1]; /* "" for a cluster-scoped object. */
  char name[LF_NAME_MAX + 1];    /* "" for a CREATE with generateName. */
  char uid[LF_UID_MAX + 1];      /* "" for a CREATE. */
  char username[LFW_EVENTS_USER_MAX + 1];
  char pod_ns[LF_NAMESPACE_MAX + 1]; /* The writer's Pod, when pod-bound. */
  char pod[LF_NAME_MAX + 1];
  char note[LFW_EVENTS_NOTE_MAX + 1]; /* What happened, the writer, what to do. */
  int64_t at_us;                      /* Wall clock of the denial. */
} lfw_event_denial;

/*
 * Fills `out` from a denied request: `review_request` is the review's
 * "request" object (borrowed; the uid is read from its oldObject, else its
 * object), `req` and `dec` what the webhook read and decided. The note is
 * the decision's message followed by the writer, cut at a character
 * boundary so that it fits LFW_EVENTS_NOTE_MAX; the writer part is never
 * cut. Pure; never fails.
 */
void lfw_events_denial_from(const lf_request *req, const lf_decision *dec,
                            const json_t *review_request, int64_t now_us, lfw_event_denial *out);

/* ------------------------------------------------------------------------ */
/* The token bucket (pure)                                                  */

/* Tokens are kept in millionths, so refills are exact integers. */
typedef struct lfw_events_bucket {
  int64_t micro;   /* Tokens now, in millionths. */
  int64_t qps;     /* Tokens added per second. */
  int64_t burst;   /* Most tokens held. */
  int64_t last_us; /* Time of the last refill. */
} lfw_events_bucket;

/* A full bucket at `now_us`. `qps` and `burst` at least 1. */
void lfw_events_bucket_init(lfw_events_bucket *b, int64_t qps, int64_t burst, int64_t now_us);

/* Takes one token if there is one at `now_us`. */
bool lfw_events_bucket_take(lfw_events_bucket *b, int64_t now_us);

/* The earliest time (>= now_us) at which a token will be there. */
int64_t lfw_events_bucket_ready_at(const lfw_events_bucket *b, int64_t now_us);

/* ------------------------------------------------------------------------ */
/* The series table (pure)                                                  */

/* One Event and the denials folded into it. */
typedef struct lfw_events_series {
  bool used;
  uint64_t key_hash;      /* Of (object, reason, writer), to skip most compares. */
  uint64_t seq;           /* Order of creation: creates go first come, first served. */
  lfw_event_denial first; /* The first denial: the Event's content. */
  char event_name[LF_NAME_MAX + 1];
  uint32_t count;  /* Denials folded in. */
  uint32_t sent;   /* The count the API server has; 0: not created yet. */
  int64_t last_us; /* The latest denial. */
  int64_t sent_us; /* When the count was last sent. */
} lfw_events_series;

typedef struct lfw_events_table {
  lfw_events_series *slots; /* LFW_EVENTS_SERIES_MAX or the capacity given. */
  size_t cap;
  int64_t interval_us; /* Least time between two sends of one series. */
  int64_t window_us;   /* A series ends after this long without a repeat. */
  uint64_t next_seq;
} lfw_events_table;

/* 0, or -1 out of memory. `cap` 0 means LFW_EVENTS_SERIES_MAX. */
int lfw_events_table_init(lfw_events_table *t, size_t cap, int64_t interval_us, int64_t window_us);
void lfw_events_table_free(lfw_events_table *t);

typedef enum lfw_events_add {
  LFW_EVENTS_NEW = 0,    /* A new series: its Event is to be created. */
  LFW_EVENTS_AGGREGATED, /* Folded into a live series. */
  LFW_EVENTS_FULL,       /* No room: dropped. */
} lfw_events_add;

/* Folds one denial in at `now_us`. */
lfw_events_add lfw_events_table_add(lfw_events_table *t, const lfw_event_denial *d, int64_t now_us);

/* What to send next. */
typedef enum lfw_events_verb {
  LFW_EVENTS_NONE = 0, /* Nothing now: wait until `*wake_us` (INT64_MAX: a new denial). */
  LFW_EVENTS_CREATE,   /* POST the Event of slots[*idx]. */
  LFW_EVENTS_PATCH,    /* PATCH its series count. */
} lfw_events_verb;

/*
 * Picks the next request and takes its token from `b`: first the oldest
 * series not yet created, then the series whose count moved and whose last
 * send is at least an interval old, the longest waiting first. With
 * LFW_EVENTS_NONE, `*wake_us` says when to ask again: a token's arrival, a
 * series' interval, or INT64_MAX. On a verb, `*count` is the count to send
 * (pass it back to lfw_events_table_sent).
 */
lfw_events_verb lfw_events_table_next(lfw_events_table *t, lfw_events_bucket *b, int64_t now_us,
                                      size_t *idx, uint32_t *count, int64_t *wake_us);

/* Outcome of one request, for lfw_events_table_sent. */
typedef enum lfw_events_outcome {
  LFW_EVENTS_OK = 0, /* The API server took it. */
  LFW_EVENTS_GONE,   /* PATCH answered 404: the Event expired; create it anew. */
  LFW_EVENTS_FAILED, /* Anything else: not retried (a repeat tries again). */
} lfw_events_outcome;

/* Records what became of the request lfw_events_table_next chose. A failed
 * create frees the series, so that the next denial starts over; a failed
 * patch keeps it, as sent. */
void lfw_events_table_sent(lfw_events_table *t, size_t idx, lfw_events_verb verb, uint32_t count,
                           lfw_events_outcome outcome, int64_t now_us);

/* ------------------------------------------------------------------------ */
/* Request bodies (pure)                                                    */

/* Appends the events.k8s.io/v1 Event of `s` (with its series when `count`
 * is 2 or more) to `out`. `instance` is the reportingInstance. 0, or -1 when
 * `out` overflowed. */
int lfw_events_format_create(const lfw_events_series *s, uint32_t count, const char *instance,
                             lfw_buf *out);

/* Appends the merge patch that sets the series of `s` to `count`. */
int lfw_events_format_patch(const lfw_events_series *s, uint32_t count, lfw_buf *out);

/* The namespace an Event about `d` goes to: the object's, or "default" for a
 * cluster-scoped object (as client-go's recorders do). */
const char *lfw_events_namespace(const lfw_event_denial *d);

/* ------------------------------------------------------------------------ */
/* The reporter: queue and sender thread                                    */

typedef struct lfw_events lfw_events;

typedef struct lfw_events_options {
  int64_t qps;          /* 0: LFW_EVENTS_QPS_DEFAULT. */
  int64_t burst;        /* 0: LFW_EVENTS_BURST_DEFAULT. */
  int64_t interval_us;  /* 0: LFW_EVENTS_INTERVAL_US_DEFAULT. */
  int64_t window_us;    /* 0: LFW_EVENTS_WINDOW_US_DEFAULT. */
  int64_t timeout_ms;   /* 0: LFW_EVENTS_TIMEOUT_MS_DEFAULT. */
  const char *instance; /* reportingInstance; NULL: the host name. Copied. */
} lfw_events_options;

/*
 * Creates a reporter that posts through `client` (borrowed; it must outlive
 * the reporter, and may be NULL for a reporter that only queues, as the
 * tests use). Nothing runs until lfw_events_start(). NULL out of memory.
 */
lfw_events *lfw_events_new(lf_kube_client *client, const lfw_events_options *opts);

/* Starts the sender thread. 0, or -1 when it cannot be started. */
int lfw_events_start(lfw_events *ev);

/*
 * The webhook's reporter: a Kubernetes client of its own (from the
 * kubeconfig at `kubeconfig`, or the in-cluster service account when it is
 * NULL or ""), so that Event requests never take a connection a Lease read
 * could use, and its thread started. The caller owns `*out`
 * (lfw_events_free, which also frees the client). On failure a negative
 * LF_E* code with `err` filled, and `*out` NULL.
 */
int lfw_events_open(const char *kubeconfig, const lfw_events_options *opts, lfw_events **out,
                    lf_error *err);

/*
 * Queues one denial; never blocks on I/O (it takes the queue's lock for a
 * copy). When the queue is full the denial is dropped and counted. `ev` may
 * be NULL (events off): nothing happens. Returns true when queued.
 */
bool lfw_events_report(lfw_events *ev, const lfw_event_denial *d);

/* Denials queued and not yet taken by the sender thread. */
size_t lfw_events_pending(lfw_events *ev);

/* Stops the thread (waiting at most for the request in flight, bounded by
 * its timeout) and frees everything; what was not sent is dropped. Accepts
 * NULL and clears the caller's pointer. */
void lfw_events_free(lfw_events **ev);

#endif /* LFW_EVENTS_H */
