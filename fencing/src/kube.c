/*
 * kube.c: the Kubernetes API client: a pool of curl easy handles that share
 * a DNS and TLS session cache; bearer tokens that follow their file; bounded
 * bodies; Lease GETs, generic requests and watch streams.
 *
 * Connection reuse comes from the pool, not from a shared connection cache:
 * libcurl documents CURL_LOCK_DATA_CONNECT as unsupported between concurrent
 * threads (CURLSHOPT_SHARE(3), known bug curl#4915). Each easy handle keeps
 * its own live connections across curl_easy_reset(), and the pool hands out
 * the most recently used handle first, so a request usually finds a warm
 * connection; concurrent requests use one connection each.
 */
#include "kube_internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef LF_KUBE_VERSION
#define LF_KUBE_VERSION "0"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_TOKEN_RECHECK_MS 1000
#define DEFAULT_MAX_IDLE_HANDLES 8
/* How long libcurl may keep the trust store built from a CA file. */
#define CA_CACHE_SECONDS 60L
/* Bytes of a refused watch's body kept for the error message. */
#define WATCH_ERROR_BODY_MAX (64 * 1024)

struct lf_kube_client {
  lf_kube_config *cfg;
  int64_t connect_timeout_ms;
  int64_t token_recheck_ms;
  char *user_agent;

  /* DNS and TLS sessions shared by all handles; one lock per kind of shared
   * data, as curl asks (CURLSHOPT_LOCKFUNC). */
  CURLSH *share;
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

  /* Idle easy handles, a stack: a request pops the most recently used one
   * (its connection is the likeliest to be alive) or makes a new one. */
  pthread_mutex_t pool_lock;
  CURL **idle;
  unsigned n_idle;
  unsigned max_idle;

  /* The current "Authorization: Bearer ..." header line (NULL: no token) and
   * what the token file looked like when it was read. */
  pthread_mutex_t token_lock;
  char *auth_header;
  int64_t token_checked_ms; /* Monotonic time of the last look at the file. */
  bool token_recheck_now;   /* Set by a 401: the token may have rotated. */
  dev_t token_dev;
  ino_t token_ino;
  off_t token_size;
  struct timespec token_mtime;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                   */

/* Builds the header line for `token`, refusing bytes that would break the
 * header. The token itself never appears in an error text. */
static int make_auth_header(const char *token, size_t len, char **out, lf_error *err) {
  char *line = NULL;
  if (len == 0) {
    return lf__kube_fail(err, LF_EINVAL, "the bearer token is empty");
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)token[i];
    if (ch < 0x21 || ch > 0x7e) {
      return lf__kube_fail(err, LF_EINVAL,
                           "the bearer token holds a byte that cannot go in an HTTP header "
                           "(at offset %zu)",
                           i);
    }
  }
  if (asprintf(&line, "Authorization: Bearer %.*s", (int)len, token) < 0) {
    return lf__kube_fail(err, LF_ENOMEM, "out of memory");
  }
  *out = line;
  return LF_OK;
}

/* Reads the token file into a new header line and records its identity.
 * Called with token_lock held (or before the client is shared). */
static int token_reload(lf_kube_client *c, const struct stat *st, lf_error *err) {
  int rc;
  char *buf = NULL;
  size_t len = 0;
  char *line = NULL;

  rc = lf__kube_read_file(c->cfg->token_file, LF_KUBE_TOKEN_MAX, "token file", &buf, &len, err);
  if (rc != LF_OK) {
    goto out;
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                     buf[len - 1] == '\t')) {
    len--;
  }
  rc = make_auth_header(buf, len, &line, err);
  if (rc != LF_OK) {
    goto out;
  }
  lf__kube_str_wipe(&c->auth_header);
  c->auth_header = line;
  c->token_dev = st->st_dev;
  c->token_ino = st->st_ino;
  c->token_size = st->st_size;
  c->token_mtime = st->st_mtim;

out:
  if (buf != NULL) {
    explicit_bzero(buf, len);
    free(buf);
  }
  return rc;
}

/*
 * A copy of the current header line (NULL when there is no token), after
 * re-reading the token file if it changed. A file that cannot be read now
 * keeps the previous token: the old one is likely still valid for a while,
 * and the next check tries again.
 */
static int token_header(lf_kube_client *c, char **out, lf_error *err) {
  int rc = LF_OK;
  int64_t now;
  struct stat st;

  *out = NULL;
  pthread_mutex_lock(&c->token_lock);
  if (c->cfg->token_file != NULL) {
    now = monotonic_ms();
    if (c->token_recheck_now || c->token_recheck_ms < 0 ||
        now - c->token_checked_ms >= c->token_recheck_ms) {
      c->token_checked_ms = now;
      c->token_recheck_now = false;
      /* stat() follows the kubelet's ..data symlink swap, so a rotation
       * shows up as another inode. */
      if (stat(c->cfg->token_file, &st) == 0 &&
          (st.st_ino != c->token_ino || st.st_dev != c->token_dev || st.st_size != c->token_size ||
           st.st_mtim.tv_sec != c->token_mtime.tv_sec ||
           st.st_mtim.tv_nsec != c->token_mtime.tv_nsec)) {
        lf_error ignored;
        (void)token_reload(c, &st, &ignored);
      }
    }
  }
  if (c->auth_header != NULL) {
    *out = strdup(c->auth_header);
    if (*out == NULL) {
      rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    }
  }
  pthread_mutex_unlock(&c->token_lock);
  return rc;
}

static void token_mark_rejected(lf_kube_client *c) {
  pthread_mutex_lock(&c->token_lock);
  c->token_recheck_now = true;
  pthread_mutex_unlock(&c->token_lock);
}

/* ------------------------------------------------------------------------ */
/* The client and its handle pool                                           */

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *arg) {
  lf_kube_client *c = arg;
  (void)handle;
  (void)access;
  if ((unsigned)data < CURL_LOCK_DATA_LAST) {
    pthread_mutex_lock(&c->share_locks[data]);
  }
}

static void share_unlock(CURL *handle, curl_lock_data data, void *arg) {
  lf_kube_client *c = arg;
  (void)handle;
  if ((unsigned)data < CURL_LOCK_DATA_LAST) {
    pthread_mutex_unlock(&c->share_locks[data]);
  }
}

int lf_kube_client_new(lf_kube_config **cfg, const lf_kube_options *opts, lf_kube_client **out,
                       lf_error *err) {
  int rc = LF_OK;
  lf_kube_client *c = NULL;
  bool locks_ready = false;

  *out = NULL;
  if (cfg == NULL || *cfg == NULL) {
    return lf__kube_fail(err, LF_EINVAL, "no configuration given");
  }
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK) {
    return lf__kube_fail(err, LF_EIO, "libcurl failed to initialise: %s",
                         curl_easy_strerror(global_rc));
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return lf__kube_fail(err, LF_ENOMEM, "out of memory");
  }
  c->cfg = *cfg;
  c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  c->token_recheck_ms = DEFAULT_TOKEN_RECHECK_MS;
  c->max_idle = DEFAULT_MAX_IDLE_HANDLES;
  if (opts != NULL) {
    if (opts->connect_timeout_ms > 0) {
      c->connect_timeout_ms = opts->connect_timeout_ms;
    }
    if (opts->token_recheck_ms != 0) {
      c->token_recheck_ms = opts->token_recheck_ms;
    }
    if (opts->max_idle_handles > 0) {
      c->max_idle = opts->max_idle_handles;
    }
  }
  if (opts != NULL && opts->user_agent != NULL) {
    c->user_agent = strdup(opts->user_agent);
  } else {
    c->user_agent = strdup("leasefence/" LF_KUBE_VERSION);
  }
  c->idle = calloc(c->max_idle, sizeof(*c->idle));
  if (c->user_agent == NULL || c->idle == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
    pthread_mutex_init(&c->share_locks[i], NULL);
  }
  pthread_mutex_init(&c->pool_lock, NULL);
  pthread_mutex_init(&c->token_lock, NULL);
  locks_ready = true;

  c->share = curl_share_init();
  if (c->share == NULL ||
      curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
      curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
      curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
      curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
      curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
    rc = lf__kube_fail(err, LF_EIO, "libcurl cannot share DNS and TLS sessions between handles");
    goto out;
  }

  if (c->cfg->token != NULL) {
    rc = make_auth_header(c->cfg->token, strlen(c->cfg->token), &c->auth_header, err);
  } else if (c->cfg->token_file != NULL) {
    struct stat st;
    if (stat(c->cfg->token_file, &st) != 0) {
      rc = lf__kube_fail(err, LF_EINVAL, "token file \"%s\" cannot be read", c->cfg->token_file);
    } else {
      rc = token_reload(c, &st, err);
    }
    c->token_checked_ms = monotonic_ms();
  }
  if (rc != LF_OK) {
    goto out;
  }
  *out = c;
  *cfg = NULL;
  c = NULL;

out:
  if (c != NULL) {
    /* The configuration stays the caller's on failure. */
    c->cfg = NULL;
    if (!locks_ready) {
      free(c->user_agent);
      free(c->idle);
      free(c);
    } else {
      lf_kube_client_free(&c);
    }
  }
  return rc;
}

void lf_kube_client_free(lf_kube_client **client) {
  lf_kube_client *c;
  if (client == NULL || *client == NULL) {
    return;
  }
  c = *client;
  for (unsigned i = 0; i < c->n_idle; i++) {
    curl_easy_cleanup(c->idle[i]);
  }
  /* The handles above closed their connections; none uses the share now. */
  if (c->share != NULL) {
    curl_share_cleanup(c->share);
  }
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
    pthread_mutex_destroy(&c->share_locks[i]);
  }
  pthread_mutex_destroy(&c->pool_lock);
  pthread_mutex_destroy(&c->token_lock);
  lf__kube_str_wipe(&c->auth_header);
  free(c->idle);
  free(c->user_agent);
  lf_kube_config_free(&c->cfg);
  free(c);
  *client = NULL;
}

const lf_kube_config *lf_kube_client_config(const lf_kube_client *client) {
  return client->cfg;
}

static CURL *handle_get(lf_kube_client *c) {
  CURL *h = NULL;
  pthread_mutex_lock(&c->pool_lock);
  if (c->n_idle > 0) {
    h = c->idle[--c->n_idle];
  }
  pthread_mutex_unlock(&c->pool_lock);
  if (h == NULL) {
    h = curl_easy_init();
  }
  return h;
}

static void handle_put(lf_kube_client *c, CURL *h) {
  if (h == NULL) {
    return;
  }
  /* Reset drops every option pointing at the finished request's memory;
   * the handle's live connections and the shared caches stay. */
  curl_easy_reset(h);
  pthread_mutex_lock(&c->pool_lock);
  if (c->n_idle < c->max_idle) {
    c->idle[c->n_idle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&c->pool_lock);
  if (h != NULL) {
    curl_easy_cleanup(h);
  }
}

/* ------------------------------------------------------------------------ */
/* Response bodies and watch lines                                          */

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *arg) {
  lf__kube_buf *s = arg;
  size_t n = size * nmemb;
  /* Returning less than n makes curl stop with CURLE_WRITE_ERROR. */
  return lf__kube_buf_append(s, ptr, n) ? n : 0;
}

/* State of one watch stream. */
typedef struct watch_state {
  CURL *const *handle;     /* The running transfer's handle (transfer.handle). */
  long status;             /* 0 until the first body bytes arrive. */
  lf__kube_events events;  /* The stream of a 200, split into events. */
  lf__kube_buf error_body; /* The body of a refused watch, capped. */
} watch_state;

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *arg) {
  watch_state *w = arg;
  size_t n = size * nmemb;

  if (w->status == 0) {
    curl_easy_getinfo(*w->handle, CURLINFO_RESPONSE_CODE, &w->status);
  }
  if (w->status != 200) {
    /* Keep the start of a refusal for its message; drop the rest. */
    if (w->error_body.len < w->error_body.max) {
      size_t room = w->error_body.max - w->error_body.len;
      (void)lf__kube_buf_append(&w->error_body, ptr, n < room ? n : room);
    }
    return n;
  }
  return lf__kube_events_feed(&w->events, ptr, n) ? n : 0;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

/* Everything one transfer needs besides the request fields. */
typedef struct transfer {
  CURL *handle; /* Set while curl_easy_perform runs, for write callbacks. */
  curl_write_callback write;
  void *write_arg;
  long status;
  char errbuf[CURL_ERROR_SIZE];
} transfer;

static bool is_tls_error(CURLcode code) {
  switch (code) {
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
    return true;
  default:
    return false;
  }
}

/* Turns a failed transfer into an LF_E* code with the cause. */
static int transport_error(const lf_kube_client *c, const lf_kube_req *req, CURLcode code,
                           const char *errbuf, int64_t timeout_ms, lf_error *err) {
  const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
  const char *server = c->cfg->server;

  switch (code) {
  case CURLE_OPERATION_TIMEDOUT:
    return lf__kube_fail(err, LF_ETIMEDOUT, "%s %s%.200s: no answer within %lld ms (%s)",
                         req->method, server, req->path, (long long)timeout_ms, detail);
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return lf__kube_fail(err, LF_EIO, "DNS: %s (server %s)", detail, server);
  case CURLE_COULDNT_CONNECT:
    return lf__kube_fail(err, LF_EIO, "connect: %s (server %s)", detail, server);
  case CURLE_PEER_FAILED_VERIFICATION:
    return lf__kube_fail(err, LF_EIO, "TLS: certificate verify failed for %s: %s", server, detail);
  case CURLE_OUT_OF_MEMORY:
    return lf__kube_fail(err, LF_ENOMEM, "out of memory in libcurl");
  default:
    if (is_tls_error(code)) {
      return lf__kube_fail(err, LF_EIO, "TLS: %s (server %s)", detail, server);
    }
    return lf__kube_fail(err, LF_EIO, "%s %s%.200s: %s", req->method, server, req->path, detail);
  }
}

#define SETOPT(h, opt, val)                                                                        \
  do {                                                                                             \
    if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) {                                         \
      ok = false;                                                                                  \
    }                                                                                              \
  } while (0)

/*
 * Runs one transfer. Returns LF_OK when the server answered (its status in
 * t->status), else the transport error. Callers handle what their write
 * callback recorded (too big, stopped) before looking at the code.
 */
static int perform(lf_kube_client *c, const lf_kube_req *req, transfer *t, CURLcode *code_out,
                   lf_error *err) {
  int rc = LF_OK;
  CURL *h = NULL;
  struct curl_slist *headers = NULL;
  struct curl_slist *added;
  char *url = NULL;
  char *auth = NULL;
  char *accept = NULL;
  char *ctype = NULL;
  const lf_kube_config *cfg = c->cfg;
  CURLcode code;
  bool ok = true;
  int64_t connect_ms;

  *code_out = CURLE_OK;
  t->status = 0;
  t->errbuf[0] = '\0';
  if (req->method == NULL || req->path == NULL || req->path[0] != '/' || req->timeout_ms <= 0) {
    rc = lf__kube_fail(err, LF_EINVAL,
                       "a request needs a method, a path starting with '/' and a timeout");
    goto out;
  }
  if (asprintf(&url, "%s%s", cfg->server, req->path) < 0) {
    url = NULL;
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  rc = token_header(c, &auth, err);
  if (rc != LF_OK) {
    goto out;
  }
  if (asprintf(&accept, "Accept: %s", req->accept != NULL ? req->accept : "application/json") < 0) {
    accept = NULL;
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  if (req->body != NULL &&
      asprintf(&ctype, "Content-Type: %s",
               req->content_type != NULL ? req->content_type : "application/json") < 0) {
    ctype = NULL;
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  /* curl copies each string into the list. "Expect:" stops curl from
   * waiting for a 100-continue on larger bodies. */
  {
    const char *lines[] = {accept, "Expect:", ctype, auth};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
      if (lines[i] == NULL) {
        continue;
      }
      added = curl_slist_append(headers, lines[i]);
      if (added == NULL) {
        rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
        goto out;
      }
      headers = added;
    }
  }
  h = handle_get(c);
  if (h == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "cannot create a curl handle");
    goto out;
  }
  connect_ms = c->connect_timeout_ms < req->timeout_ms ? c->connect_timeout_ms : req->timeout_ms;
  SETOPT(h, CURLOPT_URL, url);
  SETOPT(h, CURLOPT_SHARE, c->share);
  /* Threads must not get signals from curl's timeouts. */
  SETOPT(h, CURLOPT_NOSIGNAL, 1L);
  SETOPT(h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
  SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
  SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(h, CURLOPT_PROTOCOLS_STR, "https,http");
#else
  SETOPT(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
  SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
  /* HTTP/1.1: each handle has a connection of its own (above), so HTTP/2
   * would multiplex nothing and only add its framing, on our side and in the
   * API server's HTTP/2 server. Measured side by side through a real API
   * server (docs/benchmarks.md, section 3), a strong Lease read took 0.2 to
   * 1.3 ms less at the mean. */
  SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(h, CURLOPT_USERAGENT, c->user_agent);
  SETOPT(h, CURLOPT_HTTPHEADER, headers);
  SETOPT(h, CURLOPT_ERRORBUFFER, t->errbuf);
  SETOPT(h, CURLOPT_WRITEFUNCTION, t->write);
  SETOPT(h, CURLOPT_WRITEDATA, t->write_arg);
  if (cfg->insecure_skip_verify) {
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
  }
  if (cfg->ca_pem.data != NULL) {
    struct curl_blob blob = {cfg->ca_pem.data, cfg->ca_pem.len, CURL_BLOB_COPY};
    SETOPT(h, CURLOPT_CAINFO_BLOB, &blob);
  } else if (cfg->ca_file != NULL) {
    SETOPT(h, CURLOPT_CAINFO, cfg->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* libcurl keeps the store built from a CA file for a day by default; the
     * in-cluster ca.crt can be rotated, so look at it again after a minute. */
    SETOPT(h, CURLOPT_CA_CACHE_TIMEOUT, CA_CACHE_SECONDS);
#endif
  }
  if (cfg->cert_pem.data != NULL) {
    struct curl_blob blob = {cfg->cert_pem.data, cfg->cert_pem.len, CURL_BLOB_COPY};
    SETOPT(h, CURLOPT_SSLCERT_BLOB, &blob);
    SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (cfg->cert_file != NULL) {
    SETOPT(h, CURLOPT_SSLCERT, cfg->cert_file);
    SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (cfg->key_pem.data != NULL) {
    struct curl_blob blob = {cfg->key_pem.data, cfg->key_pem.len, CURL_BLOB_COPY};
    SETOPT(h, CURLOPT_SSLKEY_BLOB, &blob);
    SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (cfg->key_file != NULL) {
    SETOPT(h, CURLOPT_SSLKEY, cfg->key_file);
    SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (req->body != NULL) {
    SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SETOPT(h, CURLOPT_POSTFIELDS, req->body);
  }
  if (strcmp(req->method, "GET") == 0) {
    SETOPT(h, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(req->method, "POST") != 0 || req->body == NULL) {
    SETOPT(h, CURLOPT_CUSTOMREQUEST, req->method);
  }
  if (!ok) {
    rc = lf__kube_fail(err, LF_EIO,
                       "libcurl refused an option (is it built with TLS and blob support?)");
    goto out;
  }
  t->handle = h;
  code = curl_easy_perform(h);
  t->handle = NULL;
  *code_out = code;
  if (code != CURLE_OK) {
    rc = transport_error(c, req, code, t->errbuf, req->timeout_ms, err);
    goto out;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status == 401) {
    token_mark_rejected(c);
  }

out:
  handle_put(c, h);
  curl_slist_free_all(headers);
  free(url);
  lf__kube_str_wipe(&auth);
  free(accept);
  free(ctype);
  return rc;
}

int lf_kube_request(lf_kube_client *client, const lf_kube_req *req, long *status, char **body,
                    size_t *body_len, lf_error *err) {
  int rc;
  lf__kube_buf s = {0};
  transfer t = {0};
  CURLcode code;

  *status = 0;
  *body = NULL;
  if (body_len != NULL) {
    *body_len = 0;
  }
  s.max = req->max_bytes > 0 ? req->max_bytes : LF_KUBE_BODY_MAX;
  t.write = sink_write;
  t.write_arg = &s;
  rc = perform(client, req, &t, &code, err);
  if (s.too_big) {
    rc = lf__kube_fail(err, LF_ETOOBIG, "%s %s%.200s: the response is larger than %zu bytes",
                       req->method, client->cfg->server, req->path, s.max);
  } else if (s.no_memory) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory reading a response");
  }
  if (rc != LF_OK) {
    goto out;
  }
  if (s.buf == NULL && !lf__kube_buf_append(&s, "", 0)) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  *status = t.status;
  *body = s.buf;
  if (body_len != NULL) {
    *body_len = s.len;
  }
  s.buf = NULL;

out:
  free(s.buf);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Status mapping                                                           */

static const char *reason_phrase(long status) {
  switch (status) {
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 422:
    return "Unprocessable Entity";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "";
  }
}

/* The server's own words: Status.message, else the start of a non-JSON body,
 * with control characters replaced so the text stays one line. */
static void server_message(const char *body, size_t len, char *out, size_t size) {
  json_t *doc = NULL;
  const char *msg = NULL;
  size_t msg_len = 0;
  size_t o = 0;

  out[0] = '\0';
  if (body == NULL || len == 0) {
    return;
  }
  doc = json_loadb(body, len, 0, NULL);
  if (doc != NULL) {
    json_t *m = json_object_get(doc, "message");
    if (json_is_string(m)) {
      msg = json_string_value(m);
      msg_len = json_string_length(m);
    }
  } else {
    msg = body;
    msg_len = len;
  }
  for (size_t i = 0; msg != NULL && i < msg_len && i < LF_KUBE_STATUS_MESSAGE_MAX && o + 1 < size;
       i++) {
    unsigned char ch = (unsigned char)msg[i];
    out[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
  }
  out[o] = '\0';
  json_decref(doc);
}

int lf_kube_status_error(const lf_kube_client *client, long status, const char *body,
                         size_t body_len, const char *what, lf_error *err) {
  char msg[LF_KUBE_STATUS_MESSAGE_MAX + 1];
  const char *server = client != NULL ? client->cfg->server : "the API server";
  const char *reason = reason_phrase(status);
  const char *sep;

  if (status >= 200 && status < 300) {
    return LF_OK;
  }
  server_message(body, body_len, msg, sizeof(msg));
  sep = msg[0] != '\0' ? ": " : "";
  switch (status) {
  case 404:
    return lf__kube_fail(err, LF_ENOTFOUND, "%s not found (HTTP 404 from %s)%s%s", what, server,
                         sep, msg);
  case 401:
    return lf__kube_fail(err, LF_EDENIED,
                         "%s: HTTP 401 Unauthorized from %s: the credentials were "
                         "rejected (expired or wrong token or certificate?)%s%s",
                         what, server, sep, msg);
  case 403:
    return lf__kube_fail(err, LF_EDENIED, "%s: HTTP 403 Forbidden from %s%s%s", what, server, sep,
                         msg);
  default:
    return lf__kube_fail(err, LF_EIO, "%s: HTTP %ld%s%s from %s%s%s", what, status,
                         reason[0] != '\0' ? " " : "", reason, server, sep, msg);
  }
}

/* ------------------------------------------------------------------------ */
/* Leases                                                                   */

int lf_kube_escape(const char *s, char *out, size_t size) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~';
    if (o + (plain ? 1 : 3) >= size) {
      if (size > 0) {
        out[0] = '\0';
      }
      return LF_ETOOBIG;
    }
    if (plain) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '%';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  if (size == 0) {
    return LF_ETOOBIG;
  }
  out[o] = '\0';
  return LF_OK;
}

/* GET `path` and return its 2xx body (`*body`, the caller frees it); any
 * other status becomes the error lf_kube_status_error() names. */
static int get_ok(lf_kube_client *client, const char *path, const char *accept, int64_t timeout_ms,
                  size_t max_bytes, const char *what, char **body, size_t *len, lf_error *err) {
  lf_kube_req req = {0};
  long status = 0;
  int rc;

  *body = NULL;
  req.method = "GET";
  req.path = path;
  req.accept = accept;
  req.timeout_ms = timeout_ms;
  req.max_bytes = max_bytes;
  rc = lf_kube_request(client, &req, &status, body, len, err);
  if (rc == LF_OK) {
    rc = lf_kube_status_error(client, status, *body, *len, what, err);
  }
  if (rc != LF_OK) {
    free(*body);
    *body = NULL;
  }
  return rc;
}

int lf_kube_get_lease(lf_kube_client *client, const lf_lease_ref *ref, int64_t timeout_ms,
                      lf_lease *out, lf_error *err) {
  int rc;
  char ns[3 * LF_NAMESPACE_MAX + 1];
  char name[3 * LF_NAME_MAX + 1];
  char path[sizeof(ns) + sizeof(name) + 64];
  char what[LF_NAMESPACE_MAX + LF_NAME_MAX + 16];
  char *body = NULL;
  size_t len = 0;
  lf_lease lease;

  /* The ref may come from anywhere: never read past its arrays. */
  if (ref->ns[0] == '\0' || ref->name[0] == '\0' ||
      strnlen(ref->ns, sizeof(ref->ns)) == sizeof(ref->ns) ||
      strnlen(ref->name, sizeof(ref->name)) == sizeof(ref->name) ||
      lf_kube_escape(ref->ns, ns, sizeof(ns)) != LF_OK ||
      lf_kube_escape(ref->name, name, sizeof(name)) != LF_OK) {
    rc = lf__kube_fail(err, LF_EINVAL, "a Lease needs a namespace and a name within bounds");
    goto out;
  }
  snprintf(what, sizeof(what), "Lease %s/%s", ref->ns, ref->name);
  /* No resourceVersion: the API server then reads from etcd with a quorum
   * read, never from its watch cache, which may lag. */
  snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", ns, name);
  rc = get_ok(client, path, NULL, timeout_ms, LF_LEASE_JSON_MAX, what, &body, &len, err);
  if (rc != LF_OK) {
    goto out;
  }
  {
    lf_error sub = {0};
    rc = lf_lease_parse(body, len, &lease, &sub);
    if (rc != LF_OK) {
      rc = lf__kube_fail(err, rc, "%s from %s: %s", what, client->cfg->server, sub.text);
      goto out;
    }
  }
  /* Fencing must never decide on another Lease than the one named, whatever
   * a proxy or a misrouted request hands back. */
  if (strcmp(lease.ref.ns, ref->ns) != 0 || strcmp(lease.ref.name, ref->name) != 0) {
    rc = lf__kube_fail(err, LF_EINVAL, "asked %s for %s and got Lease %s/%s", client->cfg->server,
                       what, lease.ref.ns, lease.ref.name);
    goto out;
  }
  *out = lease;

out:
  free(body);
  return rc;
}

int lf_kube_get_json(lf_kube_client *client, const char *path, const char *accept,
                     int64_t timeout_ms, size_t max_bytes, const char *what, json_t **out,
                     lf_error *err) {
  int rc;
  char *body = NULL;
  size_t len = 0;
  json_t *doc = NULL;
  json_error_t jerr;

  *out = NULL;
  rc = get_ok(client, path, accept, timeout_ms, max_bytes, what, &body, &len, err);
  if (rc != LF_OK) {
    goto out;
  }
  lf_json_watch_begin();
  /* JSON_ALLOW_NUL: "\u0000" is legal in any string of an object; what is
   * read from it refuses a NUL where it matters. */
  doc = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
  if (lf_json_watch_failed()) {
    /* The parse may have lost bytes without saying so (fencing.h). */
    rc = lf__kube_fail(err, LF_ENOMEM, "%s from %s: out of memory parsing it", what,
                       client->cfg->server);
    goto out;
  }
  if (!json_is_object(doc)) {
    rc = lf__kube_fail(err, LF_EINVAL, "%s from %s: the answer is not a JSON object%s%s", what,
                       client->cfg->server, doc == NULL ? ": " : "", doc == NULL ? jerr.text : "");
    goto out;
  }
  *out = doc;
  doc = NULL;

out:
  json_decref(doc);
  free(body);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Watch                                                                    */

int lf_kube_watch(lf_kube_client *client, const char *path_with_query, int64_t timeout_ms,
                  lf_kube_watch_cb cb, void *arg, lf_error *err) {
  int rc;
  watch_state w;
  transfer t = {0};
  lf_kube_req req = {0};
  CURLcode code = CURLE_OK;

  memset(&w, 0, sizeof(w));
  lf__kube_events_init(&w.events, LF_KUBE_WATCH_EVENT_MAX, cb, arg);
  w.error_body.max = WATCH_ERROR_BODY_MAX;
  if (cb == NULL) {
    rc = lf__kube_fail(err, LF_EINVAL, "a watch needs a callback");
    goto out;
  }
  req.method = "GET";
  req.path = path_with_query;
  req.timeout_ms = timeout_ms;
  t.write = watch_write;
  t.write_arg = &w;
  w.handle = &t.handle;
  rc = perform(client, &req, &t, &code, err);
  /* The splitter keeps its own error text: curl's complaint about the
   * aborted transfer must not hide the reason we aborted it. */
  if (w.events.stopped) {
    rc = LF_OK;
    goto out;
  }
  if (w.events.rc != LF_OK) {
    rc = lf__kube_fail(err, w.events.rc, "%s", w.events.err.text);
    goto out;
  }
  if (rc != LF_OK) {
    goto out;
  }
  if (t.status != 200) {
    rc = lf_kube_status_error(client, t.status, w.error_body.buf, w.error_body.len, "the watch",
                              err);
    if (rc == LF_OK) {
      rc = lf__kube_fail(err, LF_EIO, "the watch got HTTP %ld instead of a stream", t.status);
    }
    goto out;
  }
  /* The server ended the stream; a last event without its newline counts. */
  if (!lf__kube_events_finish(&w.events) && !w.events.stopped) {
    rc = lf__kube_fail(err, w.events.rc, "%s", w.events.err.text);
  }

out:
  lf__kube_events_free(&w.events);
  free(w.error_body.buf);
  return rc;
}
