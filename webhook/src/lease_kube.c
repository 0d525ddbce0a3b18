/*
 * lease_kube.c: Lease sources over the Kubernetes API.
 *
 * "kube" (strong, the default): every fenced decision reads its Lease with a
 * quorum GET. Decisions on one Lease share a read ("coalescing"), but only a
 * read that started after they arrived: a request that finds a read already
 * under way waits for the next one. So every decision rests on a read that
 * began after its request arrived, whatever the load, and under load one GET
 * serves many decisions.
 *
 * "kube-cached": a LIST and WATCH of Leases keeps a local copy. get() answers
 * from it only while the watch is confirmed alive and that Lease's copy
 * (by arrival and by its renewTime) is within the staleness bound;
 * otherwise, and whenever the review path
 * asks for a live read (LFW_LEASE_LIVE, set when a fresher Lease could
 * reverse a denial), it reads through the strong path. docs/protocol.md,
 * section 5a, gives the safety argument.
 */
#include "lease_kube.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BUCKETS 256
/* Leases with their own coalescing slot. Past this many, reads of further
 * Leases still work but are not shared; a cluster has far fewer Leases that
 * guard objects. */
#define SLOTS_MAX 4096
#define CACHE_BUCKETS 1024
/* Leases the cache holds; a LIST with more is refused (and the cache serves
 * nothing) rather than growing without bound. */
#define CACHE_MAX 100000
/* The server ends each watch after this long and we resume from the last
 * resourceVersion. Short, so that a stalled watch is noticed and close()
 * returns promptly. */
#define WATCH_PERIOD_S 5
/* Bounded so that close() (and so SIGTERM) never waits long on a LIST. */
#define LIST_TIMEOUT_MS 8000
#define LIST_MAX_BYTES (256u * 1024 * 1024)
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define PROBE_INTERVAL_MS 1000

/* Histogram bounds of Lease read latency, in seconds. */
static const double read_buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,  0.5,   1.0,  2.5};
#define N_BUCKETS (sizeof(read_buckets) / sizeof(read_buckets[0]))

enum { READ_OK, READ_NOT_FOUND, READ_DENIED, READ_TIMEOUT, READ_ERROR, READ_COUNT };
static const char *const result_names[READ_COUNT] = {"ok", "not_found", "denied", "timeout",
                                                     "error"};

enum { C_HIT, C_MISS_ABSENT, C_MISS_STALE, C_MISS_UNSYNCED, C_LIVE_ASKED, C_COUNT };
static const char *const cache_names[C_COUNT] = {"hit", "miss_absent", "miss_stale",
                                                 "miss_watch_down", "live_requested"};

/* One Lease's coalescing state. Reads are numbered: `started` counts reads
 * begun, `done` is the number of the last one finished, whose result is
 * kept here. */
typedef struct read_slot {
  lf_lease_ref ref;
  uint64_t started;
  uint64_t done;
  bool in_flight;
  int rc;
  lf_lease lease;
  lf_error err;
  pthread_cond_t cond;
  struct read_slot *next;
} read_slot;

typedef struct cache_entry {
  lf_lease lease;
  int64_t seen_us; /* Monotonic time this version of the Lease arrived. */
  struct cache_entry *next;
} cache_entry;

struct lfw_kube_source {
  lf_kube_client *client;
  int64_t read_timeout_us;

  pthread_mutex_t mu; /* Guards the slots. */
  read_slot *slots[SLOT_BUCKETS];
  size_t n_slots;

  atomic_bool ready;
  atomic_bool stop;
  pthread_mutex_t why_mu;
  char not_ready[LF_ERROR_TEXT_MAX + 64];
  char probe_ns[LF_NAMESPACE_MAX + 1];
  pthread_t prober;
  bool have_prober;

  /* Metrics: relaxed atomics, read by the /metrics renderer. */
  atomic_uint_fast64_t reads[READ_COUNT];
  atomic_uint_fast64_t read_hist[N_BUCKETS + 1];
  atomic_uint_fast64_t read_sum_us;
  atomic_uint_fast64_t coalesced;
  atomic_uint_fast64_t cache[C_COUNT];
  atomic_uint_fast64_t watch_restarts;
  atomic_uint_fast64_t relists;

  /* The watch cache (cached mode only). */
  bool cached;
  int64_t max_staleness_us;
  char list_path[2048];
  pthread_t watcher;
  bool have_watcher;
  pthread_mutex_t cache_mu; /* Guards everything below. */
  cache_entry *entries[CACHE_BUCKETS];
  size_t n_entries;
  bool synced;
  int64_t confirmed_us; /* Last time the watch proved itself current. */
  char rv[LF_RESOURCE_VERSION_MAX + 1];
  unsigned seed; /* Backoff jitter, different in every replica. */
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned hash_ref(const lf_lease_ref *ref, unsigned buckets) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = ref->ns; *p != '\0'; p++) {
    h = (h ^ (unsigned char)*p) * 16777619u;
  }
  h = (h ^ '/') * 16777619u;
  for (const char *p = ref->name; *p != '\0'; p++) {
    h = (h ^ (unsigned char)*p) * 16777619u;
  }
  return h % buckets;
}

static bool same_ref(const lf_lease_ref *a, const lf_lease_ref *b) {
  return strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0;
}

static void set_not_ready(lfw_kube_source *s, const char *why) {
  pthread_mutex_lock(&s->why_mu);
  snprintf(s->not_ready, sizeof(s->not_ready), "%s", why);
  pthread_mutex_unlock(&s->why_mu);
}

/* ------------------------------------------------------------------------ */
/* Strong reads                                                              */

static void count_read(lfw_kube_source *s, int rc, int64_t took_us) {
  int r = rc == LF_OK          ? READ_OK
          : rc == LF_ENOTFOUND ? READ_NOT_FOUND
          : rc == LF_EDENIED   ? READ_DENIED
          : rc == LF_ETIMEDOUT ? READ_TIMEOUT
                               : READ_ERROR;
  size_t b = 0;
  atomic_fetch_add_explicit(&s->reads[r], 1, memory_order_relaxed);
  while (b < N_BUCKETS && (double)took_us / 1e6 > read_buckets[b]) {
    b++;
  }
  atomic_fetch_add_explicit(&s->read_hist[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->read_sum_us, (uint_fast64_t)(took_us > 0 ? took_us : 0),
                            memory_order_relaxed);
  /* Any answer from the API server, even "not found", shows it is reachable
   * and lets us read Leases. */
  if ((rc == LF_OK || rc == LF_ENOTFOUND) && !s->cached) {
    atomic_store(&s->ready, true);
  }
}

/* One quorum GET, bounded by the earlier of the caller's deadline and the
 * source's own read timeout. */
static int read_once(lfw_kube_source *s, const lf_lease_ref *ref, int64_t deadline_us,
                     lf_lease *out, lf_error *err) {
  int64_t start = mono_us();
  int64_t end = deadline_us;
  int rc;
  if (start + s->read_timeout_us < end) {
    end = start + s->read_timeout_us;
  }
  if (end - start < 1000) {
    err->code = LF_ETIMEDOUT;
    snprintf(err->text, sizeof(err->text), "no time left to read the Lease");
    rc = LF_ETIMEDOUT;
  } else {
    rc = lf_kube_get_lease(s->client, ref, (end - start) / 1000, out, err);
    /* A pooled connection the server has closed in the meantime fails at
     * once (a connection reset, or a stream "not closed cleanly", say). A GET is
     * idempotent, so one more try, on a fresh connection, within the same
     * deadline. */
    int64_t left = end - mono_us();
    if (rc == LF_EIO && left > 50000) {
      memset(err, 0, sizeof(*err));
      rc = lf_kube_get_lease(s->client, ref, left / 1000, out, err);
    }
  }
  count_read(s, rc, mono_us() - start);
  return rc;
}

/* Finds or makes the slot of `ref`; NULL when the table is full. Called
 * with `mu` held. */
static read_slot *slot_for(lfw_kube_source *s, const lf_lease_ref *ref) {
  unsigned h = hash_ref(ref, SLOT_BUCKETS);
  read_slot *slot;
  pthread_condattr_t attr;

  for (slot = s->slots[h]; slot != NULL; slot = slot->next) {
    if (same_ref(&slot->ref, ref)) {
      return slot;
    }
  }
  if (s->n_slots >= SLOTS_MAX) {
    return NULL;
  }
  slot = calloc(1, sizeof(*slot));
  if (slot == NULL) {
    return NULL;
  }
  slot->ref = *ref;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&slot->cond, &attr);
  pthread_condattr_destroy(&attr);
  slot->next = s->slots[h];
  s->slots[h] = slot;
  s->n_slots++;
  return slot;
}

static int strong_get(lfw_kube_source *s, const lf_lease_ref *ref, int64_t deadline_us,
                      lf_lease *out, lf_error *err) {
  read_slot *slot;
  uint64_t need;
  uint64_t own = 0; /* The number of the read this caller made, if any. */
  int rc;

  pthread_mutex_lock(&s->mu);
  slot = slot_for(s, ref);
  if (slot == NULL) {
    pthread_mutex_unlock(&s->mu);
    return read_once(s, ref, deadline_us, out, err);
  }
  /* The read we may use is the next one to start: one under way now began
   * before we arrived. */
  need = slot->started + 1;
  for (;;) {
    while (slot->done < need) {
      if (!slot->in_flight) {
        uint64_t mine = ++slot->started;
        lf_lease lease;
        lf_error rerr;
        own = mine;
        memset(&lease, 0, sizeof(lease));
        slot->in_flight = true;
        pthread_mutex_unlock(&s->mu);
        memset(&rerr, 0, sizeof(rerr));
        rc = read_once(s, ref, deadline_us, &lease, &rerr);
        pthread_mutex_lock(&s->mu);
        slot->rc = rc;
        slot->lease = lease;
        slot->err = rerr;
        slot->done = mine;
        slot->in_flight = false;
        pthread_cond_broadcast(&slot->cond);
        continue;
      }
      struct timespec until = {.tv_sec = deadline_us / 1000000,
                               .tv_nsec = (long)(deadline_us % 1000000) * 1000};
      if (pthread_cond_timedwait(&slot->cond, &s->mu, &until) != 0 && slot->done < need) {
        pthread_mutex_unlock(&s->mu);
        err->code = LF_ETIMEDOUT;
        snprintf(err->text, sizeof(err->text), "timed out waiting for the read of Lease %s/%s",
                 ref->ns, ref->name);
        return LF_ETIMEDOUT;
      }
    }
    /* A read is bounded by the deadline of the request that started it. If it
   * ran out on that budget while ours has time left, it says nothing about
   * the Lease: read again (the next read to start is after our arrival too). */
    if (slot->rc == LF_ETIMEDOUT && slot->done != own && mono_us() + 1000 < deadline_us) {
      need = slot->started + 1;
      continue;
    }
    break;
  }
  if (slot->done != own) {
    /* Someone else's read, started after we arrived, answered for us (the
     * next one, or a later one). */
    atomic_fetch_add_explicit(&s->coalesced, 1, memory_order_relaxed);
  }
  rc = slot->rc;
  if (rc == LF_OK) {
    *out = slot->lease;
  } else {
    *err = slot->err;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The watch cache                                                           */

static cache_entry **cache_find(lfw_kube_source *s, const lf_lease_ref *ref) {
  cache_entry **p = &s->entries[hash_ref(ref, CACHE_BUCKETS)];
  while (*p != NULL && !same_ref(&(*p)->lease.ref, ref)) {
    p = &(*p)->next;
  }
  return p;
}

/* Called with cache_mu held. */
static void cache_put(lfw_kube_source *s, const lf_lease *lease, int64_t now) {
  cache_entry **p = cache_find(s, &lease->ref);
  cache_entry *e = *p;
  if (e == NULL) {
    if (s->n_entries >= CACHE_MAX) {
      return;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
      return;
    }
    *p = e; /* The bucket's chain owns it from here. */
    s->n_entries++;
  }
  e->lease = *lease;
  e->seen_us = now;
}

static void cache_remove(lfw_kube_source *s, const lf_lease_ref *ref) {
  cache_entry **p = cache_find(s, ref);
  if (*p != NULL) {
    cache_entry *e = *p;
    *p = e->next;
    free(e);
    s->n_entries--;
  }
}

static void cache_clear(lfw_kube_source *s) {
  for (size_t i = 0; i < CACHE_BUCKETS; i++) {
    cache_entry *e = s->entries[i];
    while (e != NULL) {
      cache_entry *next = e->next;
      free(e);
      e = next;
    }
    s->entries[i] = NULL;
  }
  s->n_entries = 0;
}

static void copy_rv(lfw_kube_source *s, const json_t *object) {
  const char *rv =
      json_string_value(json_object_get(json_object_get(object, "metadata"), "resourceVersion"));
  if (rv != NULL && strlen(rv) <= LF_RESOURCE_VERSION_MAX) {
    snprintf(s->rv, sizeof(s->rv), "%s", rv);
  }
}

/* LIST: replaces the cache with what the API server has now. */
static int relist(lfw_kube_source *s, lf_error *err) {
  json_t *list = NULL, *item;
  size_t i;
  int rc;
  int64_t now;

  rc = lf_kube_get_json(s->client, s->list_path, NULL, LIST_TIMEOUT_MS, LIST_MAX_BYTES,
                        "the list of Leases", &list, err);
  if (rc != LF_OK) {
    return rc;
  }
  json_t *items = json_object_get(list, "items");
  if (!json_is_array(items) || json_array_size(items) > CACHE_MAX) {
    json_decref(list);
    err->code = LF_EINVAL;
    snprintf(err->text, sizeof(err->text), "the list of Leases has no items or more than %d",
             CACHE_MAX);
    return LF_EINVAL;
  }
  now = mono_us();
  pthread_mutex_lock(&s->cache_mu);
  cache_clear(s);
  json_array_foreach(items, i, item) {
    lf_lease lease;
    lf_error lerr;
    if (lf_lease_from_json(item, &lease, &lerr) == LF_OK) {
      cache_put(s, &lease, now);
    }
  }
  copy_rv(s, list);
  s->synced = true;
  s->confirmed_us = now;
  pthread_mutex_unlock(&s->cache_mu);
  atomic_fetch_add_explicit(&s->relists, 1, memory_order_relaxed);
  atomic_store(&s->ready, true);
  json_decref(list);
  return LF_OK;
}

/* Watch event handler; `arg` is the source. Returns non-zero to end the
 * watch: on shutdown, and on an ERROR event (410 Gone: our resourceVersion
 * is too old, so re-list). */
static int on_event(const char *type, json_t *object, void *arg) {
  lfw_kube_source *s = arg;
  int64_t now = mono_us();
  lf_lease lease;
  lf_error lerr;
  int stop = atomic_load(&s->stop) ? 1 : 0;

  if (strcmp(type, "ERROR") == 0) {
    pthread_mutex_lock(&s->cache_mu);
    s->synced = false; /* Usually 410 Gone; either way, start over. */
    pthread_mutex_unlock(&s->cache_mu);
    return 1;
  }
  pthread_mutex_lock(&s->cache_mu);
  if (strcmp(type, "BOOKMARK") != 0) {
    if (lf_lease_from_json(object, &lease, &lerr) == LF_OK) {
      if (strcmp(type, "DELETED") == 0) {
        cache_remove(s, &lease.ref);
      } else {
        cache_put(s, &lease, now);
      }
    } else {
      /* A Lease we cannot model (say, a holder over 256 bytes): keeping the
       * previous copy would serve an old term, so forget it; lookups of it
       * then read live and report the problem. */
      const json_t *meta = json_object_get(object, "metadata");
      const char *ns = json_string_value(json_object_get(meta, "namespace"));
      const char *name = json_string_value(json_object_get(meta, "name"));
      lf_lease_ref ref;
      if (ns != NULL && name != NULL && strlen(ns) <= LF_NAMESPACE_MAX &&
          strlen(name) <= LF_NAME_MAX) {
        snprintf(ref.ns, sizeof(ref.ns), "%s", ns);
        snprintf(ref.name, sizeof(ref.name), "%s", name);
        cache_remove(s, &ref);
      }
    }
  }
  copy_rv(s, object);
  s->confirmed_us = now;
  pthread_mutex_unlock(&s->cache_mu);
  return stop;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Sleeps about `*backoff` ms with jitter, in small steps so stop is seen,
 * and doubles it up to the maximum. */
static void backoff(lfw_kube_source *s, int64_t *backoff_ms) {
  int64_t total = *backoff_ms / 2 + rand_r(&s->seed) % (*backoff_ms / 2 + 1);
  for (int64_t slept = 0; slept < total && !atomic_load(&s->stop); slept += 100) {
    sleep_ms(total - slept < 100 ? total - slept : 100);
  }
  *backoff_ms = *backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff_ms * 2;
}

static void *watch_loop(void *arg) {
  lfw_kube_source *s = arg;
  int64_t backoff_ms = BACKOFF_MIN_MS;
  char path[2048 + 160]; /* list_path and the watch parameters */
  lf_error err;

  while (!atomic_load(&s->stop)) {
    bool synced;
    pthread_mutex_lock(&s->cache_mu);
    synced = s->synced;
    pthread_mutex_unlock(&s->cache_mu);
    if (!synced) {
      memset(&err, 0, sizeof(err));
      if (relist(s, &err) != LF_OK) {
        char why[LF_ERROR_TEXT_MAX + 64];
        snprintf(why, sizeof(why), "cannot list Leases: %s", err.text);
        set_not_ready(s, why);
        backoff(s, &backoff_ms);
        continue;
      }
    }
    pthread_mutex_lock(&s->cache_mu);
    snprintf(path, sizeof(path),
             "%s%swatch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
             s->list_path, strchr(s->list_path, '?') != NULL ? "&" : "?", WATCH_PERIOD_S, s->rv);
    pthread_mutex_unlock(&s->cache_mu);

    memset(&err, 0, sizeof(err));
    int64_t began = mono_us();
    int rc = lf_kube_watch(s->client, path, (WATCH_PERIOD_S + 3) * 1000, on_event, s, &err);
    int64_t now = mono_us();
    pthread_mutex_lock(&s->cache_mu);
    bool still_synced = s->synced;
    if (rc == LF_OK && still_synced) {
      /* The server ended the stream at timeoutSeconds: it has sent us
       * everything up to now. */
      s->confirmed_us = now;
    }
    if (rc != LF_OK && rc != LF_ETIMEDOUT) {
      s->synced = false; /* Events may be lost (oversized event, refusal). */
    }
    pthread_mutex_unlock(&s->cache_mu);
    if (rc == LF_OK && still_synced && now - began >= 1000000) {
      backoff_ms = BACKOFF_MIN_MS;
      continue;
    }
    if (rc == LF_OK && still_synced) {
      /* Ended well before timeoutSeconds (a proxy closing streams, say):
       * not an error, but do not spin on it. */
      backoff(s, &backoff_ms);
      continue;
    }
    atomic_fetch_add_explicit(&s->watch_restarts, 1, memory_order_relaxed);
    if (!atomic_load(&s->stop)) {
      backoff(s, &backoff_ms);
    }
  }
  return NULL;
}

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Is this copy young enough to decide on? Its arrival alone cannot say: a
 * watch that lags but keeps flowing delivers every copy late, each one
 * freshly arrived, and a release or a delete written meanwhile would stay
 * unseen for as long as the lag. So the copy's content must be young too:
 * its renewTime (acquireTime when it has none), written by the holder with
 * the holder's clock, within the bound of our wall clock. A copy served now
 * was written before any change the cache has not seen, so the cache stops
 * deciding on it no later than the bound after that change, plus the
 * smaller of the watch's lag (arrival) and the holder's clock lead
 * (content): docs/protocol.md, section 5a. A holder renews every
 * retryPeriod (2 s), well within the default bound of 3 s. */
static bool copy_fresh(const cache_entry *e, int64_t now_mono, int64_t now_wall, int64_t bound) {
  int64_t written = e->lease.renew_us != LF_TIME_NONE ? e->lease.renew_us : e->lease.acquire_us;
  return now_mono - e->seen_us <= bound && written != LF_TIME_NONE && now_wall - written <= bound;
}

static int cached_get(lfw_kube_source *s, const lf_lease_ref *ref, lf_lease *out) {
  int64_t now = mono_us();
  int64_t wall = wall_us();
  int result;
  pthread_mutex_lock(&s->cache_mu);
  /* The watch must have proved itself current recently: each stream ends
   * (cleanly) every WATCH_PERIOD_S, so a longer silence means it stalled. */
  if (!s->synced || now - s->confirmed_us > (WATCH_PERIOD_S + 2) * INT64_C(1000000)) {
    result = C_MISS_UNSYNCED;
  } else {
    cache_entry **p = cache_find(s, ref);
    if (*p == NULL) {
      result = C_MISS_ABSENT;
    } else if (!copy_fresh(*p, now, wall, s->max_staleness_us)) {
      result = C_MISS_STALE;
    } else {
      *out = (*p)->lease;
      result = C_HIT;
    }
  }
  pthread_mutex_unlock(&s->cache_mu);
  atomic_fetch_add_explicit(&s->cache[result], 1, memory_order_relaxed);
  return result == C_HIT ? LF_OK : LF_ENOTFOUND;
}

/* ------------------------------------------------------------------------ */
/* The source interface                                                      */

static int src_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                   lf_lease *out, lf_error *err) {
  lfw_kube_source *s = ctx;
  if (s->cached) {
    if ((flags & LFW_LEASE_LIVE) != 0) {
      atomic_fetch_add_explicit(&s->cache[C_LIVE_ASKED], 1, memory_order_relaxed);
    } else if (cached_get(s, ref, out) == LF_OK) {
      return LF_OK;
    }
  }
  return strong_get(s, ref, deadline_us, out, err);
}

/* "." and ".." pass the escaping unchanged and would move the path. */
static bool dot_segment(const char *seg) {
  return strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0;
}

static int src_parent_metadata(void *ctx, const char *group, const char *version,
                               const char *resource, const char *ns, const char *name,
                               int64_t deadline_us, json_t **out, lf_error *err) {
  lfw_kube_source *s = ctx;
  char g[3 * 253 + 1], v[3 * 63 + 1], r[3 * 253 + 1], n[3 * LF_NAMESPACE_MAX + 1],
      o[3 * LF_NAME_MAX + 1], path[4096];
  json_t *obj = NULL;
  int64_t left_ms = (deadline_us - mono_us()) / 1000;
  int rc;

  *out = NULL;
  if (lf_kube_escape(group, g, sizeof(g)) != LF_OK ||
      lf_kube_escape(version, v, sizeof(v)) != LF_OK ||
      lf_kube_escape(resource, r, sizeof(r)) != LF_OK ||
      lf_kube_escape(ns, n, sizeof(n)) != LF_OK || lf_kube_escape(name, o, sizeof(o)) != LF_OK ||
      version[0] == '\0' || name[0] == '\0' || dot_segment(group) || dot_segment(version) ||
      dot_segment(resource) || dot_segment(ns) || dot_segment(name)) {
    err->code = LF_EINVAL;
    snprintf(err->text, sizeof(err->text), "the request does not name its object's resource");
    return LF_EINVAL;
  }
  if (left_ms <= 0) {
    err->code = LF_ETIMEDOUT;
    snprintf(err->text, sizeof(err->text), "no time left to read the scaled object");
    return LF_ETIMEDOUT;
  }
  /* /apis/<group>/<version>[/namespaces/<ns>]/<resource>/<name>, or /api/v1/... */
  snprintf(path, sizeof(path), "%s%s/%s%s%s/%s/%s", g[0] != '\0' ? "/apis/" : "/api", g, v,
           n[0] != '\0' ? "/namespaces/" : "", n, r, o);
  rc = lf_kube_get_json(s->client, path, LF_KUBE_ACCEPT_PARTIAL_METADATA, left_ms,
                        LF_LEASE_JSON_MAX, "the scaled object", &obj, err);
  if (rc != LF_OK) {
    return rc;
  }
  json_t *meta = json_object_get(obj, "metadata");
  if (!json_is_object(meta)) {
    json_decref(obj);
    err->code = LF_EINVAL;
    snprintf(err->text, sizeof(err->text), "the scaled object has no metadata");
    return LF_EINVAL;
  }
  *out = json_incref(meta);
  json_decref(obj);
  return LF_OK;
}

static bool src_ready(void *ctx, char *why, size_t why_size) {
  lfw_kube_source *s = ctx;
  if (atomic_load(&s->ready)) {
    return true;
  }
  pthread_mutex_lock(&s->why_mu);
  snprintf(why, why_size, "%s", s->not_ready);
  pthread_mutex_unlock(&s->why_mu);
  return false;
}

/* Strong mode is ready once the API server has answered one Lease read. At
 * start, before any write arrives, this probe makes that read: a GET of a
 * Lease that need not exist (404 proves reachability, credentials and the
 * `get` permission as well as 200 does). Once ready, the source stays ready:
 * an API server that goes away later is reported in each denial, which tells
 * the writer more than a webhook with no endpoints would. */
static void *probe_loop(void *arg) {
  lfw_kube_source *s = arg;
  lf_lease_ref ref;
  snprintf(ref.ns, sizeof(ref.ns), "%s", s->probe_ns);
  snprintf(ref.name, sizeof(ref.name), "leasefence-readiness-probe");
  while (!atomic_load(&s->stop) && !atomic_load(&s->ready)) {
    lf_lease lease;
    lf_error err;
    memset(&err, 0, sizeof(err));
    int rc = read_once(s, &ref, mono_us() + 3000000, &lease, &err);
    if (rc != LF_OK && rc != LF_ENOTFOUND) {
      char why[LF_ERROR_TEXT_MAX + 64];
      snprintf(why, sizeof(why), "cannot read Leases yet: %s", err.text);
      set_not_ready(s, why);
      for (int i = 0; i < PROBE_INTERVAL_MS / 100 && !atomic_load(&s->stop); i++) {
        sleep_ms(100);
      }
    }
  }
  return NULL;
}

static void src_close(void *ctx) {
  lfw_kube_source *s = ctx;
  if (s == NULL) {
    return;
  }
  atomic_store(&s->stop, true);
  if (s->have_prober) {
    pthread_join(s->prober, NULL);
  }
  if (s->have_watcher) {
    pthread_join(s->watcher, NULL);
  }
  for (size_t i = 0; i < SLOT_BUCKETS; i++) {
    read_slot *slot = s->slots[i];
    while (slot != NULL) {
      read_slot *next = slot->next;
      pthread_cond_destroy(&slot->cond);
      free(slot);
      slot = next;
    }
  }
  cache_clear(s);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->cache_mu);
  pthread_mutex_destroy(&s->why_mu);
  lf_kube_client_free(&s->client);
  free(s);
}

int lfw_lease_kube_open(const lfw_kube_options *opts, lfw_lease_source *out, lf_error *err) {
  lfw_kube_source *s = NULL;
  lf_kube_config *cfg = NULL;
  int rc;

  memset(out, 0, sizeof(*out));
  if (opts->kubeconfig != NULL && opts->kubeconfig[0] != '\0') {
    rc = lf_kube_config_from_kubeconfig(opts->kubeconfig, NULL, &cfg, err);
  } else {
    rc = lf_kube_config_in_cluster(NULL, &cfg, err);
  }
  if (rc != LF_OK) {
    goto out;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    rc = LF_ENOMEM;
    snprintf(err->text, sizeof(err->text), "out of memory");
    goto out;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->cache_mu, NULL);
  pthread_mutex_init(&s->why_mu, NULL);
  snprintf(s->not_ready, sizeof(s->not_ready), "no Lease has been read yet");
  s->read_timeout_us = opts->read_timeout_us > 0 ? opts->read_timeout_us : 1000000;
  s->seed = (unsigned)mono_us() ^ (unsigned)getpid();
  s->cached = opts->cached;
  s->max_staleness_us = opts->max_staleness_us > 0 ? opts->max_staleness_us : 3000000;
  snprintf(s->probe_ns, sizeof(s->probe_ns), "%s",
           cfg->ns != NULL && cfg->ns[0] != '\0' ? cfg->ns : "default");

  if (s->cached) {
    char ns[3 * LF_NAMESPACE_MAX + 1] = "";
    char sel[3 * 512 + 1] = "";
    if (opts->cache_namespace != NULL && opts->cache_namespace[0] != '\0' &&
        lf_kube_escape(opts->cache_namespace, ns, sizeof(ns)) != LF_OK) {
      rc = LF_EINVAL;
      snprintf(err->text, sizeof(err->text), "--cache-namespace is too long");
      goto out;
    }
    if (opts->cache_label_selector != NULL && opts->cache_label_selector[0] != '\0' &&
        lf_kube_escape(opts->cache_label_selector, sel, sizeof(sel)) != LF_OK) {
      rc = LF_EINVAL;
      snprintf(err->text, sizeof(err->text), "--cache-label-selector is too long");
      goto out;
    }
    int n = snprintf(
        s->list_path, sizeof(s->list_path), "/apis/coordination.k8s.io/v1%s%s/leases%s%s",
        ns[0] != '\0' ? "/namespaces/" : "", ns, sel[0] != '\0' ? "?labelSelector=" : "", sel);
    if (n < 0 || (size_t)n >= sizeof(s->list_path)) {
      rc = LF_ETOOBIG;
      snprintf(err->text, sizeof(err->text), "--cache-label-selector is too long");
      goto out;
    }
  }

  rc = lf_kube_client_new(&cfg, NULL, &s->client, err);
  if (rc != LF_OK) {
    goto out;
  }
  if (s->cached) {
    s->have_watcher = pthread_create(&s->watcher, NULL, watch_loop, s) == 0;
  } else {
    s->have_prober = pthread_create(&s->prober, NULL, probe_loop, s) == 0;
  }
  if (!(s->cached ? s->have_watcher : s->have_prober)) {
    rc = LF_ENOMEM;
    snprintf(err->text, sizeof(err->text), "cannot start the Lease source's thread");
    goto out;
  }

  out->name = s->cached ? "kube-cached" : "kube";
  out->ctx = s;
  out->get = src_get;
  out->ready = src_ready;
  out->close = src_close;
  out->caches = s->cached;
  out->metrics = lfw_lease_kube_metrics;
  out->parent_metadata = src_parent_metadata;
  s = NULL;
  rc = LF_OK;

out:
  if (err != NULL && rc != LF_OK) {
    err->code = rc;
  }
  src_close(s);
  lf_kube_config_free(&cfg);
  return rc;
}

int lfw_lease_kube_metrics(void *ctx, lfw_buf *out) {
  lfw_kube_source *s = ctx;
  uint_fast64_t cum = 0;

  lfw_buf_puts(out,
               "# HELP leasefence_lease_reads_total Lease reads from the API server, by result.\n"
               "# TYPE leasefence_lease_reads_total counter\n");
  for (int r = 0; r < READ_COUNT; r++) {
    lfw_buf_printf(out, "leasefence_lease_reads_total{result=\"%s\"} %" PRIuFAST64 "\n",
                   result_names[r], atomic_load_explicit(&s->reads[r], memory_order_relaxed));
  }
  lfw_buf_puts(out, "# HELP leasefence_lease_read_duration_seconds Latency of Lease reads.\n"
                    "# TYPE leasefence_lease_read_duration_seconds histogram\n");
  for (size_t b = 0; b <= N_BUCKETS; b++) {
    cum += atomic_load_explicit(&s->read_hist[b], memory_order_relaxed);
    if (b < N_BUCKETS) {
      lfw_buf_printf(out,
                     "leasefence_lease_read_duration_seconds_bucket{le=\"%g\"} %" PRIuFAST64 "\n",
                     read_buckets[b], cum);
    } else {
      lfw_buf_printf(
          out, "leasefence_lease_read_duration_seconds_bucket{le=\"+Inf\"} %" PRIuFAST64 "\n", cum);
    }
  }
  lfw_buf_printf(out, "leasefence_lease_read_duration_seconds_sum %.6f\n",
                 (double)atomic_load_explicit(&s->read_sum_us, memory_order_relaxed) / 1e6);
  lfw_buf_printf(out, "leasefence_lease_read_duration_seconds_count %" PRIuFAST64 "\n", cum);
  lfw_buf_printf(out,
                 "# HELP leasefence_lease_reads_coalesced_total Decisions answered by a Lease read "
                 "another decision started (after they arrived).\n"
                 "# TYPE leasefence_lease_reads_coalesced_total counter\n"
                 "leasefence_lease_reads_coalesced_total %" PRIuFAST64 "\n",
                 atomic_load_explicit(&s->coalesced, memory_order_relaxed));
  if (!s->cached) {
    return out->overflow ? -1 : 0;
  }
  lfw_buf_puts(out, "# HELP leasefence_lease_cache_lookups_total Lease cache lookups, by outcome.\n"
                    "# TYPE leasefence_lease_cache_lookups_total counter\n");
  for (int c = 0; c < C_COUNT; c++) {
    lfw_buf_printf(out, "leasefence_lease_cache_lookups_total{result=\"%s\"} %" PRIuFAST64 "\n",
                   cache_names[c], atomic_load_explicit(&s->cache[c], memory_order_relaxed));
  }
  int64_t now = mono_us();
  pthread_mutex_lock(&s->cache_mu);
  double age = s->synced ? (double)(now - s->confirmed_us) / 1e6 : -1;
  size_t n = s->n_entries;
  pthread_mutex_unlock(&s->cache_mu);
  lfw_buf_printf(out,
                 "# HELP leasefence_lease_watch_restarts_total Lease watches that failed and were "
                 "restarted.\n# TYPE leasefence_lease_watch_restarts_total counter\n"
                 "leasefence_lease_watch_restarts_total %" PRIuFAST64 "\n"
                 "# HELP leasefence_lease_relists_total Full LISTs of Leases.\n"
                 "# TYPE leasefence_lease_relists_total counter\n"
                 "leasefence_lease_relists_total %" PRIuFAST64 "\n"
                 "# HELP leasefence_lease_cache_age_seconds Time since the watch last proved the "
                 "cache current (-1 before the first sync).\n"
                 "# TYPE leasefence_lease_cache_age_seconds gauge\n"
                 "leasefence_lease_cache_age_seconds %.3f\n"
                 "# HELP leasefence_lease_cache_leases Leases in the cache.\n"
                 "# TYPE leasefence_lease_cache_leases gauge\n"
                 "leasefence_lease_cache_leases %zu\n",
                 atomic_load_explicit(&s->watch_restarts, memory_order_relaxed),
                 atomic_load_explicit(&s->relists, memory_order_relaxed), age, n);
  return out->overflow ? -1 : 0;
}
