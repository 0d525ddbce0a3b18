/*
 * server.c: libmicrohttpd wiring, routing and limits.
 */
#include "server.h"

#include "log.h"
#include "metrics.h"
#include "prune.h"
#include "tlshello.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A response body larger than this is a bug: the biggest answer is a denial
 * with a 1 KiB message, a warning and a few audit annotations. */
#define RESPONSE_MAX (64 * 1024)
/* Memory for request bodies. Each connection's body and scratch buffers hold
 * up to ALLOWANCE bytes of their own (kept between requests, so an ordinary
 * review needs no allocation); capacity beyond that is charged to the
 * server's budget (--max-body-memory) as the body arrives, and freed when
 * the request ends. The last quarter of the budget goes only to bodies that
 * announced at most SMALL_BODY bytes (and their pruned reviews), so large
 * bodies cannot starve ordinary reviews. */
#define ALLOWANCE (16 * 1024)
#define SMALL_BODY (256 * 1024)
/* jansson's tree of a review takes up to about this many times the JSON it
 * parses: 41x was measured for a review of a million one-letter strings in a
 * member the scanner keeps (request.userInfo.groups). Charged to the body
 * budget while a review is handled, so one such review cannot take hundreds
 * of MiB; an ordinary review's pruned text of 1-2 KiB is charged ~100 KiB. */
#define PARSE_FACTOR 48
/* After a parse charged this much, the heap is trimmed: jansson's many small
 * blocks are freed among others still in use and would stay resident. */
#define TRIM_AFTER_PARSE (4 * 1024 * 1024)
/* Allocations from this size up are mapped on their own and unmapped when
 * freed, so the memory of a large body goes back to the system at once.
 * (glibc's default threshold starts at 128 KiB but rises to the size of the
 * largest block freed, up to 32 MiB, after which 7 MiB bodies come from the
 * heap and stay resident after they are freed.) */
#define MMAP_THRESHOLD (64 * 1024)
/* After this many connections closed, the keeper hands the memory freed in
 * the heap (TLS sessions and other small blocks, which live among blocks
 * still in use) back to the system with malloc_trim. */
#define TRIM_AFTER_CLOSED 64
/* Connections libmicrohttpd may hold beyond --max-connections. It stops
 * accepting, leaving clients in the kernel's backlog, once it reaches its
 * own limit; the server refuses at accept below that (on_accept), so its
 * limit is set well above ours and never reached. */
#define MHD_LIMIT_EXTRA 64
/* Stack of each server thread. Deep enough for jansson's and the scanner's
 * 2048 levels of nesting; the default (8 MiB) would reserve 8 GiB of address
 * space for 1 000 connections with a thread each. */
#if defined(__SANITIZE_ADDRESS__)
#define THREAD_STACK (0) /* The default: ASan's frames are much larger. */
#else
#define THREAD_STACK (1024 * 1024)
#endif

/* Where a connection is; each phase has its own deadline. */
typedef enum phase {
  PH_HANDSHAKE = 0, /* Accepted; TLS handshake under way. */
  PH_HEADERS,       /* Reading a request's line and headers. */
  PH_BODY,          /* Reading a request's body. */
  PH_BUSY,          /* Deciding and answering: no deadline of ours. */
  PH_IDLE,          /* Before a request line: after the handshake, or between requests. */
  PH_COUNT
} phase;

static const char *const phase_names[PH_COUNT] = {"handshake", "headers", "body", "busy", "idle"};

typedef struct conn conn;

struct lfw_server {
  const lfw_config *cfg;
  const lfw_review_env *env;
  lfw_tls *tls;
  char *client_ca_pem;
  struct MHD_Daemon *daemon;
  struct MHD_Daemon *health;
  atomic_bool draining;
  lfw_budget budget; /* Request bodies across all connections. */
  atomic_uint open;  /* Connections open now. */
  /* Counters for /metrics. */
  atomic_ulong refused_at_accept;
  atomic_ulong reclaimed; /* Idle connections closed to let a new one in. */
  atomic_ulong accepted;  /* Connections taken in: with keep-alive, far fewer than requests. */
  atomic_ulong timed_out[PH_COUNT];
  atomic_ulong refused_memory; /* Requests answered 503 for want of body memory. */
  atomic_ullong body_bytes;    /* Request body bytes read, kept or not. */
  /* The deadline keeper: every open connection, and a thread that shuts down
   * the socket of one whose phase ran past its deadline. */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  conn *conns;                /* Under `lock`. */
  int64_t wake_at;            /* When the keeper wakes next (0: it is not waiting). */
  unsigned closed_since_trim; /* Connections closed since the last malloc_trim. */
  bool stop;
  bool keeper_started;
  pthread_t keeper;
};

/* The certificate callback has no user pointer; see server.h. */
static lfw_server *running;

/* Per-connection state, created when libmicrohttpd accepts a connection and
 * freed when it closes. Its buffers are reused by every request on it. */
struct conn {
  lfw_tls_pair *pair; /* Certificate this connection's handshake used. */
  int client_state;   /* With --client-ca-file: 0 unchecked, 1 verified, -1 refused. */
  int fd;
  /* Under the server's lock: the deadline keeper's list, the phase and its
   * deadline (monotonic µs), and whether the keeper closed it. */
  conn *prev;
  conn *next;
  phase ph;
  int64_t deadline_us;
  int64_t idle_since_us; /* When it entered PH_IDLE. */
  bool timed_out;
  /* The request in progress. */
  bool in_request;
  bool responded; /* A response was queued. */
  /* The response's TLS records are held (gnutls_record_cork) until it is
   * all written, then flushed as one record: on_completed uncorks. */
  gnutls_session_t corked;
  bool has_result;
  bool body_pending;            /* The request announced a body (length above 0, or chunked). */
  unsigned long long announced; /* Content-Length, or 0. */
  size_t received;              /* Body bytes read so far, kept or not. */
  /* A refusal decided before the body was all read: answered once it is
   * (read and discarded meanwhile), so the client, still sending, sees it. */
  unsigned refuse_status;
  const char *refuse_msg;
  int64_t start_us;
  lfw_review_result result;
  lfw_buf body;    /* Bounded by --max-request-bytes and the budget. */
  lfw_buf resp;    /* Bounded by RESPONSE_MAX. */
  lfw_buf scratch; /* The pruned review; bounded as the body. */
};

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
static const char MSG_NO_MEMORY[] =
    "leasefence: the server has no memory left for request bodies (--max-body-memory); retry "
    "shortly\n";

/* How long on_completed waits for a client to take a corked response. A
 * client that reads its answers never makes it wait: the response is far
 * smaller than a socket's send buffer. Only one that sends request after
 * request without reading fills the buffer, and it is cut off. */
#define UNCORK_WAIT_MS 1000

/* Holds the response's TLS records back until the response is all written
 * (libmicrohttpd writes the header and the body separately, each its own
 * record and its own sendmsg), so it leaves as one record: one encryption,
 * one system call, one read for the API server. */
static void cork(conn *k, struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);

  if (k != NULL && ci != NULL && ci->tls_session != NULL) {
    gnutls_record_cork(ci->tls_session);
    k->corked = ci->tls_session;
  }
}

/* Sends what cork() held back, waiting at most UNCORK_WAIT_MS for the
 * socket to take it; a client that has not read for that long loses its
 * connection (the shutdown makes libmicrohttpd close it). */
static void uncork(conn *k) {
  int64_t until = lfw_monotonic_us() + (int64_t)UNCORK_WAIT_MS * 1000;
  int rc;

  if (k->corked == NULL)
    return;
  for (;;) {
    rc = gnutls_record_uncork(k->corked, 0);
    if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED)
      break;
    int64_t left_ms = (until - lfw_monotonic_us()) / 1000;
    struct pollfd pfd = {.fd = k->fd, .events = POLLOUT};
    if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) < 0) {
      rc = GNUTLS_E_PUSH_ERROR;
      break;
    }
  }
  if (rc < 0) {
    (void)shutdown(k->fd, SHUT_RDWR);
  } else {
    /* libmicrohttpd corks the socket (TCP_CORK) for the header and lifts it
     * when it believes the body is out, which, with the records held here,
     * is before anything reached the socket: the kernel would then hold the
     * record for its 200 ms cork limit. Lifting it pushes the record now. */
    int off = 0;
    (void)setsockopt(k->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  }
  k->corked = NULL;
}

static enum MHD_Result respond(lfw_server *s, conn *k, struct MHD_Connection *c, unsigned status,
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
  if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (atomic_load_explicit(&s->draining, memory_order_relaxed))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  cork(k, c);
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  if (ret != MHD_YES && k != NULL)
    uncork(k);
  return ret;
}

static enum MHD_Result respond_text(lfw_server *s, conn *k, struct MHD_Connection *c,
                                    unsigned status, const char *msg) {
  return respond(s, k, c, status, "text/plain; charset=utf-8", msg, strlen(msg));
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

/* ------------------------------------------------------------------------ */
/* Deadlines                                                                 */

/* Moves `k` to phase `ph`, whose deadline is `timeout_us` from now (0: none),
 * and wakes the keeper if that deadline comes before its next wake-up. */
static void set_phase(lfw_server *s, conn *k, phase ph, int64_t timeout_us) {
  int64_t deadline = timeout_us > 0 ? lfw_monotonic_us() + timeout_us : 0;

  pthread_mutex_lock(&s->lock);
  if (ph == PH_IDLE && k->ph != PH_IDLE)
    k->idle_since_us = lfw_monotonic_us();
  k->ph = ph;
  k->deadline_us = deadline;
  if (deadline != 0 && (s->wake_at == 0 || deadline < s->wake_at))
    pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
}

/* The keeper: sleeps until the earliest deadline, then shuts down the socket
 * of every connection past its own; and trims the heap after many
 * connections closed. libmicrohttpd then sees the connection
 * end, as if the client had closed it, and frees it in its own thread; the
 * socket stays open until then (the connection leaves the list, under the
 * lock, before libmicrohttpd closes the descriptor), so the descriptor shut
 * down is always the connection's own. */
static void *keeper_main(void *arg) {
  lfw_server *s = arg;
  conn *k;

  pthread_mutex_lock(&s->lock);
  while (!s->stop) {
    int64_t now = lfw_monotonic_us();
    int64_t next = 0;
    struct timespec ts;

    for (k = s->conns; k != NULL; k = k->next) {
      if (k->deadline_us == 0 || k->timed_out)
        continue;
      if (k->deadline_us <= now) {
        k->timed_out = true;
        atomic_fetch_add(&s->timed_out[k->ph], 1);
        shutdown(k->fd, SHUT_RDWR);
      } else if (next == 0 || k->deadline_us < next) {
        next = k->deadline_us;
      }
    }
    if (s->closed_since_trim >= TRIM_AFTER_CLOSED) {
      s->closed_since_trim = 0;
      pthread_mutex_unlock(&s->lock);
      malloc_trim(0);
      pthread_mutex_lock(&s->lock);
      continue;
    }
    s->wake_at = next;
    if (next == 0) {
      pthread_cond_wait(&s->wake, &s->lock);
    } else {
      ts.tv_sec = (time_t)(next / 1000000);
      ts.tv_nsec = (long)(next % 1000000) * 1000;
      pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    s->wake_at = 0;
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

/* Records a request answered before its review was read. */
static void early_result(conn *k, lfw_decision_label d, int reason) {
  k->has_result = true;
  k->result.op = LFW_OP_UNKNOWN;
  k->result.decision = d;
  k->result.reason = reason;
}

/* A refused body is read and thrown away up to this many bytes, so that its
 * client, which sends it before reading any answer, gets to see the answer:
 * a server that answers and closes while the client still sends makes the
 * client's kernel answer with a reset, which destroys the answer unread. */
static unsigned long long discard_max(const lfw_server *s) {
  return 2ULL * s->cfg->max_request_bytes;
}

/* Refuses the request with `status`: at once when no body follows (or one
 * too large to read through was announced), else once the body has been
 * read and discarded. Also when the client sent "Expect: 100-continue":
 * clients may send the body without waiting for the "100 Continue" (Go's
 * after a second), and then an early answer and close would reset them.
 * libmicrohttpd takes an answer only before the body or after all of it, so
 * a refusal decided while the body arrives always waits for its end. */
static enum MHD_Result refuse(lfw_server *s, conn *k, struct MHD_Connection *c, unsigned status,
                              const char *msg) {
  bool at_headers = k->received == 0;

  lfw_buf_free(&k->body);
  if (at_headers && (!k->body_pending || k->announced > discard_max(s))) {
    k->responded = true;
    set_phase(s, k, PH_BUSY, 0);
    return respond_text(s, k, c, status, msg);
  }
  k->refuse_status = status;
  k->refuse_msg = msg;
  return MHD_YES;
}

static enum MHD_Result first_call(lfw_server *s, conn *k, struct MHD_Connection *c, const char *url,
                                  const char *method) {
  const char *len_text;
  unsigned long long len = 0;
  char *end = NULL;

  k->in_request = true;
  k->responded = false;
  k->has_result = false;
  k->refuse_status = 0;
  k->refuse_msg = NULL;
  k->received = 0;
  k->announced = 0;
  k->start_us = lfw_monotonic_us();
  lfw_buf_reset(&k->body);
  k->body.max = s->cfg->max_request_bytes;
  lfw_metrics_inflight_add(1);
  set_phase(s, k, PH_BODY, s->cfg->body_timeout_us);
  len_text = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  k->body_pending =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
  if (len_text != NULL) {
    /* libmicrohttpd has checked that the value is all digits and answered
     * 400 itself otherwise; this check only guards against a change there. */
    errno = 0;
    len = strtoull(len_text, &end, 10);
    if (errno != 0 || end == len_text || *end != '\0') {
      early_result(k, LFW_D_ERROR, LFW_R_INVALID_REVIEW);
      k->responded = true;
      return respond_text(s, k, c, MHD_HTTP_BAD_REQUEST, MSG_BAD_LENGTH);
    }
    k->announced = len;
    k->body_pending = k->body_pending || len > 0;
    /* The buffer grows as the body arrives, never past what was announced:
     * a length alone reserves nothing. */
    if (len < k->body.max)
      k->body.max = (size_t)len;
  }
  if (!client_allowed(s, k, c))
    return refuse(s, k, c, MHD_HTTP_FORBIDDEN, MSG_CLIENT_CERT);
  if (strcmp(url, s->cfg->path) != 0)
    return refuse(s, k, c, MHD_HTTP_NOT_FOUND, MSG_NOT_FOUND);
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return refuse(s, k, c, MHD_HTTP_METHOD_NOT_ALLOWED, MSG_METHOD);
  if (!is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
    early_result(k, LFW_D_ERROR, LFW_R_UNSUPPORTED_MEDIA_TYPE);
    return refuse(s, k, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, MSG_MEDIA);
  }
  if (len > s->cfg->max_request_bytes) {
    early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
    return refuse(s, k, c, MHD_HTTP_CONTENT_TOO_LARGE, MSG_TOO_LARGE);
  }
  return MHD_YES;
}

/* A piece of the body: kept, or counted and dropped once the request is
 * refused. */
static enum MHD_Result body_data(lfw_server *s, conn *k, struct MHD_Connection *c, const char *data,
                                 size_t n) {
  k->received += n;
  atomic_fetch_add_explicit(&s->body_bytes, n, memory_order_relaxed);
  if (k->responded)
    return MHD_YES;
  if (k->refuse_status != 0)
    /* A client that goes on sending past the bound is cut off. */
    return k->received > discard_max(s) ? MHD_NO : MHD_YES;
  if (lfw_buf_append(&k->body, data, n) == 0)
    return MHD_YES;
  if (k->body.refused) {
    atomic_fetch_add(&s->refused_memory, 1);
    early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
    return refuse(s, k, c, MHD_HTTP_SERVICE_UNAVAILABLE, MSG_NO_MEMORY);
  }
  /* Past --max-request-bytes without a Content-Length (chunked), or out of
   * memory. */
  early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
  return refuse(s, k, c, MHD_HTTP_CONTENT_TOO_LARGE, MSG_TOO_LARGE);
}

/* The whole request is in: answer it. */
static enum MHD_Result final_call(lfw_server *s, conn *k, struct MHD_Connection *c) {
  size_t parse_charge;
  bool pruned;

  if (k->responded)
    return MHD_YES;
  k->responded = true;
  set_phase(s, k, PH_BUSY, 0);
  if (k->refuse_status != 0)
    return respond_text(s, k, c, k->refuse_status, k->refuse_msg);
  /* The scanner needs room for up to the whole body: charge it now, so a
   * budget that is spent gets a clear 503 rather than a parse failure. */
  lfw_buf_reset(&k->scratch);
  k->scratch.max = k->body.len;
  if (lfw_buf_reserve(&k->scratch, k->body.len) != 0) {
    lfw_buf_free(&k->body);
    early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
    atomic_fetch_add(&s->refused_memory, 1);
    return respond_text(s, k, c, MHD_HTTP_SERVICE_UNAVAILABLE, MSG_NO_MEMORY);
  }
  /* What parsing will take, from the pruned text (or the whole body, which
   * is parsed when it cannot be pruned). The review path parses this very
   * projection, without scanning the body again. */
  pruned = lfw_prune_review(k->body.data != NULL ? k->body.data : "", k->body.len, &k->scratch) ==
           LFW_PRUNE_OK;
  parse_charge = (pruned ? k->scratch.len : k->body.len) * PARSE_FACTOR;
  if (lfw_budget_take(&s->budget, parse_charge, parse_charge) != 0) {
    lfw_buf_free(&k->body);
    early_result(k, LFW_D_ERROR, LFW_R_TOO_LARGE);
    atomic_fetch_add(&s->refused_memory, 1);
    return respond_text(s, k, c, MHD_HTTP_SERVICE_UNAVAILABLE, MSG_NO_MEMORY);
  }
  lfw_review_handle_pruned(s->env, k->body.data != NULL ? k->body.data : "", k->body.len,
                           pruned ? &k->scratch : NULL, &k->resp, &k->result);
  lfw_budget_give(&s->budget, parse_charge);
  if (parse_charge >= TRIM_AFTER_PARSE)
    malloc_trim(0);
  k->has_result = true;
  if (k->resp.overflow) {
    k->result.decision = LFW_D_ERROR;
    return respond_text(s, k, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                        "leasefence: the response did not fit its buffer\n");
  }
  return respond(s, k, c, (unsigned)k->result.http_status,
                 k->result.json ? "application/json" : "text/plain; charset=utf-8", k->resp.data,
                 k->resp.len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls) {
  lfw_server *s = cls;
  conn *k = *req_cls;
  const union MHD_ConnectionInfo *ci;
  size_t n = *upload_size;

  (void)version;
  if (k == NULL) {
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL)
      return MHD_NO;
    k = ci->socket_context;
    *req_cls = k;
  }
  if (!k->in_request)
    return first_call(s, k, c, url, method);
  *upload_size = 0;
  if (n > 0)
    return body_data(s, k, c, upload_data, n);
  return final_call(s, k, c);
}

/* libmicrohttpd calls this once a request line has arrived, before its
 * headers; what it returns is the request's context. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c) {
  lfw_server *s = cls;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn *k = ci != NULL ? ci->socket_context : NULL;

  (void)uri;
  if (k == NULL)
    return NULL;
  /* The header deadline starts with the request line, on the first request
   * as on a kept-alive connection (see on_handshake_message). */
  if (k->ph != PH_HEADERS)
    set_phase(s, k, PH_HEADERS, s->cfg->header_timeout_us);
  return k;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  lfw_server *s = cls;
  conn *k = *req_cls;

  (void)c;
  (void)toe;
  if (k == NULL)
    return;
  *req_cls = NULL;
  uncork(k);
  /* Waiting for the next request: the idle timeout, counted from now and not
   * renewed by a request line that trickles in. */
  set_phase(s, k, PH_IDLE, (int64_t)s->cfg->idle_timeout_s * 1000000);
  if (!k->in_request)
    return; /* libmicrohttpd answered it (a malformed request). */
  if (k->has_result)
    lfw_metrics_request(k->result.op, k->result.decision, k->result.reason,
                        lfw_monotonic_us() - k->start_us);
  lfw_metrics_inflight_add(-1);
  k->in_request = false;
  /* Keep only what the connection's own allowance covers; give the rest
   * back to the budget and, past MMAP_THRESHOLD, to the system. */
  if (k->body.cap > ALLOWANCE)
    lfw_buf_free(&k->body);
  if (k->scratch.cap > ALLOWANCE)
    lfw_buf_free(&k->scratch);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

/* At --max-connections: closes the connection idle the longest (no request
 * under way), so a slot held by a client that sends nothing goes to the one
 * knocking. False when none is idle. Under attack this may close the API
 * server's own idle connection; it dials another. */
static bool reclaim_idle(lfw_server *s) {
  conn *k;
  conn *oldest = NULL;

  pthread_mutex_lock(&s->lock);
  for (k = s->conns; k != NULL; k = k->next)
    if (k->ph == PH_IDLE && !k->timed_out &&
        (oldest == NULL || k->idle_since_us < oldest->idle_since_us))
      oldest = k;
  if (oldest != NULL) {
    oldest->timed_out = true; /* Never chosen twice; the keeper skips it. */
    shutdown(oldest->fd, SHUT_RDWR);
  }
  pthread_mutex_unlock(&s->lock);
  if (oldest != NULL)
    atomic_fetch_add(&s->reclaimed, 1);
  return oldest != NULL;
}

/* Accepting: at --max-connections a new connection takes the slot of the
 * one idle the longest (reclaim_idle); when every open connection is in a
 * request or a handshake, it is closed at once, so its client fails fast
 * instead of waiting in the kernel's backlog. Counted from the connections
 * open; server threads that accept at the same moment can each let one
 * more in. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  lfw_server *s = cls;

  (void)addr;
  (void)addrlen;
  if (atomic_load_explicit(&s->draining, memory_order_relaxed) ||
      (atomic_load(&s->open) >= s->cfg->max_connections && !reclaim_idle(s))) {
    atomic_fetch_add(&s->refused_at_accept, 1);
    return MHD_NO;
  }
  return MHD_YES;
}

/* Called by GnuTLS for each handshake message. Before it reads a
 * ClientHello: refuses, with a protocol_version alert, one that offers no
 * version the server accepts. After the client's Finished: the handshake is
 * done, and the connection is idle until a request line arrives, as a
 * kept-alive one is between requests. (A client may dial a connection and
 * leave it unused for a while: Go's HTTP client, and so kube-apiserver's
 * webhook client, keeps a connection it dialed for a request another
 * connection served first in its idle pool, net/http Transport.dialConnFor.
 * A header deadline from here would close it under the client's next
 * request, which fails, since a POST is not retried.) */
static int on_handshake_message(gnutls_session_t session, unsigned int htype, unsigned when,
                                unsigned int incoming, const gnutls_datum_t *msg) {
  struct MHD_Connection *c = gnutls_session_get_ptr(session);
  const union MHD_ConnectionInfo *ci;
  lfw_server *s = running;
  conn *k;
  uint16_t rv = 0;
  unsigned char alert[7];

  if (!incoming || s == NULL || c == NULL)
    return 0;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  k = ci != NULL ? ci->socket_context : NULL;
  if (k == NULL)
    return 0;
  if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && when == GNUTLS_HOOK_PRE &&
      lfw_tls_hello_check(msg->data, msg->size, s->cfg->tls_min, &rv) == LFW_HELLO_TOO_OLD) {
    /* Nothing was sent yet, so a plaintext alert record is what the client
     * expects; a short write on a fresh socket cannot happen for 7 bytes,
     * and the handshake fails either way. */
    lfw_tls_alert_protocol_version(rv, alert);
    (void)send(k->fd, alert, sizeof alert, MSG_NOSIGNAL);
    return GNUTLS_E_UNSUPPORTED_VERSION_PACKET;
  }
  if (htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST && k->ph == PH_HANDSHAKE)
    set_phase(s, k, PH_IDLE, (int64_t)s->cfg->idle_timeout_s * 1000000);
  return 0;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  lfw_server *s = cls;
  const union MHD_ConnectionInfo *ci;
  conn *k;

  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(&s->open, 1);
    atomic_fetch_add(&s->accepted, 1);
    k = calloc(1, sizeof *k);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (k != NULL && ci != NULL) {
      k->fd = ci->connect_fd;
      lfw_buf_init_budget(&k->body, s->cfg->max_request_bytes, &s->budget, ALLOWANCE);
      lfw_buf_init(&k->resp, RESPONSE_MAX);
      lfw_buf_init_budget(&k->scratch, s->cfg->max_request_bytes, &s->budget, ALLOWANCE);
      pthread_mutex_lock(&s->lock);
      k->next = s->conns;
      if (s->conns != NULL)
        s->conns->prev = k;
      s->conns = k;
      pthread_mutex_unlock(&s->lock);
      set_phase(s, k, PH_HANDSHAKE, s->cfg->handshake_timeout_us);
      ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
      if (ci != NULL && ci->tls_session != NULL)
        gnutls_handshake_set_hook_function(ci->tls_session, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH,
                                           on_handshake_message);
    } else {
      free(k);
      k = NULL;
    }
    /* NULL makes every request on this connection fail (out of memory). */
    *socket_context = k;
    return;
  }
  atomic_fetch_sub(&s->open, 1);
  k = *socket_context;
  if (k == NULL)
    return;
  pthread_mutex_lock(&s->lock);
  if (k->prev != NULL)
    k->prev->next = k->next;
  else
    s->conns = k->next;
  if (k->next != NULL)
    k->next->prev = k->prev;
  if (++s->closed_since_trim >= TRIM_AFTER_CLOSED)
    pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
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

static unsigned count_idle(lfw_server *s) {
  unsigned n = 0;
  conn *k;

  pthread_mutex_lock(&s->lock);
  for (k = s->conns; k != NULL; k = k->next)
    n += k->ph == PH_IDLE && !k->timed_out;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* The server's own series: connections, deadlines, body memory. */
static void server_metrics(lfw_server *s, lfw_buf *out) {
  int i;

  lfw_buf_puts(out, "# HELP leasefence_connections_open HTTPS connections open now.\n"
                    "# TYPE leasefence_connections_open gauge\n");
  lfw_buf_printf(out, "leasefence_connections_open %u\n", atomic_load(&s->open));
  lfw_buf_puts(out, "# HELP leasefence_connections_idle HTTPS connections open with no request "
                    "under way (the first to go at --max-connections).\n"
                    "# TYPE leasefence_connections_idle gauge\n");
  lfw_buf_printf(out, "leasefence_connections_idle %u\n", count_idle(s));
  lfw_buf_puts(out, "# HELP leasefence_connections_accepted_total HTTPS connections taken in.\n"
                    "# TYPE leasefence_connections_accepted_total counter\n");
  lfw_buf_printf(out, "leasefence_connections_accepted_total %lu\n", atomic_load(&s->accepted));
  lfw_buf_puts(out, "# HELP leasefence_connections_refused_total Connections closed at accept "
                    "because --max-connections were open, none of them idle.\n"
                    "# TYPE leasefence_connections_refused_total counter\n");
  lfw_buf_printf(out, "leasefence_connections_refused_total %lu\n",
                 atomic_load(&s->refused_at_accept));
  lfw_buf_puts(out, "# HELP leasefence_connections_reclaimed_total Idle connections closed at "
                    "--max-connections to let a new one in.\n"
                    "# TYPE leasefence_connections_reclaimed_total counter\n");
  lfw_buf_printf(out, "leasefence_connections_reclaimed_total %lu\n", atomic_load(&s->reclaimed));
  lfw_buf_puts(out, "# HELP leasefence_connections_timed_out_total Connections closed because a "
                    "phase ran past its deadline.\n"
                    "# TYPE leasefence_connections_timed_out_total counter\n");
  for (i = 0; i < PH_COUNT; i++)
    if (i != PH_BUSY)
      lfw_buf_printf(out, "leasefence_connections_timed_out_total{phase=\"%s\"} %lu\n",
                     phase_names[i], atomic_load(&s->timed_out[i]));
  lfw_buf_puts(out, "# HELP leasefence_request_body_bytes_total Request body bytes read.\n"
                    "# TYPE leasefence_request_body_bytes_total counter\n");
  lfw_buf_printf(out, "leasefence_request_body_bytes_total %llu\n", atomic_load(&s->body_bytes));
  lfw_buf_puts(out, "# HELP leasefence_body_memory_bytes Memory held for request bodies "
                    "beyond each connection's own allowance.\n"
                    "# TYPE leasefence_body_memory_bytes gauge\n");
  lfw_buf_printf(out, "leasefence_body_memory_bytes %zu\n", lfw_budget_used(&s->budget));
  lfw_buf_puts(out,
               "# HELP leasefence_body_memory_peak_bytes Highest leasefence_body_memory_bytes.\n"
               "# TYPE leasefence_body_memory_peak_bytes gauge\n");
  lfw_buf_printf(out, "leasefence_body_memory_peak_bytes %zu\n", atomic_load(&s->budget.peak));
  lfw_buf_puts(out, "# HELP leasefence_body_memory_limit_bytes --max-body-memory.\n"
                    "# TYPE leasefence_body_memory_limit_bytes gauge\n");
  lfw_buf_printf(out, "leasefence_body_memory_limit_bytes %zu\n", s->budget.limit);
  lfw_buf_puts(out, "# HELP leasefence_body_memory_refused_total Requests answered 503 because "
                    "--max-body-memory was spent.\n"
                    "# TYPE leasefence_body_memory_refused_total counter\n");
  lfw_buf_printf(out, "leasefence_body_memory_refused_total %lu\n",
                 atomic_load(&s->refused_memory));
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
    server_metrics(s, &out);
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

static int keeper_start(lfw_server *s, char *err, size_t err_size) {
  pthread_condattr_t attr;

  pthread_mutex_init(&s->lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wake, &attr);
  pthread_condattr_destroy(&attr);
  if (pthread_create(&s->keeper, NULL, keeper_main, s) != 0) {
    snprintf(err, err_size, "cannot start the deadline thread");
    return -1;
  }
  s->keeper_started = true;
  return 0;
}

static void keeper_stop(lfw_server *s) {
  if (!s->keeper_started)
    return;
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->keeper, NULL);
  s->keeper_started = false;
}

/* Each connection takes a descriptor (two with its certificate files
 * reloading aside); raise the soft limit to the hard one if that is short. */
static void raise_fd_limit(const lfw_config *cfg) {
  struct rlimit rl;
  rlim_t want = (rlim_t)cfg->max_connections + 128;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want)
    lfw_log_json(LFW_LOG_ERROR, "too few file descriptors for --max-connections",
                 json_pack("{s:I,s:I}", "max_connections", (json_int_t)cfg->max_connections,
                           "nofile", (json_int_t)rl.rlim_cur));
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
  lfw_budget_init(&s->budget, cfg->max_body_memory, cfg->max_body_memory / 4, SMALL_BODY);
  /* Large blocks mapped on their own (see MMAP_THRESHOLD); a fixed
   * threshold also stops glibc from raising it. Few arenas: a thread per
   * connection would otherwise spread small blocks over up to 8 per CPU. */
  mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
  mallopt(M_ARENA_MAX, 4);
  raise_fd_limit(cfg);
  if (client_ca_pem != NULL) {
    s->client_ca_pem = strdup(client_ca_pem);
    if (s->client_ca_pem == NULL) {
      snprintf(err, err_size, "out of memory");
      goto out;
    }
  }
  running = s;
  if (keeper_start(s, err, err_size) != 0)
    goto out;

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
      flags, (uint16_t)cfg->port, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
      s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
      (threads > 1 && !per_conn) ? threads : 0u, MHD_OPTION_CONNECTION_LIMIT,
      2 * cfg->max_connections + MHD_LIMIT_EXTRA, MHD_OPTION_CONNECTION_TIMEOUT,
      cfg->idle_timeout_s, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK, MHD_OPTION_NOTIFY_CONNECTION,
      on_connection, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK,
      on_request_line, s, MHD_OPTION_HTTPS_PRIORITIES, priorities, MHD_OPTION_HTTPS_CERT_CALLBACK,
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
  keeper_stop(s);
  if (running == s)
    running = NULL;
  free(s->client_ca_pem);
  free(s);
}
