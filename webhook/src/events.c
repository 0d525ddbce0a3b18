/*
 * events.c: denials as Warning Events, off the request path (events.h).
 */
#include "events.h"

#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SA_PREFIX "system:serviceaccount:"
/* Hex digits that make an Event's name unique: the denial's time in ns. */
#define NAME_SUFFIX_LEN 17 /* "." and 16 hex digits. */

/* ------------------------------------------------------------------------ */
/* One denial                                                               */

/* Copies `src` into `dst` of `size` bytes, cut at a UTF-8 character
 * boundary. */
static void copy_cut(char *dst, size_t size, const char *src) {
  size_t n;

  if (src == NULL)
    src = "";
  n = strlen(src);
  if (n >= size) /* Only a string that does not fit is walked for a boundary. */
    n = lfw_utf8_prefix(src, n, SIZE_MAX, size - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* The kind of the object a /scale write goes to: the review names the Scale
 * (autoscaling/v1), not the object, and only the resource is known. The
 * built-in scalable kinds are named here; for a custom resource the kind
 * stays empty (its Event is then listed, but not by kubectl describe). */
static const char *scale_parent_kind(const char *group, const char *resource) {
  static const struct {
    const char *group;
    const char *resource;
    const char *kind;
  } kinds[] = {
      {"apps", "deployments", "Deployment"},
      {"apps", "statefulsets", "StatefulSet"},
      {"apps", "replicasets", "ReplicaSet"},
      {"", "replicationcontrollers", "ReplicationController"},
  };
  size_t i;

  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp(kinds[i].group, group) == 0 && strcmp(kinds[i].resource, resource) == 0)
      return kinds[i].kind;
  return "";
}

void lfw_events_denial_from(const lf_request *req, const lf_decision *dec,
                            const json_t *review_request, int64_t now_us, lfw_event_denial *out) {
  const char *uid;
  const char *group = req->group != NULL ? req->group : "";
  const char *version = req->version != NULL ? req->version : "";
  const char *sub = req->subresource != NULL ? req->subresource : "";
  char writer[LFW_EVENTS_USER_MAX + LF_NAMESPACE_MAX + LF_NAME_MAX + 64];
  char own[LF_MESSAGE_MAX];
  const char *message;
  size_t wlen;
  size_t mlen;
  size_t room;

  memset(out, 0, sizeof *out);
  out->at_us = now_us;
  copy_cut(out->action, sizeof out->action, lf_operation_name(req->op));
  copy_cut(out->reason, sizeof out->reason, lf_reason_name(dec->reason));
  if (group[0] != '\0')
    snprintf(out->api_version, sizeof out->api_version, "%s/%s", group, version);
  else
    copy_cut(out->api_version, sizeof out->api_version, version);
  copy_cut(out->kind, sizeof out->kind,
           strcmp(sub, "scale") == 0 ? scale_parent_kind(group, req->resource) : req->kind);
  copy_cut(out->ns, sizeof out->ns, req->ns);
  copy_cut(out->name, sizeof out->name, req->name);
  /* oldObject only: the uid a CREATE's object carries at admission names an
   * object that the denial discards. */
  uid = json_string_value(json_object_get(
      json_object_get(json_object_get(review_request, "oldObject"), "metadata"), "uid"));
  if (uid != NULL && strlen(uid) <= LF_UID_MAX)
    copy_cut(out->uid, sizeof out->uid, uid);
  copy_cut(out->username, sizeof out->username, req->username);
  if (req->pod_name != NULL && req->username != NULL &&
      strncmp(req->username, SA_PREFIX, strlen(SA_PREFIX)) == 0) {
    const char *ns = req->username + strlen(SA_PREFIX);
    const char *colon = strchr(ns, ':');

    if (colon != NULL && (size_t)(colon - ns) <= LF_NAMESPACE_MAX) {
      memcpy(out->pod_ns, ns, (size_t)(colon - ns));
      out->pod_ns[colon - ns] = '\0';
      copy_cut(out->pod, sizeof out->pod, req->pod_name);
    }
  }

  /* The writer goes last and whole; the message gives way when both do not
   * fit the API server's 1 KiB. */
  if (out->pod[0] != '\0')
    snprintf(writer, sizeof writer, " Writer: %s (pod %s/%s).", out->username, out->pod_ns,
             out->pod);
  else
    snprintf(writer, sizeof writer, " Writer: %s.",
             out->username[0] != '\0' ? out->username : "(unknown)");
  wlen = strlen(writer);
  room = LFW_EVENTS_NOTE_MAX - wlen;
  /* The message was shown to the writer; the Event is shown to whoever may
   * read Events in the object's namespace. A message that discloses a Lease
   * of another namespace (the writer was found entitled to read it) stays
   * the writer's: the Event gets the reason alone. */
  message = dec->message;
  if (dec->lease_disclosed && strcmp(dec->lease.ns, out->ns) != 0) {
    snprintf(own, sizeof own,
             "leasefence denied the %s of %s %s%s%s (%s); the Lease %s/%s is in another "
             "namespace, so the details went to the writer only.",
             out->action, req->resource != NULL ? req->resource : "", out->ns,
             out->ns[0] != '\0' ? "/" : "", out->name, out->reason, dec->lease.ns, dec->lease.name);
    message = own;
  }
  mlen = strnlen(message, LF_MESSAGE_MAX);
  if (mlen > room) {
    mlen = lfw_utf8_prefix(message, mlen, SIZE_MAX, room - 3);
    memcpy(out->note, message, mlen);
    memcpy(out->note + mlen, "...", 3);
    mlen += 3;
  } else {
    memcpy(out->note, message, mlen);
  }
  memcpy(out->note + mlen, writer, wlen + 1);
}

const char *lfw_events_namespace(const lfw_event_denial *d) {
  return d->ns[0] != '\0' ? d->ns : "default";
}

/* ------------------------------------------------------------------------ */
/* Token bucket                                                             */

#define MICRO 1000000LL

void lfw_events_bucket_init(lfw_events_bucket *b, int64_t qps, int64_t burst, int64_t now_us) {
  b->qps = qps > 0 ? qps : 1;
  b->burst = burst > 0 ? burst : 1;
  b->micro = b->burst * MICRO;
  b->last_us = now_us;
}

static void refill(lfw_events_bucket *b, int64_t now_us) {
  int64_t elapsed = now_us - b->last_us;

  /* A clock that went back refills nothing and moves the mark back. */
  if (elapsed > 0) {
    /* qps tokens a second are qps millionths a microsecond. Past a full
     * bucket's worth of time the bucket is full whatever the product. */
    if (elapsed >= b->burst * MICRO / b->qps + 1)
      b->micro = b->burst * MICRO;
    else
      b->micro += elapsed * b->qps;
    if (b->micro > b->burst * MICRO)
      b->micro = b->burst * MICRO;
  }
  b->last_us = now_us;
}

bool lfw_events_bucket_take(lfw_events_bucket *b, int64_t now_us) {
  refill(b, now_us);
  if (b->micro < MICRO)
    return false;
  b->micro -= MICRO;
  return true;
}

int64_t lfw_events_bucket_ready_at(const lfw_events_bucket *b, int64_t now_us) {
  lfw_events_bucket copy = *b;
  int64_t missing;

  refill(&copy, now_us);
  if (copy.micro >= MICRO)
    return now_us;
  missing = MICRO - copy.micro;
  return now_us + (missing + copy.qps - 1) / copy.qps;
}

/* ------------------------------------------------------------------------ */
/* Series table                                                             */

static uint64_t fnv(uint64_t h, const char *s) {
  for (; *s != '\0'; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return (h ^ 0xff) * 1099511628211ULL; /* A separator no UTF-8 text holds. */
}

/* The series key: the object, the reason and the writer. */
static uint64_t key_hash(const lfw_event_denial *d) {
  uint64_t h = 14695981039346656037ULL;

  h = fnv(h, d->api_version);
  h = fnv(h, d->kind);
  h = fnv(h, d->ns);
  h = fnv(h, d->name);
  h = fnv(h, d->uid);
  h = fnv(h, d->reason);
  h = fnv(h, d->username);
  return fnv(h, d->pod);
}

static bool same_key(const lfw_event_denial *a, const lfw_event_denial *b) {
  return strcmp(a->api_version, b->api_version) == 0 && strcmp(a->kind, b->kind) == 0 &&
         strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0 &&
         strcmp(a->uid, b->uid) == 0 && strcmp(a->reason, b->reason) == 0 &&
         strcmp(a->username, b->username) == 0 && strcmp(a->pod, b->pod) == 0;
}

int lfw_events_table_init(lfw_events_table *t, size_t cap, int64_t interval_us, int64_t window_us) {
  memset(t, 0, sizeof *t);
  t->cap = cap > 0 ? cap : LFW_EVENTS_SERIES_MAX;
  t->slots = calloc(t->cap, sizeof *t->slots);
  t->interval_us = interval_us;
  t->window_us = window_us;
  return t->slots != NULL ? 0 : -1;
}

void lfw_events_table_free(lfw_events_table *t) {
  free(t->slots);
  t->slots = NULL;
  t->cap = 0;
}

/* The API server has everything this series counted. */
static bool settled(const lfw_events_series *s) {
  return s->sent > 0 && s->sent == s->count;
}

/* An Event name: the object's name made a DNS subdomain label (lower case
 * letters, digits and '-'; at most what leaves room for the suffix), then a
 * dot and the denial's time in nanoseconds, as client-go names Events. */
static void make_name(lfw_events_series *s) {
  const char *src = s->first.name;
  size_t max = sizeof s->event_name - 1 - NAME_SUFFIX_LEN;
  size_t o = 0;
  size_t i;

  for (i = 0; src[i] != '\0' && o < max; i++) {
    char c = src[i];

    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      c = '-';
    if (c == '-' && o == 0)
      continue; /* A name starts with a letter or digit. */
    s->event_name[o++] = c;
  }
  while (o > 0 && s->event_name[o - 1] == '-')
    o--;
  if (o == 0) {
    memcpy(s->event_name, "leasefence", 10);
    o = 10;
  }
  /* The sequence number keeps two series created in one microsecond apart. */
  snprintf(s->event_name + o, sizeof s->event_name - o, ".%016llx",
           (unsigned long long)(s->first.at_us * 1000 + (int64_t)(s->seq % 1000)));
}

lfw_events_add lfw_events_table_add(lfw_events_table *t, const lfw_event_denial *d,
                                    int64_t now_us) {
  uint64_t h = key_hash(d);
  lfw_events_series *s;
  size_t free_slot = t->cap;
  size_t victim = t->cap;
  size_t i;

  for (i = 0; i < t->cap; i++) {
    s = &t->slots[i];
    if (!s->used) {
      if (free_slot == t->cap)
        free_slot = i;
      continue;
    }
    if (s->key_hash == h && same_key(&s->first, d)) {
      /* A series whose window passed and whose count the API server has is
       * over: this denial starts a new Event in its place. */
      if (settled(s) && now_us - s->last_us >= t->window_us) {
        free_slot = i;
        break;
      }
      /* series.count is an int32 in the API. */
      if (s->count < INT32_MAX)
        s->count++;
      if (now_us > s->last_us)
        s->last_us = now_us;
      return LFW_EVENTS_AGGREGATED;
    }
    if (settled(s) && (victim == t->cap || s->last_us < t->slots[victim].last_us))
      victim = i;
  }
  if (free_slot == t->cap)
    free_slot = victim; /* Only forgets a series the API server already has. */
  if (free_slot == t->cap)
    return LFW_EVENTS_FULL;
  s = &t->slots[free_slot];
  memset(s, 0, sizeof *s);
  s->used = true;
  s->key_hash = h;
  s->seq = t->next_seq++;
  s->first = *d;
  s->count = 1;
  s->last_us = now_us;
  make_name(s);
  return LFW_EVENTS_NEW;
}

lfw_events_verb lfw_events_table_next(lfw_events_table *t, lfw_events_bucket *b, int64_t now_us,
                                      size_t *idx, uint32_t *count, int64_t *wake_us) {
  size_t create = t->cap;
  size_t patch = t->cap;
  int64_t wake = INT64_MAX;
  lfw_events_verb verb = LFW_EVENTS_NONE;
  size_t i;

  for (i = 0; i < t->cap; i++) {
    const lfw_events_series *s = &t->slots[i];

    if (!s->used)
      continue;
    if (s->sent == 0) {
      if (create == t->cap || s->seq < t->slots[create].seq)
        create = i;
    } else if (s->sent < s->count) {
      int64_t due = s->sent_us + t->interval_us;

      if (due <= now_us) {
        if (patch == t->cap || s->sent_us < t->slots[patch].sent_us)
          patch = i;
      } else if (due < wake) {
        wake = due;
      }
    }
  }
  if (create != t->cap) {
    verb = LFW_EVENTS_CREATE;
    *idx = create;
  } else if (patch != t->cap) {
    verb = LFW_EVENTS_PATCH;
    *idx = patch;
  }
  if (verb != LFW_EVENTS_NONE && !lfw_events_bucket_take(b, now_us)) {
    wake = lfw_events_bucket_ready_at(b, now_us);
    verb = LFW_EVENTS_NONE;
  }
  if (verb != LFW_EVENTS_NONE)
    *count = t->slots[*idx].count;
  *wake_us = wake;
  return verb;
}

void lfw_events_table_sent(lfw_events_table *t, size_t idx, lfw_events_verb verb, uint32_t count,
                           lfw_events_outcome outcome, int64_t now_us) {
  lfw_events_series *s;

  if (idx >= t->cap || !t->slots[idx].used)
    return;
  s = &t->slots[idx];
  if (outcome == LFW_EVENTS_GONE) {
    /* The Event expired (the API server keeps Events an hour by default)
     * while its series went on: a new Event, under a new name, carries it. */
    s->sent = 0;
    s->first.at_us = now_us;
    s->seq = t->next_seq++;
    make_name(s);
    return;
  }
  if (outcome == LFW_EVENTS_FAILED && verb == LFW_EVENTS_CREATE) {
    s->used = false;
    return;
  }
  s->sent = count;
  s->sent_us = now_us;
}

/* ------------------------------------------------------------------------ */
/* Request bodies                                                           */

static void put_field(lfw_buf *out, bool *first, const char *key, const char *value) {
  if (value == NULL || value[0] == '\0')
    return;
  lfw_buf_puts(out, *first ? "" : ",");
  *first = false;
  lfw_json_cstring(out, key);
  lfw_buf_puts(out, ":");
  lfw_json_cstring(out, value);
}

static void put_series(lfw_buf *out, const lfw_events_series *s, uint32_t count) {
  char when[40] = "";

  (void)lf_time_format(s->last_us, when, sizeof when);
  lfw_buf_printf(out, "\"series\":{\"count\":%u,\"lastObservedTime\":", (unsigned)count);
  lfw_json_cstring(out, when);
  lfw_buf_puts(out, "}");
}

int lfw_events_format_create(const lfw_events_series *s, uint32_t count, const char *instance,
                             lfw_buf *out) {
  const lfw_event_denial *d = &s->first;
  char when[40] = "";
  bool first = true;

  (void)lf_time_format(d->at_us, when, sizeof when);
  lfw_buf_puts(out, "{\"apiVersion\":\"events.k8s.io/v1\",\"kind\":\"Event\",\"metadata\":{");
  put_field(out, &first, "name", s->event_name);
  put_field(out, &first, "namespace", lfw_events_namespace(d));
  lfw_buf_puts(out, "},\"type\":\"Warning\",\"eventTime\":");
  lfw_json_cstring(out, when);
  lfw_buf_puts(out,
               ",\"reportingController\":\"" LFW_EVENTS_CONTROLLER "\",\"reportingInstance\":");
  lfw_json_cstring(out, instance);
  lfw_buf_puts(out, ",\"action\":");
  lfw_json_cstring(out, d->action);
  lfw_buf_puts(out, ",\"reason\":");
  lfw_json_cstring(out, d->reason);
  lfw_buf_puts(out, ",\"note\":");
  lfw_json_cstring(out, d->note);
  lfw_buf_puts(out, ",\"regarding\":{");
  first = true;
  put_field(out, &first, "apiVersion", d->api_version);
  put_field(out, &first, "kind", d->kind);
  put_field(out, &first, "namespace", d->ns);
  put_field(out, &first, "name", d->name);
  put_field(out, &first, "uid", d->uid);
  lfw_buf_puts(out, "}");
  if (d->pod[0] != '\0') {
    lfw_buf_puts(out, ",\"related\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\"");
    first = false;
    put_field(out, &first, "namespace", d->pod_ns);
    put_field(out, &first, "name", d->pod);
    lfw_buf_puts(out, "}");
  }
  if (count >= 2) {
    lfw_buf_puts(out, ",");
    put_series(out, s, count);
  }
  lfw_buf_puts(out, "}");
  return out->overflow ? -1 : 0;
}

int lfw_events_format_patch(const lfw_events_series *s, uint32_t count, lfw_buf *out) {
  lfw_buf_puts(out, "{");
  put_series(out, s, count);
  lfw_buf_puts(out, "}");
  return out->overflow ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Queue and sender                                                         */

struct lfw_events {
  lf_kube_client *client; /* Borrowed, unless own_client. */
  bool own_client;
  int64_t timeout_ms;
  char instance[LFW_EVENTS_INSTANCE_MAX + 1];
  lfw_events_table table;   /* The sender thread's alone. */
  lfw_events_bucket bucket; /* Likewise. */

  pthread_mutex_t mu;
  pthread_cond_t cond;     /* Signalled on a new denial and on stop. */
  lfw_event_denial *queue; /* A ring of LFW_EVENTS_QUEUE_MAX records. */
  size_t head;
  size_t len;
  bool stop;
  bool started;
  pthread_t thread;
  lfw_event_denial *batch; /* The sender's copy of what it took off the queue. */
};

lfw_events *lfw_events_new(lf_kube_client *client, const lfw_events_options *opts) {
  lfw_events *ev = calloc(1, sizeof *ev);
  lfw_events_options o = {0};
  pthread_condattr_t attr;

  if (ev == NULL)
    return NULL;
  if (opts != NULL)
    o = *opts;
  ev->client = client;
  ev->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : LFW_EVENTS_TIMEOUT_MS_DEFAULT;
  if (o.instance != NULL) {
    copy_cut(ev->instance, sizeof ev->instance, o.instance);
  } else if (gethostname(ev->instance, sizeof ev->instance) != 0) {
    snprintf(ev->instance, sizeof ev->instance, "leasefence-webhook");
  }
  ev->instance[sizeof ev->instance - 1] = '\0';
  if (ev->instance[0] == '\0')
    snprintf(ev->instance, sizeof ev->instance, "leasefence-webhook");
  lfw_events_bucket_init(&ev->bucket, o.qps > 0 ? o.qps : LFW_EVENTS_QPS_DEFAULT,
                         o.burst > 0 ? o.burst : LFW_EVENTS_BURST_DEFAULT, lfw_realtime_us());
  ev->queue = calloc(LFW_EVENTS_QUEUE_MAX, sizeof *ev->queue);
  ev->batch = calloc(LFW_EVENTS_QUEUE_MAX, sizeof *ev->batch);
  if (ev->queue == NULL || ev->batch == NULL ||
      lfw_events_table_init(&ev->table, 0,
                            o.interval_us > 0 ? o.interval_us : LFW_EVENTS_INTERVAL_US_DEFAULT,
                            o.window_us > 0 ? o.window_us : LFW_EVENTS_WINDOW_US_DEFAULT) != 0) {
    lfw_events_table_free(&ev->table);
    free(ev->queue);
    free(ev->batch);
    free(ev);
    return NULL;
  }
  pthread_mutex_init(&ev->mu, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&ev->cond, &attr);
  pthread_condattr_destroy(&attr);
  return ev;
}

bool lfw_events_report(lfw_events *ev, const lfw_event_denial *d) {
  bool queued = false;

  if (ev == NULL)
    return false;
  pthread_mutex_lock(&ev->mu);
  if (ev->len < LFW_EVENTS_QUEUE_MAX && !ev->stop) {
    ev->queue[(ev->head + ev->len) % LFW_EVENTS_QUEUE_MAX] = *d;
    ev->len++;
    queued = true;
    pthread_cond_signal(&ev->cond);
  }
  pthread_mutex_unlock(&ev->mu);
  if (!queued)
    lfw_metrics_event(LFW_EV_DROPPED_QUEUE_FULL);
  return queued;
}

size_t lfw_events_pending(lfw_events *ev) {
  size_t n;

  pthread_mutex_lock(&ev->mu);
  n = ev->len;
  pthread_mutex_unlock(&ev->mu);
  return n;
}

/* Sends one request for slots[idx] and says what became of it. */
static lfw_events_outcome send_one(lfw_events *ev, lfw_events_verb verb, size_t idx,
                                   uint32_t count) {
  const lfw_events_series *s = &ev->table.slots[idx];
  char ns[3 * LF_NAMESPACE_MAX + 1];
  char name[3 * LF_NAME_MAX + 1];
  char path[sizeof ns + sizeof name + 64];
  lfw_buf body;
  lf_kube_req req;
  lf_error err;
  long status = 0;
  char *resp = NULL;
  size_t resp_len = 0;
  lfw_events_outcome outcome = LFW_EVENTS_FAILED;
  int rc;

  memset(&req, 0, sizeof req);
  memset(&err, 0, sizeof err);
  lfw_buf_init(&body, LFW_EVENTS_BODY_MAX);
  if (lf_kube_escape(lfw_events_namespace(&s->first), ns, sizeof ns) != LF_OK ||
      lf_kube_escape(s->event_name, name, sizeof name) != LF_OK) {
    snprintf(err.text, sizeof err.text, "the namespace or name does not fit a path");
    goto out;
  }
  if (verb == LFW_EVENTS_CREATE) {
    snprintf(path, sizeof path, "/apis/events.k8s.io/v1/namespaces/%s/events", ns);
    rc = lfw_events_format_create(s, count, ev->instance, &body);
    req.method = "POST";
  } else {
    snprintf(path, sizeof path, "/apis/events.k8s.io/v1/namespaces/%s/events/%s", ns, name);
    rc = lfw_events_format_patch(s, count, &body);
    req.method = "PATCH";
    req.content_type = "application/merge-patch+json";
  }
  if (rc != 0) {
    snprintf(err.text, sizeof err.text, "the Event does not fit %d bytes", LFW_EVENTS_BODY_MAX);
    goto out;
  }
  req.path = path;
  req.body = body.data;
  req.body_len = body.len;
  req.timeout_ms = ev->timeout_ms;
  req.max_bytes = 64 * 1024; /* The Event echoed back; anything longer is not kept. */
  if (ev->client == NULL) {
    snprintf(err.text, sizeof err.text, "no Kubernetes client");
    goto out;
  }
  rc = lf_kube_request(ev->client, &req, &status, &resp, &resp_len, &err);
  if (rc == LF_OK)
    rc = lf_kube_status_error(ev->client, status, resp, resp_len, "posting an Event", &err);
  if (rc == LF_OK)
    outcome = LFW_EVENTS_OK;
  else if (rc == LF_ENOTFOUND && verb == LFW_EVENTS_PATCH)
    outcome = LFW_EVENTS_GONE;

out:
  if (outcome == LFW_EVENTS_OK) {
    lfw_metrics_event(verb == LFW_EVENTS_CREATE ? LFW_EV_CREATED : LFW_EV_PATCHED);
  } else if (outcome == LFW_EVENTS_FAILED) {
    lfw_metrics_event(verb == LFW_EVENTS_CREATE ? LFW_EV_CREATE_FAILED : LFW_EV_PATCH_FAILED);
    lfw_log_json(LFW_LOG_INFO, "event not posted",
                 json_pack("{s:s,s:s,s:s,s:s}", "verb", req.method != NULL ? req.method : "",
                           "namespace", lfw_events_namespace(&s->first), "name", s->event_name,
                           "error", err.text));
  }
  free(resp);
  lfw_buf_free(&body);
  return outcome;
}

static void *run(void *arg) {
  lfw_events *ev = arg;
  int64_t wake_us = INT64_MAX;

  pthread_mutex_lock(&ev->mu);
  while (!ev->stop) {
    size_t n = 0;
    size_t i;
    int64_t now;

    while (ev->len > 0) {
      ev->batch[n++] = ev->queue[ev->head];
      ev->head = (ev->head + 1) % LFW_EVENTS_QUEUE_MAX;
      ev->len--;
    }
    pthread_mutex_unlock(&ev->mu);

    for (i = 0; i < n; i++) {
      lfw_events_add r = lfw_events_table_add(&ev->table, &ev->batch[i], ev->batch[i].at_us);

      if (r == LFW_EVENTS_AGGREGATED)
        lfw_metrics_event(LFW_EV_AGGREGATED);
      else if (r == LFW_EVENTS_FULL)
        lfw_metrics_event(LFW_EV_DROPPED_TABLE_FULL);
    }
    for (;;) {
      size_t idx = 0;
      uint32_t count = 0;
      lfw_events_verb verb;

      now = lfw_realtime_us();
      verb = lfw_events_table_next(&ev->table, &ev->bucket, now, &idx, &count, &wake_us);
      if (verb == LFW_EVENTS_NONE)
        break;
      lfw_events_table_sent(&ev->table, idx, verb, count, send_one(ev, verb, idx, count),
                            lfw_realtime_us());
      /* Stop promptly; what is left is dropped with the reporter. */
      pthread_mutex_lock(&ev->mu);
      if (ev->stop) {
        wake_us = INT64_MAX;
        pthread_mutex_unlock(&ev->mu);
        break;
      }
      pthread_mutex_unlock(&ev->mu);
    }

    pthread_mutex_lock(&ev->mu);
    if (ev->len > 0 || ev->stop)
      continue;
    if (wake_us == INT64_MAX) {
      pthread_cond_wait(&ev->cond, &ev->mu);
    } else {
      /* The table's times are wall-clock; the wait is on the monotonic
       * clock, so a step of the wall clock cannot stretch it. */
      struct timespec until;
      int64_t wait_us = wake_us - lfw_realtime_us();
      int64_t at;

      if (wait_us < 0)
        wait_us = 0;
      at = lfw_monotonic_us() + wait_us;
      until.tv_sec = (time_t)(at / 1000000);
      until.tv_nsec = (long)(at % 1000000) * 1000;
      pthread_cond_timedwait(&ev->cond, &ev->mu, &until);
    }
  }
  pthread_mutex_unlock(&ev->mu);
  return NULL;
}

int lfw_events_start(lfw_events *ev) {
  if (ev == NULL || ev->started)
    return -1;
  if (pthread_create(&ev->thread, NULL, run, ev) != 0)
    return -1;
  ev->started = true;
  return 0;
}

void lfw_events_free(lfw_events **evp) {
  lfw_events *ev;

  if (evp == NULL || *evp == NULL)
    return;
  ev = *evp;
  pthread_mutex_lock(&ev->mu);
  ev->stop = true;
  pthread_cond_signal(&ev->cond);
  pthread_mutex_unlock(&ev->mu);
  if (ev->started)
    pthread_join(ev->thread, NULL);
  pthread_cond_destroy(&ev->cond);
  pthread_mutex_destroy(&ev->mu);
  lfw_events_table_free(&ev->table);
  free(ev->queue);
  free(ev->batch);
  if (ev->own_client)
    lf_kube_client_free(&ev->client);
  free(ev);
  *evp = NULL;
}

int lfw_events_open(const char *kubeconfig, const lfw_events_options *opts, lfw_events **out,
                    lf_error *err) {
  lf_kube_config *cfg = NULL;
  lf_kube_client *client = NULL;
  lfw_events *ev = NULL;
  int rc;

  *out = NULL;
  if (kubeconfig != NULL && kubeconfig[0] != '\0')
    rc = lf_kube_config_from_kubeconfig(kubeconfig, NULL, &cfg, err);
  else
    rc = lf_kube_config_in_cluster(NULL, &cfg, err);
  if (rc != LF_OK)
    goto out;
  rc = lf_kube_client_new(&cfg, NULL, &client, err);
  if (rc != LF_OK)
    goto out;
  ev = lfw_events_new(client, opts);
  if (ev == NULL) {
    rc = LF_ENOMEM;
    snprintf(err->text, sizeof err->text, "out of memory");
    goto out;
  }
  ev->own_client = true;
  client = NULL;
  if (lfw_events_start(ev) != 0) {
    rc = LF_ENOMEM;
    snprintf(err->text, sizeof err->text, "cannot start the Event sender's thread");
    goto out;
  }
  *out = ev;
  ev = NULL;

out:
  if (rc != LF_OK && err != NULL)
    err->code = rc;
  lfw_events_free(&ev);
  lf_kube_client_free(&client);
  lf_kube_config_free(&cfg);
  return rc;
}
