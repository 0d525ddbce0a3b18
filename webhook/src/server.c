/*
 * server.c: libmicrohttpd wiring, routing and limits.
 */
#include "server.h"

#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A response body larger than this is a bug: the biggest answer is a denial
 * with a 1 KiB message, a warning and a few audit annotations. */
#define RESPONSE_MAX (64 * 1024)
/* Request buffers above this size are freed after their request rather than
 * kept for the connection's next one, so idle connections stay small. */
#define KEEP_BODY_MAX (256 * 1024)

struct lfw_server {
  const lfw_config *cfg;
  const lfw_review_env *env;
  lfw_tls *tls;
  char *client_ca_pem;
  struct MHD_Daemon *daemon;
  struct MHD_Daemon *health;
  atomic_bool draining;
};

/* The certificate callback has no user pointer; see server.h. */
static lfw_server *running;

/* Per-connection state, created when libmicrohttpd accepts a connection and
 * freed when it closes. Its buffers are reused by every request on it. */
typedef struct conn {
  lfw_tls_pair *pair; /* Certificate this connection's handshake used. */
  int client_state;   /* With --client-ca-file: 0 unchecked, 1 verified, -1 refused. */
  /* The request in progress. */
  bool in_request;
  bool responded; /* A response was queued before the body was read. */
  bool has_result;
  bool too_big;     /* The body passed --max-request-bytes while arriving. */
  size_t discarded; /* Bytes counted but not kept after that. */
  int64_t start_us;
  lfw_review_result result;
  lfw_buf body;    /* Bounded by --max-request-bytes. */
  lfw_buf resp;    /* Bounded by RESPONSE_MAX. */
  lfw_buf scratch; /* The pruned review; bounded by --max-request-bytes. */
} conn;

static const char MSG_NOT_FOUND[] = "leasefence: not found\n";
static const char MSG_METHOD[] = "leasefence: only POST is served here\n";
static const char MSG_MEDIA[] =
    "leasefence: the request body must be an AdmissionReview with Content-Type: "
    "application/json\n";
static const char MSG_TOO_LARGE[] = "leasefence: the request body is larger than "
                                    "--max-request-bytes allows\n";
static const char MSG_BAD_LENGTH[] = "leasefence: the Content-Length header is not a number\n";
static const char MSG_CLIENT_CERT[] =
    "leasefence: a client certificate signed by the configured client CA is required\n";

static enum MHD_Result respond(lfw_server *s, struct MHD_Connection *c, unsigned status,
                               const char *type, const char *body, size_t len) {
  struct MHD_Response *r;
  enum MHD_Result ret;

  /* PERSISTENT: the body is a constant or the connection's own response
   * buffer, which lives until the next request on this connection begins,
   * and that happens only after this response was sent. */
  r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
  if (atomic_load_explicit(&s->draining, memory_order_relaxed))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result respond_text(lfw_server *s, struct MHD_Connection *c, unsigned status,
                                    const char *msg) {
  return respond(s, c, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

/* "application/json", any case, optionally followed by parameters. */
static bool is_json(const char *type) {
  size_t n = strlen("application/json");

  if (type == NULL || strncasecmp(type, "application/json", n) != 0)
    return false;
  return type[n] == '\0' || type[n] == ';' || type[n] == ' ' || type[n] == '\t';
}

static bool client_allowed(lfw_server *s, conn *k, struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci;
  unsigned status = 0;

  if (s->client_ca_pem == NULL)
    return true;
  if (k->client_state == 0) {
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    k->client_state = -1;
    if (ci != NULL && gnutls_certificate_verify_peers2(ci->tls_session, &status) == 0 &&
        status == 0)
      k->client_state = 1;
  }
  return k->client_state > 0;
}

/* Records a request answered before its review was read. */
static void early_result(conn *k, lfw_decision_label d, int reason) {
  k->has_result = true;
  k->result.op = LFW_OP_UNKNOWN;
  k->result.decision = d;
  k->result.reason = reason;
}

static enum MHD_Result first_call(lfw_server *s, conn *k, struct MHD_Connection *c, const char *url,
                                  const char *method) {
  const char *len_text;
  unsigned long long len = 0;
  char *end = NULL;

  k->in_request = true;
  k->responded = true; /* Until the checks below pass. */
  k->has_result = false;
  k->too_big = false;
  k->discarded = 0;
  k->start_us = lfw_monotonic_us();
  lfw_buf_reset(&k->body);
  lfw_metrics_inflight_add(1);
  if (!client_allowed(s, k, c))
    return respond_text(s, c, MHD_HTTP_FORBIDDEN, MSG_CLIENT_CERT);
  if (strcmp(url, s->cfg->path) != 0)
    return respond_text(s, c, MHD_HTTP_NOT_FOUND, MSG_NOT_FOUND);
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return respond_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, MSG_METHOD);
  if (!is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
    early_result(k, LFW_D_ERROR, LFW_R_UNSUPPORTED_MEDIA_TYPE);
    return respond_text(s, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, MSG_MEDIA);
  }
  len_text = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (len_text != NULL) {
    errno = 0;
    len = strtoull(len_text, &end, 10);
    if (errno != 0 || end == len_text || *end != '\0') {
      early_result(k, LFW_D_ERROR, LFW_R_INVALID_REVIEW);
      return respond_text(s, c, MHD_HTTP_BAD_REQUEST, MSG_BAD_LENGTH);
    }
    /* Refused before a byte of the body is read. */
    if (len > s->cfg->max_request_bytes) {
      early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
      return respond_text(s, c, MHD_HTTP_CONTENT_TOO_LARGE, MSG_TOO_LARGE);
    }
    /* One allocation of the announced size; a body without a length grows
     * by doubling up to the same limit. */
    if (lfw_buf_reserve(&k->body, (size_t)len) != 0)
      return MHD_NO;
  }
  k->responded = false;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls) {
  lfw_server *s = cls;
  conn *k = *req_cls;
  const union MHD_ConnectionInfo *ci;

  if (k == NULL) {
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL)
      return MHD_NO;
    k = ci->socket_context;
    *req_cls = k;
    return first_call(s, k, c, url, method);
  }
  if (*upload_size > 0) {
    if (k->too_big) {
      /* A body without Content-Length passed the limit: the rest is counted,
       * not kept, and answered with 413 once it ends (libmicrohttpd cannot
       * answer in the middle of a chunked upload). A client that goes on
       * sending far past the limit is cut off. */
      k->discarded += *upload_size;
      *upload_size = 0;
      return k->discarded > s->cfg->max_request_bytes ? MHD_NO : MHD_YES;
    }
    if (!k->responded && lfw_buf_append(&k->body, upload_data, *upload_size) != 0) {
      k->too_big = true;
      k->discarded = *upload_size;
      lfw_buf_free(&k->body);
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (k->responded)
    return MHD_YES;
  if (k->too_big) {
    k->responded = true;
    early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
    return respond_text(s, c, MHD_HTTP_CONTENT_TOO_LARGE, MSG_TOO_LARGE);
  }
  k->responded = true;
  lfw_review_handle(s->env, k->body.data != NULL ? k->body.data : "", k->body.len, &k->scratch,
                    &k->resp, &k->result);
  k->has_result = true;
  if (k->resp.overflow) {
    k->result.decision = LFW_D_ERROR;
    return respond_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                        "leasefence: the response did not fit its buffer\n");
  }
  return respond(s, c, (unsigned)k->result.http_status,
                 k->result.json ? "application/json" : "text/plain; charset=utf-8", k->resp.data,
                 k->resp.len);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  conn *k = *req_cls;

  (void)cls;
  (void)c;
  (void)toe;
  if (k == NULL || !k->in_request)
    return;
  if (k->has_result)
    lfw_metrics_request(k->result.op, k->result.decision, k->result.reason,
                        lfw_monotonic_us() - k->start_us);
  lfw_metrics_inflight_add(-1);
  k->in_request = false;
  if (k->body.cap > KEEP_BODY_MAX)
    lfw_buf_free(&k->body);
  if (k->scratch.cap > KEEP_BODY_MAX)
    lfw_buf_free(&k->scratch);
  *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  lfw_server *s = cls;
  conn *k;

  (void)c;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    k = calloc(1, sizeof *k);
    if (k != NULL) {
      lfw_buf_init(&k->body, s->cfg->max_request_bytes);
      lfw_buf_init(&k->resp, RESPONSE_MAX);
      lfw_buf_init(&k->scratch, s->cfg->max_request_bytes);
    }
    /* NULL makes every request on this connection fail (out of memory). */
    *socket_context = k;
    return;
  }
  k = *socket_context;
  if (k == NULL)
    return;
  lfw_tls_pair_release(k->pair);
  lfw_buf_free(&k->body);
  lfw_buf_free(&k->resp);
  lfw_buf_free(&k->scratch);
  free(k);
  *socket_context = NULL;
}

/* gnutls asks for the certificate during each handshake: hand it the current
 * pair and keep a reference on the connection until it closes. */
static int retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *pkey) {
  struct MHD_Connection *c = gnutls_session_get_ptr(session);
  const union MHD_ConnectionInfo *ci;
  lfw_server *s = running;
  conn *k;

  (void)req_ca_dn;
  (void)nreqs;
  (void)pk_algos;
  (void)pk_algos_length;
  if (s == NULL || c == NULL)
    return -1;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  if (ci == NULL || ci->socket_context == NULL)
    return -1;
  k = ci->socket_context;
  lfw_tls_pair_release(k->pair); /* A second handshake on one connection. */
  k->pair = lfw_tls_acquire(s->tls);
  lfw_tls_pair_get(k->pair, pcert, pcert_length, pkey);
  if (s->client_ca_pem != NULL) {
    /* libmicrohttpd only requests a client certificate; require one, and
     * have the handshake verify it against the trust list (the client CA),
     * so a client without a good certificate never gets to send a request. */
    gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(session, NULL, 0);
  }
  return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char msg[512];
  size_t n;

  (void)cls;
  if (!lfw_log_enabled(LFW_LOG_DEBUG))
    return;
  vsnprintf(msg, sizeof msg, fmt, ap);
  n = strlen(msg);
  while (n > 0 && msg[n - 1] == '\n')
    msg[--n] = '\0';
  lfw_log_json(LFW_LOG_DEBUG, "libmicrohttpd", json_pack("{s:s}", "detail", msg));
}

/* ------------------------------------------------------------------------ */
/* Health, readiness and metrics                                             */

static bool is_ready(lfw_server *s, char *why, size_t why_size) {
  const lfw_lease_source *src = s->env->source;

  if (atomic_load_explicit(&s->draining, memory_order_relaxed)) {
    snprintf(why, why_size, "shutting down");
    return false;
  }
  if (s->tls == NULL) {
    snprintf(why, why_size, "no serving certificate loaded");
    return false;
  }
  if (!lfw_tls_ready(s->tls, why, why_size))
    return false;
  if (src == NULL || src->ready == NULL) {
    snprintf(why, why_size, "no Lease source");
    return false;
  }
  if (!src->ready(src->ctx, why, why_size))
    return false;
  return true;
}

static enum MHD_Result on_health(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **req_cls) {
  lfw_server *s = cls;
  struct MHD_Response *r = NULL;
  enum MHD_Result ret;
  unsigned status = MHD_HTTP_OK;
  lfw_buf out;
  char why[256] = "not ready";

  (void)version;
  (void)upload_data;
  if (*req_cls == NULL) {
    *req_cls = s; /* Answer once the whole request is in. */
    return MHD_YES;
  }
  *upload_size = 0;
  lfw_buf_init(&out, 4 * 1024 * 1024);
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    lfw_buf_puts(&out, "only GET is served here\n");
  } else if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0) {
    lfw_buf_puts(&out, "ok\n");
  } else if (strcmp(url, "/readyz") == 0) {
    if (is_ready(s, why, sizeof why)) {
      lfw_buf_puts(&out, "ok\n");
    } else {
      status = MHD_HTTP_SERVICE_UNAVAILABLE;
      lfw_buf_printf(&out, "not ready: %s\n", why);
    }
  } else if (strcmp(url, "/metrics") == 0) {
    lfw_metrics_render(&out);
    if (s->env->source != NULL && s->env->source->metrics != NULL)
      s->env->source->metrics(s->env->source->ctx, &out);
  } else {
    status = MHD_HTTP_NOT_FOUND;
    lfw_buf_puts(&out, "not found\n");
  }
  if (out.overflow || out.data == NULL) {
    lfw_buf_free(&out);
    return MHD_NO;
  }
  r = MHD_create_response_from_buffer_with_free_callback(out.len, out.data, free);
  if (r == NULL) {
    lfw_buf_free(&out);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          strcmp(url, "/metrics") == 0 && status == MHD_HTTP_OK
                              ? "text/plain; version=0.0.4; charset=utf-8"
                              : "text/plain; charset=utf-8");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                            */

static int make_addr(const char *host, unsigned port, struct sockaddr_storage *ss, bool *v6) {
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

  memset(ss, 0, sizeof *ss);
  *v6 = false;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *v6 = true;
    return 0;
  }
  return -1;
}

static unsigned thread_count(const lfw_config *cfg) {
  long n;

  if (cfg->threads > 0)
    return cfg->threads;
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* A decision over a Kubernetes source waits for the API server (one Lease
 * GET, up to --lease-timeout). In a pool of one thread per CPU that wait
 * would hold up every other connection on the thread, and no more than one
 * decision per thread could ever wait for a shared read. So, unless
 * --threads says otherwise, such a server gives each connection its own
 * thread; the API server keeps a modest pool of keep-alive connections, and
 * --max-connections bounds them. */
static bool thread_per_connection(const lfw_config *cfg) {
  return cfg->threads == 0 && strncmp(cfg->lease_source, "kube", 4) == 0;
}

int lfw_server_start(const lfw_config *cfg, const lfw_review_env *env, lfw_tls *tls,
                     const char *client_ca_pem, lfw_server **out, char *err, size_t err_size) {
  lfw_server *s = NULL;
  struct sockaddr_storage addr;
  struct sockaddr_storage haddr;
  const char *priorities;
  unsigned threads = thread_count(cfg);
  bool per_conn = thread_per_connection(cfg);
  unsigned flags;
  bool v6;
  bool hv6;
  int rc = -1;

  *out = NULL;
  if (running != NULL) {
    snprintf(err, err_size, "a server is already running in this process");
    goto out;
  }
  if (make_addr(cfg->bind_address, cfg->port, &addr, &v6) != 0) {
    snprintf(err, err_size, "--bind-address: \"%s\" is not an IP address", cfg->bind_address);
    goto out;
  }
  if (make_addr(cfg->health_bind_address, cfg->health_port, &haddr, &hv6) != 0) {
    snprintf(err, err_size, "--health-bind-address: \"%s\" is not an IP address",
             cfg->health_bind_address);
    goto out;
  }
  s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  s->cfg = cfg;
  s->env = env;
  s->tls = tls;
  atomic_init(&s->draining, false);
  if (client_ca_pem != NULL) {
    s->client_ca_pem = strdup(client_ca_pem);
    if (s->client_ca_pem == NULL) {
      snprintf(err, err_size, "out of memory");
      goto out;
    }
  }
  running = s;

  /* TLS 1.2 and 1.3 only (or 1.3 only), GnuTLS's NORMAL cipher choice. */
  priorities = cfg->tls_min >= 13 ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                  : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
  flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_TLS | MHD_USE_ITC |
          MHD_USE_ERROR_LOG;
  if (per_conn)
    flags |= MHD_USE_THREAD_PER_CONNECTION;
  if (v6)
    flags |= MHD_USE_IPv6;
  errno = 0;
  s->daemon = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
      (threads > 1 && !per_conn) ? threads : 0u, MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s, MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_HTTPS_PRIORITIES, priorities, MHD_OPTION_HTTPS_CERT_CALLBACK,
      retrieve_cert, client_ca_pem != NULL ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
      s->client_ca_pem, MHD_OPTION_END);
  if (s->daemon == NULL) {
    snprintf(err, err_size,
             "cannot serve HTTPS on %s port %u (address in use, or a bad --client-ca-file)%s%s",
             cfg->bind_address, cfg->port, errno != 0 ? ": " : "",
             errno != 0 ? strerror(errno) : "");
    goto out;
  }
  flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (hv6)
    flags |= MHD_USE_IPv6;
  errno = 0;
  s->health = MHD_start_daemon(flags, (uint16_t)cfg->health_port, NULL, NULL, on_health, s,
                               MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&haddr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (s->health == NULL) {
    snprintf(err, err_size, "cannot serve health checks on %s port %u%s%s",
             cfg->health_bind_address, cfg->health_port, errno != 0 ? ": " : "",
             errno != 0 ? strerror(errno) : "");
    goto out;
  }
  lfw_log_json(LFW_LOG_INFO, "serving",
               json_pack("{s:s,s:i,s:s,s:s,s:i,s:s,s:s,s:b}", "address", cfg->bind_address, "port",
                         (int)cfg->port, "path", cfg->path, "health_address",
                         cfg->health_bind_address, "health_port", (int)cfg->health_port, "threads",
                         per_conn ? "one per connection" : (threads > 1 ? "pool" : "one"), "mode",
                         lfw_mode_name(env->mode), "client_ca", client_ca_pem != NULL));
  *out = s;
  s = NULL;
  rc = 0;
out:
  lfw_server_free(&s);
  return rc;
}

void lfw_server_shutdown(lfw_server *s, int64_t timeout_us) {
  int64_t deadline = lfw_monotonic_us() + timeout_us;
  MHD_socket fd;
  int64_t left;

  if (s == NULL || s->daemon == NULL)
    return;
  atomic_store(&s->draining, true);
  fd = MHD_quiesce_daemon(s->daemon);
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
  for (;;) {
    struct timespec ts = {0, 5 * 1000 * 1000};

    left = lfw_metrics_inflight();
    if (left <= 0 || lfw_monotonic_us() >= deadline)
      break;
    nanosleep(&ts, NULL);
  }
  if (left > 0)
    lfw_log_json(LFW_LOG_ERROR, "shutdown timeout; abandoning requests in flight",
                 json_pack("{s:I}", "inflight", (json_int_t)left));
  MHD_stop_daemon(s->daemon);
  s->daemon = NULL;
  if (s->health != NULL)
    MHD_stop_daemon(s->health);
  s->health = NULL;
}

void lfw_server_free(lfw_server **ps) {
  lfw_server *s = *ps;

  if (s == NULL)
    return;
  *ps = NULL;
  if (s->daemon != NULL)
    MHD_stop_daemon(s->daemon);
  if (s->health != NULL)
    MHD_stop_daemon(s->health);
  if (running == s)
    running = NULL;
  free(s->client_ca_pem);
  free(s);
}
