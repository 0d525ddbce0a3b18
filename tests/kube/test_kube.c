/*
 * test_kube.c: the Kubernetes client against a local test server: Lease
 * GETs and how each answer maps to an error, deadlines, body caps, token
 * rotation, connection reuse, threads, generic requests, watch streams,
 * and TLS (server verification, client certificates, kubeconfig).
 */
#include <leasefence/kube.h>

#include "kube_test_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <cmocka.h>

#define LEASE_JSON                                                                                 \
  "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":"          \
  "\"my-lease\",\"namespace\":\"ns1\",\"uid\":\"0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1\","           \
  "\"resourceVersion\":\"123\",\"annotations\":{\"example.com/note\":\"a\\u0000b\"}},"             \
  "\"spec\":{\"holderIdentity\":\"ctrl-0_abc\","                                                   \
  "\"leaseDurationSeconds\":15,\"leaseTransitions\":3,\"acquireTime\":"                            \
  "\"2024-05-01T10:00:00.000000Z\",\"renewTime\":\"2024-05-01T10:00:05.000000Z\"}}"

#define FORBIDDEN_MESSAGE                                                                          \
  "leases.coordination.k8s.io \\\"my-lease\\\" is forbidden: User "                                \
  "\\\"system:serviceaccount:web:hook\\\" cannot get resource \\\"leases\\\" in API group "        \
  "\\\"coordination.k8s.io\\\" in the namespace \\\"ns1\\\""

typedef enum mode {
  M_LEASE,  /* 200 with LEASE_JSON; 401 when `expect_auth` is set and differs. */
  M_STATUS, /* `status` with `body`. */
  M_SLOW,   /* Holds the answer until released (release_held()), then M_LEASE. */
  M_BIG,    /* 200 with a 2 MiB body. */
  M_ECHO,   /* 201 echoing the request body. */
  M_STREAM, /* Chunked `body`, written in pieces of `piece` bytes. */
} mode;

/* What the test server does and what it saw; guarded by `lock`. */
static struct {
  pthread_mutex_t lock;
  mode mode;
  int status;
  const char *body;
  size_t piece;
  bool stall; /* M_STREAM: do not end the stream; hang until released. */
  /* Held answers (M_SLOW, a stalled stream) wait for the test's
   * release_held() rather than for a time, so a test whose client must give
   * up first does so by construction, at any load. Each set_mode() starts a
   * new hold; release_held() ends the current one. Numbered, so that a
   * handler still waking from a released hold is not held again by the next
   * test's set_mode(). */
  unsigned hold_id;
  unsigned released_id;
  pthread_cond_t cond;
  char expect_auth[256];
  int requests;
  char method[16];
  char path[4096];
  char auth[8192];
  char accept[512];
  char ctype[256];
  char client_cn[256];
  char req_body[4096];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits until the test calls release_held(); bounded (10 s) so that a test
 * that fails before releasing does not hang the server. */
static void hold(unsigned id) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&g.lock);
  while (g.released_id < id && pthread_cond_timedwait(&g.cond, &g.lock, &until) == 0) {
  }
  pthread_mutex_unlock(&g.lock);
}

static void release_held(void) {
  pthread_mutex_lock(&g.lock);
  g.released_id = g.hold_id;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
}

static void handler(const ts_request *req, ts_conn *conn, void *arg) {
  mode m;
  int status;
  const char *body;
  size_t piece;
  bool stall;
  unsigned id;
  bool auth_ok;
  (void)arg;

  pthread_mutex_lock(&g.lock);
  g.requests++;
  snprintf(g.method, sizeof(g.method), "%s", req->method);
  snprintf(g.path, sizeof(g.path), "%s", req->path);
  snprintf(g.auth, sizeof(g.auth), "%s", req->authorization);
  snprintf(g.accept, sizeof(g.accept), "%s", req->accept);
  snprintf(g.ctype, sizeof(g.ctype), "%s", req->content_type);
  snprintf(g.client_cn, sizeof(g.client_cn), "%s", req->client_cn);
  snprintf(g.req_body, sizeof(g.req_body), "%s", req->body);
  m = g.mode;
  status = g.status;
  body = g.body;
  piece = g.piece;
  stall = g.stall;
  id = g.hold_id;
  auth_ok = g.expect_auth[0] == '\0' || strcmp(g.expect_auth, req->authorization) == 0;
  pthread_mutex_unlock(&g.lock);

  switch (m) {
  case M_SLOW:
    hold(id);
    /* fall through */
  case M_LEASE:
    if (!auth_ok) {
      static const char unauthorized[] =
          "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
          "\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}";
      ts_respond(conn, 401, NULL, unauthorized, strlen(unauthorized));
    } else {
      ts_respond(conn, 200, NULL, LEASE_JSON, strlen(LEASE_JSON));
    }
    break;
  case M_STATUS:
    ts_respond(conn, status, body != NULL && body[0] == '{' ? NULL : "text/plain", body,
               body != NULL ? strlen(body) : 0);
    break;
  case M_BIG: {
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    ts_respond(conn, 200, NULL, big, n);
    free(big);
    break;
  }
  case M_ECHO:
    ts_respond(conn, 201, NULL, req->body, req->body_len);
    break;
  case M_STREAM: {
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    size_t len = strlen(body);
    if (!ts_write(conn, head, strlen(head))) {
      break;
    }
    for (size_t off = 0; off < len; off += piece) {
      size_t n = len - off < piece ? len - off : piece;
      if (!ts_chunk(conn, body + off, n)) {
        return;
      }
      /* Separate TCP writes: the client sees the events split anywhere. */
      if (n < 4096) {
        sleep_ms(5);
      }
    }
    if (stall) {
      hold(id);
      ts_close_after(conn);
      break;
    }
    (void)ts_chunk(conn, "", 0);
    break;
  }
  }
}

static void set_mode(mode m, int status, const char *body) {
  pthread_mutex_lock(&g.lock);
  g.mode = m;
  g.status = status;
  g.body = body;
  g.piece = 7;
  g.stall = false;
  g.hold_id++;
  g.expect_auth[0] = '\0';
  g.requests = 0;
  pthread_mutex_unlock(&g.lock);
}

/* Shared by the tests of one group. */
typedef struct fixture {
  ts_server *server;
  char dir[64];
  char token_path[128];
  char url[64];
} fixture;

static int setup_plain(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  snprintf(f->dir, sizeof(f->dir), "/tmp/lf-kube-test-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->token_path, sizeof(f->token_path), "%s/token", f->dir);
  ts_write_file(f->token_path, "tok-1\n");
  f->server = ts_start(NULL, handler, NULL);
  snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", ts_port(f->server));
  *state = f;
  return 0;
}

static int teardown_plain(void **state) {
  fixture *f = *state;
  char cmd[128];
  ts_stop(&f->server);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* A client for `url` with the fixture's token file. */
static lf_kube_client *client_for(const fixture *f, int64_t recheck_ms) {
  lf_kube_parts parts = {0};
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_kube_options opts = {0};
  lf_error err = {0};

  parts.server = f->url;
  parts.token_file = f->token_path;
  parts.ns = "ns1";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  opts.token_recheck_ms = recheck_ms;
  opts.connect_timeout_ms = 2000;
  if (lf_kube_client_new(&cfg, &opts, &c, &err) != LF_OK) {
    fail_msg("client: %s", err.text);
  }
  assert_null(cfg);
  return c;
}

static const lf_lease_ref REF = {"ns1", "my-lease"};

/* ------------------------------------------------------------------------ */
/* Lease GET and error mapping                                              */

static void test_get_lease_ok(void **state) {
  fixture *f = *state;
  lf_kube_client *c = client_for(f, 0);
  lf_lease lease;
  lf_error err = {0};

  set_mode(M_LEASE, 0, NULL);
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  assert_string_equal(lease.holder, "ctrl-0_abc");
  assert_int_equal(lease.transitions, 3);
  assert_int_equal(lease.duration_s, 15);
  assert_string_equal(lease.uid, "0d6a6c42-0d68-4f3e-9ad4-2b1b35e4d3b1");
  assert_string_equal(lease.resource_version, "123");
  assert_string_equal(g.method, "GET");
  /* A quorum read: no resourceVersion in the query. */
  assert_string_equal(g.path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/my-lease");
  assert_string_equal(g.auth, "Bearer tok-1");
  assert_string_equal(g.accept, "application/json");
  assert_string_equal(lf_kube_client_config(c)->ns, "ns1");
  lf_kube_client_free(&c);
  assert_null(c);
  lf_kube_client_free(&c);
  lf_kube_client_free(NULL);
}

static void test_get_lease_escapes_path(void **state) {
  fixture *f = *state;
  lf_kube_client *c = client_for(f, 0);
  lf_lease lease;
  lf_error err = {0};
  lf_lease_ref odd = {"ns1", "a b/c?d"};
  lf_lease_ref empty = {"", "x"};
  lf_lease_ref unterminated;

  set_mode(M_LEASE, 0, NULL);
  /* The server answers with another Lease than asked: refused. */
  assert_int_equal(lf_kube_get_lease(c, &odd, 2000, &lease, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "for Lease ns1/a b/c?d and got Lease ns1/my-lease"));
  assert_string_equal(g.path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/a%20b%2Fc%3Fd");
  assert_int_equal(lf_kube_get_lease(c, &empty, 2000, &lease, &err), LF_EINVAL);
  memset(&unterminated, 'a', sizeof(unterminated));
  assert_int_equal(lf_kube_get_lease(c, &unterminated, 2000, &lease, &err), LF_EINVAL);
  lf_kube_client_free(&c);
}

/* Runs one GET against a scripted answer and checks code and text. */
static void expect_get(const fixture *f, mode m, int status, const char *body, int64_t timeout_ms,
                       int code, const char *text1, const char *text2) {
  lf_kube_client *c = client_for(f, 0);
  lf_lease lease;
  lf_error err = {0};
  int rc;

  set_mode(m, status, body);
  memset(&lease, 0x5a, sizeof(lease));
  rc = lf_kube_get_lease(c, &REF, timeout_ms, &lease, &err);
  if (rc != code) {
    fail_msg("expected %d, got %d: %s", code, rc, err.text);
  }
  assert_int_equal(err.code, code);
  if (text1 != NULL && strstr(err.text, text1) == NULL) {
    fail_msg("\"%s\" not in \"%s\"", text1, err.text);
  }
  if (text2 != NULL && strstr(err.text, text2) == NULL) {
    fail_msg("\"%s\" not in \"%s\"", text2, err.text);
  }
  /* The output is written only on success. */
  assert_int_equal(((unsigned char *)&lease)[0], 0x5a);
  lf_kube_client_free(&c);
}

static void test_not_found(void **state) {
  expect_get(*state, M_STATUS, 404,
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
             "\"leases.coordination.k8s.io \\\"my-lease\\\" not found\",\"reason\":\"NotFound\","
             "\"code\":404}",
             2000, LF_ENOTFOUND, "Lease ns1/my-lease not found", "\"my-lease\" not found");
}

static void test_forbidden_names_permission(void **state) {
  expect_get(*state, M_STATUS, 403,
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
             "\"" FORBIDDEN_MESSAGE "\",\"reason\":\"Forbidden\",\"code\":403}",
             2000, LF_EDENIED, "HTTP 403 Forbidden",
             "cannot get resource \"leases\" in API group \"coordination.k8s.io\"");
}

static void test_unauthorized(void **state) {
  expect_get(*state, M_STATUS, 401, "{\"kind\":\"Status\",\"message\":\"Unauthorized\"}", 2000,
             LF_EDENIED, "HTTP 401", "credentials were rejected");
}

static void test_server_errors(void **state) {
  expect_get(*state, M_STATUS, 503,
             "{\"kind\":\"Status\",\"message\":\"etcdserver: request timed out\",\"code\":503}",
             2000, LF_EIO, "HTTP 503 Service Unavailable from http://127.0.0.1:",
             ": etcdserver: request timed out");
  expect_get(*state, M_STATUS, 500, "boom\nwith a newline", 2000, LF_EIO,
             "HTTP 500 Internal Server Error", "boom with a newline");
  expect_get(*state, M_STATUS, 429, "", 2000, LF_EIO, "HTTP 429 Too Many Requests", NULL);
}

/* The server holds its answer until the client has returned, so the client
 * can only have returned by giving up at its deadline. */
static void test_timeout(void **state) {
  expect_get(*state, M_SLOW, 0, NULL, 200, LF_ETIMEDOUT, "no answer within 200 ms", NULL);
  release_held();
}

static void test_lease_body_capped(void **state) {
  expect_get(*state, M_BIG, 0, NULL, 5000, LF_ETOOBIG, "larger than 1048576 bytes", NULL);
}

static void test_not_a_lease(void **state) {
  expect_get(*state, M_STATUS, 200, "{\"kind\":\"ConfigMap\",\"metadata\":{}}", 2000, LF_EINVAL,
             "Lease ns1/my-lease from http://127.0.0.1:", "not a Lease");
  expect_get(*state, M_STATUS, 200, "<html>", 2000, LF_EINVAL, "not valid JSON", NULL);
}

static void test_connect_refused(void **state) {
  fixture *f = *state;
  fixture closed = *f;
  ts_server *s = ts_start(NULL, handler, NULL);
  lf_kube_client *c;
  lf_lease lease;
  lf_error err = {0};

  /* A port that was just free and is closed again. */
  snprintf(closed.url, sizeof(closed.url), "http://127.0.0.1:%d", ts_port(s));
  ts_stop(&s);
  c = client_for(&closed, 0);
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_EIO);
  assert_non_null(strstr(err.text, "connect: "));
  lf_kube_client_free(&c);
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                   */

static void replace_token(const fixture *f, const char *token) {
  char tmp[160];
  snprintf(tmp, sizeof(tmp), "%s.new", f->token_path);
  ts_write_file(tmp, token);
  /* As the kubelet does: a new file swapped in atomically. */
  assert_int_equal(rename(tmp, f->token_path), 0);
}

static void test_token_file_rotation(void **state) {
  fixture *f = *state;
  lf_kube_client *c;
  lf_lease lease;
  lf_error err = {0};

  replace_token(f, "tok-1\n");
  c = client_for(f, -1);
  set_mode(M_LEASE, 0, NULL);
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  assert_string_equal(g.auth, "Bearer tok-1");
  replace_token(f, "tok-2\n");
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  assert_string_equal(g.auth, "Bearer tok-2");
  /* A token file that is briefly unreadable keeps the last good token. */
  assert_int_equal(unlink(f->token_path), 0);
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  assert_string_equal(g.auth, "Bearer tok-2");
  replace_token(f, "tok-1\n");
  lf_kube_client_free(&c);
}

static void test_token_recheck_interval_and_401(void **state) {
  fixture *f = *state;
  lf_kube_client *c;
  lf_lease lease;
  lf_error err = {0};

  replace_token(f, "tok-1\n");
  c = client_for(f, 60000);
  set_mode(M_LEASE, 0, NULL);
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  replace_token(f, "tok-2\n");
  pthread_mutex_lock(&g.lock);
  snprintf(g.expect_auth, sizeof(g.expect_auth), "Bearer tok-2");
  pthread_mutex_unlock(&g.lock);
  /* Within the recheck interval the old token is still sent... */
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_EDENIED);
  assert_string_equal(g.auth, "Bearer tok-1");
  /* ...but the 401 makes the next request look at the file again. */
  assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  assert_string_equal(g.auth, "Bearer tok-2");
  replace_token(f, "tok-1\n");
  lf_kube_client_free(&c);
}

static void test_bad_token_never_printed(void **state) {
  fixture *f = *state;
  lf_kube_parts parts = {0};
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_error err = {0};

  replace_token(f, "secret-part\r\nX-Injected: yes\n");
  parts.server = f->url;
  parts.token_file = f->token_path;
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  assert_int_equal(lf_kube_client_new(&cfg, NULL, &c, &err), LF_EINVAL);
  assert_null(c);
  assert_non_null(cfg); /* Still the caller's. */
  assert_null(strstr(err.text, "secret"));
  replace_token(f, "");
  assert_int_equal(lf_kube_client_new(&cfg, NULL, &c, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "empty"));
  lf_kube_config_free(&cfg);
  assert_null(cfg);
  lf_kube_config_free(&cfg);
  replace_token(f, "tok-1\n");
}

/* ------------------------------------------------------------------------ */
/* Connections and threads                                                  */

static void test_connection_reused(void **state) {
  fixture *f = *state;
  ts_server *s = ts_start(NULL, handler, NULL);
  fixture mine = *f;
  lf_kube_client *c;
  lf_lease lease;
  lf_error err = {0};

  snprintf(mine.url, sizeof(mine.url), "http://127.0.0.1:%d", ts_port(s));
  c = client_for(&mine, 0);
  set_mode(M_LEASE, 0, NULL);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(lf_kube_get_lease(c, &REF, 2000, &lease, &err), LF_OK);
  }
  assert_int_equal(ts_connections(s), 1);
  lf_kube_client_free(&c);
  ts_stop(&s);
}

typedef struct worker {
  lf_kube_client *client;
  int ok;
  pthread_t thread;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 25; i++) {
    lf_lease lease;
    lf_error err = {0};
    if (lf_kube_get_lease(w->client, &REF, 5000, &lease, &err) == LF_OK &&
        strcmp(lease.holder, "ctrl-0_abc") == 0) {
      w->ok++;
    }
  }
  return NULL;
}

static void test_threads_share_one_client(void **state) {
  fixture *f = *state;
  ts_server *s = ts_start(NULL, handler, NULL);
  fixture mine = *f;
  lf_kube_client *c;
  worker w[4];

  snprintf(mine.url, sizeof(mine.url), "http://127.0.0.1:%d", ts_port(s));
  c = client_for(&mine, -1);
  set_mode(M_LEASE, 0, NULL);
  for (int i = 0; i < 4; i++) {
    w[i].client = c;
    w[i].ok = 0;
    assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(w[i].thread, NULL);
    assert_int_equal(w[i].ok, 25);
  }
  /* Connections stay with their pooled handles: at most one per concurrent
   * request, and later requests find them again. */
  {
    unsigned after_threads = ts_connections(s);
    lf_lease lease;
    lf_error err = {0};
    assert_true(after_threads <= 4);
    for (int i = 0; i < 10; i++) {
      assert_int_equal(lf_kube_get_lease(c, &REF, 5000, &lease, &err), LF_OK);
    }
    assert_int_equal(ts_connections(s), after_threads);
  }
  lf_kube_client_free(&c);
  ts_stop(&s);
}

/* ------------------------------------------------------------------------ */
/* Generic requests                                                         */

static void test_request_generic(void **state) {
  fixture *f = *state;
  lf_kube_client *c = client_for(f, 0);
  lf_kube_req req = {0};
  static const char patch[] = "{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}";
  long status = 0;
  char *body = NULL;
  size_t len = 0;
  lf_error err = {0};

  set_mode(M_ECHO, 0, NULL);
  req.method = "PATCH";
  req.path = "/api/v1/namespaces/ns1/configmaps/cm?fieldManager=lf1%3A3%3Auid";
  req.accept = LF_KUBE_ACCEPT_PARTIAL_METADATA;
  req.content_type = "application/merge-patch+json";
  req.body = patch;
  req.body_len = strlen(patch);
  req.timeout_ms = 2000;
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_OK);
  assert_int_equal(status, 201);
  assert_int_equal(len, strlen(patch));
  assert_string_equal(body, patch);
  assert_string_equal(g.method, "PATCH");
  assert_string_equal(g.path, req.path);
  assert_string_equal(g.accept, LF_KUBE_ACCEPT_PARTIAL_METADATA);
  assert_string_equal(g.ctype, "application/merge-patch+json");
  assert_string_equal(g.req_body, patch);
  free(body);

  /* POST with the default content type. */
  req.method = "POST";
  req.content_type = NULL;
  req.accept = NULL;
  assert_int_equal(lf_kube_request(c, &req, &status, &body, NULL, &err), LF_OK);
  assert_string_equal(g.method, "POST");
  assert_string_equal(g.ctype, "application/json");
  free(body);

  /* DELETE without a body, answered with an empty body. */
  set_mode(M_STATUS, 200, "");
  req.method = "DELETE";
  req.body = NULL;
  req.body_len = 0;
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_OK);
  assert_string_equal(g.method, "DELETE");
  assert_int_equal(status, 200);
  assert_non_null(body);
  assert_int_equal(len, 0);
  free(body);

  /* A non-2xx status is an answer, not a failure; status_error maps it. */
  set_mode(M_STATUS, 409, "{\"kind\":\"Status\",\"message\":\"the object has been modified\"}");
  req.method = "GET";
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_OK);
  assert_int_equal(status, 409);
  assert_int_equal(lf_kube_status_error(c, status, body, len, "ConfigMap ns1/cm", &err), LF_EIO);
  assert_non_null(strstr(err.text, "HTTP 409 Conflict"));
  assert_non_null(strstr(err.text, "the object has been modified"));
  free(body);

  /* The cap holds for any request. */
  set_mode(M_BIG, 0, NULL);
  req.max_bytes = 1000;
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_ETOOBIG);
  assert_null(body);
  assert_int_equal(status, 0);

  /* Bad request fields. */
  req.path = "no-slash";
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_EINVAL);
  req.path = "/x";
  req.timeout_ms = 0;
  assert_int_equal(lf_kube_request(c, &req, &status, &body, &len, &err), LF_EINVAL);
  lf_kube_client_free(&c);
}

static void test_get_json(void **state) {
  fixture *f = *state;
  lf_kube_client *c = client_for(f, 0);
  json_t *doc = NULL;
  lf_error err = {0};
  static const char meta[] =
      "{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":"
      "{\"name\":\"web\",\"annotations\":{\"leasefence.io/lease\":\"ctrl\"}}}";
  static const char path[] = "/apis/apps/v1/namespaces/ns1/deployments/web";

  set_mode(M_STATUS, 200, meta);
  assert_int_equal(lf_kube_get_json(c, path, LF_KUBE_ACCEPT_PARTIAL_METADATA, 2000, 0,
                                    "Deployment ns1/web", &doc, &err),
                   LF_OK);
  assert_string_equal(g.accept, LF_KUBE_ACCEPT_PARTIAL_METADATA);
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_object_get(doc, "metadata"), "annotations"), "leasefence.io/lease")),
      "ctrl");
  json_decref(doc);

  set_mode(M_STATUS, 404,
           "{\"kind\":\"Status\",\"message\":\"deployments.apps \\\"web\\\" not found\"}");
  assert_int_equal(lf_kube_get_json(c, path, NULL, 2000, 0, "Deployment ns1/web", &doc, &err),
                   LF_ENOTFOUND);
  assert_null(doc);
  assert_non_null(strstr(err.text, "Deployment ns1/web not found"));
  set_mode(M_STATUS, 200, "[1,2]");
  assert_int_equal(lf_kube_get_json(c, path, NULL, 2000, 0, "Deployment ns1/web", &doc, &err),
                   LF_EINVAL);
  assert_null(doc);
  set_mode(M_STATUS, 200, "{oops");
  assert_int_equal(lf_kube_get_json(c, path, NULL, 2000, 0, "Deployment ns1/web", &doc, &err),
                   LF_EINVAL);
  assert_non_null(strstr(err.text, "not a JSON object"));
  set_mode(M_BIG, 0, NULL);
  assert_int_equal(lf_kube_get_json(c, path, NULL, 2000, 4096, "Deployment ns1/web", &doc, &err),
                   LF_ETOOBIG);
  assert_null(doc);
  lf_kube_client_free(&c);
}

static void test_escape(void **state) {
  char out[16];
  (void)state;
  assert_int_equal(lf_kube_escape("kube-system", out, sizeof(out)), LF_OK);
  assert_string_equal(out, "kube-system");
  assert_int_equal(lf_kube_escape("a b/c?%", out, sizeof(out)), LF_OK);
  assert_string_equal(out, "a%20b%2Fc%3F%25");
  assert_int_equal(lf_kube_escape("\xc3\xa9.~_", out, sizeof(out)), LF_OK);
  assert_string_equal(out, "%C3%A9.~_");
  assert_int_equal(lf_kube_escape("", out, sizeof(out)), LF_OK);
  assert_string_equal(out, "");
  assert_int_equal(lf_kube_escape("0123456789abcdef", out, sizeof(out)), LF_ETOOBIG);
  assert_int_equal(lf_kube_escape("/////", out, sizeof(out)), LF_OK);
  assert_int_equal(lf_kube_escape("//////", out, sizeof(out)), LF_ETOOBIG);
  assert_int_equal(lf_kube_escape("x", out, 0), LF_ETOOBIG);
  assert_int_equal(lf_kube_escape("", out, 0), LF_ETOOBIG);
}

static void test_status_error_mapping(void **state) {
  lf_error err = {0};
  static const char forbidden[] = "{\"kind\":\"Status\",\"message\":\"" FORBIDDEN_MESSAGE "\"}";
  (void)state;
  assert_int_equal(lf_kube_status_error(NULL, 200, NULL, 0, "x", &err), LF_OK);
  assert_int_equal(lf_kube_status_error(NULL, 204, NULL, 0, "x", &err), LF_OK);
  assert_int_equal(lf_kube_status_error(NULL, 404, NULL, 0, "Lease a/b", &err), LF_ENOTFOUND);
  assert_int_equal(lf_kube_status_error(NULL, 401, NULL, 0, "x", NULL), LF_EDENIED);
  assert_int_equal(
      lf_kube_status_error(NULL, 403, forbidden, strlen(forbidden), "Lease ns1/my-lease", &err),
      LF_EDENIED);
  assert_non_null(strstr(err.text, "User \"system:serviceaccount:web:hook\" cannot get"));
  assert_int_equal(lf_kube_status_error(NULL, 502, "x", 1, "x", &err), LF_EIO);
  assert_int_equal(lf_kube_status_error(NULL, 302, NULL, 0, "x", &err), LF_EIO);
}

/* ------------------------------------------------------------------------ */
/* The command-line tool                                                    */

/* Runs kube-get-lease with a kubeconfig for the fixture's server; returns
 * its exit status and its output (stdout and stderr) in `out`. */
static int run_cli(const fixture *f, const char *args, char *out, size_t size) {
  char kubeconfig[160];
  char yaml[512];
  char cmd[1024];
  FILE *p;
  size_t n;
  int status;

  snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", f->dir);
  snprintf(yaml, sizeof(yaml),
           "current-context: t\nclusters: [{name: s, cluster: {server: \"%s\"}}]\n"
           "contexts: [{name: t, context: {cluster: s, user: u, namespace: ns1}}]\n"
           "users: [{name: u, user: {tokenFile: token}}]\n",
           f->url);
  ts_write_file(kubeconfig, yaml);
  snprintf(cmd, sizeof(cmd), "'%s' --kubeconfig '%s' %s 2>&1", KUBE_GET_LEASE, kubeconfig, args);
  p = popen(cmd, "r");
  assert_non_null(p);
  n = fread(out, 1, size - 1, p);
  out[n] = '\0';
  status = pclose(p);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void test_cli(void **state) {
  fixture *f = *state;
  char out[4096];

  replace_token(f, "tok-1\n");
  set_mode(M_LEASE, 0, NULL);
  assert_int_equal(run_cli(f, "--name my-lease", out, sizeof(out)), 0);
  assert_non_null(strstr(out, "holderIdentity: ctrl-0_abc\n"));
  assert_non_null(strstr(out, "leaseTransitions: 3\n"));
  assert_non_null(strstr(out, "renewTime: 2024-05-01T10:00:05.000000Z\n"));
  /* The namespace came from the kubeconfig's context. */
  assert_string_equal(g.path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/my-lease");
  assert_string_equal(g.auth, "Bearer tok-1");

  set_mode(M_STATUS, 404, "{\"kind\":\"Status\",\"message\":\"not here\"}");
  assert_int_equal(run_cli(f, "--namespace other --name my-lease", out, sizeof(out)), 2);
  assert_non_null(strstr(out, "Lease other/my-lease not found"));
  set_mode(M_STATUS, 403, "{\"kind\":\"Status\",\"message\":\"" FORBIDDEN_MESSAGE "\"}");
  assert_int_equal(run_cli(f, "--name my-lease", out, sizeof(out)), 3);
  assert_non_null(strstr(out, "cannot get resource \"leases\""));
  assert_int_equal(run_cli(f, "", out, sizeof(out)), 64);
}

/* ------------------------------------------------------------------------ */
/* Watch                                                                    */

#define EV(type, name, rv)                                                                         \
  "{\"type\":\"" type "\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" name       \
  "\",\"resourceVersion\":\"" rv "\"}}}\n"

typedef struct seen {
  int n;
  int stop_at; /* Stop after this many events; 0 never. */
  char types[16][16];
  char names[16][32];
  long codes[16];
} seen;

static int on_event(const char *type, json_t *object, void *arg) {
  seen *s = arg;
  const char *name =
      json_string_value(json_object_get(json_object_get(object, "metadata"), "name"));
  if (s->n < 16) {
    snprintf(s->types[s->n], sizeof(s->types[0]), "%s", type);
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name != NULL ? name : "");
    s->codes[s->n] = (long)json_integer_value(json_object_get(object, "code"));
  }
  s->n++;
  return s->stop_at != 0 && s->n >= s->stop_at;
}

static int run_watch(const fixture *f, const char *stream, size_t piece, bool stall,
                     int64_t timeout_ms, seen *s, lf_error *err) {
  lf_kube_client *c = client_for(f, 0);
  int rc;
  set_mode(M_STREAM, 0, stream);
  pthread_mutex_lock(&g.lock);
  g.piece = piece;
  g.stall = stall;
  pthread_mutex_unlock(&g.lock);
  rc = lf_kube_watch(c, "/api/v1/namespaces/ns1/configmaps?watch=1&allowWatchBookmarks=true",
                     timeout_ms, on_event, s, err);
  lf_kube_client_free(&c);
  return rc;
}

static void test_watch_events_split_anywhere(void **state) {
  static const char stream[] = EV("ADDED", "a", "1") "\n" EV(
      "MODIFIED", "b",
      "2") "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{"
           "\"resourceVersion\":\"9\"}}}\r\n" EV("DELETED", "c", "3");
  static const size_t pieces[] = {1, 7, 64, 100000};
  for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
    seen s = {0};
    lf_error err = {0};
    int rc = run_watch(*state, stream, pieces[i], false, 10000, &s, &err);
    if (rc != LF_OK) {
      fail_msg("piece %zu: %d %s", pieces[i], rc, err.text);
    }
    assert_int_equal(s.n, 4);
    assert_string_equal(s.types[0], "ADDED");
    assert_string_equal(s.names[0], "a");
    assert_string_equal(s.types[1], "MODIFIED");
    assert_string_equal(s.names[1], "b");
    assert_string_equal(s.types[2], "BOOKMARK");
    assert_string_equal(s.types[3], "DELETED");
    assert_string_equal(s.names[3], "c");
  }
  assert_non_null(strstr(g.path, "watch=1"));
}

/* "\u0000" is legal in any string of an object (Go's encoder sends a NUL
 * so): an event carrying one is delivered like any other. */
static void test_watch_nul_in_strings(void **state) {
  static const char stream[] =
      "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\","
      "\"annotations\":{\"example.com/note\":\"x\\u0000y\"}},\"data\":{\"k\":\"\\u0000\"}}}\n" EV(
          "MODIFIED", "b", "2");
  seen s = {0};
  lf_error err = {0};
  int rc = run_watch(*state, stream, 1000, false, 5000, &s, &err);
  if (rc != LF_OK) {
    fail_msg("%d %s", rc, err.text);
  }
  assert_int_equal(s.n, 2);
  assert_string_equal(s.names[0], "a");
}

static void test_watch_last_event_without_newline(void **state) {
  static const char stream[] = EV("ADDED", "a", "1") "{\"type\":\"ADDED\",\"object\":{}}";
  seen s = {0};
  lf_error err = {0};
  assert_int_equal(run_watch(*state, stream, 1000, false, 5000, &s, &err), LF_OK);
  assert_int_equal(s.n, 2);
}

static void test_watch_callback_stops(void **state) {
  static const char stream[] = EV("ADDED", "a", "1") EV("ADDED", "b", "2") EV("ADDED", "c", "3");
  seen s = {0};
  lf_error err = {0};
  s.stop_at = 2;
  assert_int_equal(run_watch(*state, stream, 1000, false, 5000, &s, &err), LF_OK);
  assert_int_equal(s.n, 2);
}

static void test_watch_error_event(void **state) {
  static const char stream[] =
      EV("ADDED", "a", "1") "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
                            "\"v1\",\"status\":\"Failure\",\"message\":\"too old resource "
                            "version: 1 (5)\",\"reason\":\"Expired\",\"code\":410}}\n";
  seen s = {0};
  lf_error err = {0};
  assert_int_equal(run_watch(*state, stream, 13, false, 5000, &s, &err), LF_OK);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.types[1], "ERROR");
  assert_int_equal(s.codes[1], 410);
}

static void test_watch_oversize_event(void **state) {
  size_t big = LF_KUBE_WATCH_EVENT_MAX + 1000;
  const char *first = EV("ADDED", "a", "1");
  char *stream = malloc(strlen(first) + big + 200);
  size_t off;
  seen s = {0};
  lf_error err = {0};

  assert_non_null(stream);
  strcpy(stream, first);
  off = strlen(stream);
  off += (size_t)sprintf(stream + off, "{\"type\":\"ADDED\",\"object\":{\"pad\":\"");
  memset(stream + off, 'x', big);
  off += big;
  strcpy(stream + off, "\"}}\n" EV("ADDED", "never", "2"));
  assert_int_equal(run_watch(*state, stream, 65536, false, 10000, &s, &err), LF_ETOOBIG);
  assert_int_equal(s.n, 1);
  assert_non_null(strstr(err.text, "re-list"));
  free(stream);
}

static void test_watch_malformed_event(void **state) {
  seen s = {0};
  lf_error err = {0};
  assert_int_equal(run_watch(*state, EV("ADDED", "a", "1") "not json\n", 5, false, 5000, &s, &err),
                   LF_EINVAL);
  assert_int_equal(s.n, 1);
  assert_non_null(strstr(err.text, "not JSON"));
  memset(&s, 0, sizeof(s));
  assert_int_equal(run_watch(*state, "{\"type\":1,\"object\":{}}\n", 5, false, 5000, &s, &err),
                   LF_EINVAL);
  assert_int_equal(s.n, 0);
}

/* One event, then the stream stays open and silent until the watch has
 * returned: the watch ends at its deadline, mid-stream. The deadline is
 * generous so that the first event arrives before it even on a loaded
 * machine; the stall is held by the test, not timed, so it outlasts the
 * deadline whatever the load. */
static void test_watch_deadline(void **state) {
  seen s = {0};
  lf_error err = {0};
  assert_int_equal(run_watch(*state, EV("ADDED", "a", "1"), 1000, true, 2500, &s, &err),
                   LF_ETIMEDOUT);
  release_held();
  assert_int_equal(s.n, 1);
}

static void test_watch_refused(void **state) {
  fixture *f = *state;
  lf_kube_client *c = client_for(f, 0);
  seen s = {0};
  lf_error err = {0};
  static const char body[] = "{\"kind\":\"Status\",\"message\":\"configmaps is forbidden: User "
                             "\\\"x\\\" cannot watch resource \\\"configmaps\\\"\"}";
  set_mode(M_STATUS, 403, body);
  assert_int_equal(lf_kube_watch(c, "/api/v1/configmaps?watch=1", 2000, on_event, &s, &err),
                   LF_EDENIED);
  assert_non_null(strstr(err.text, "cannot watch resource \"configmaps\""));
  assert_int_equal(s.n, 0);
  assert_int_equal(lf_kube_watch(c, "/api/v1/configmaps?watch=1", 2000, NULL, &s, &err), LF_EINVAL);
  lf_kube_client_free(&c);
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                      */

typedef struct tls_fixture {
  char *server_cert, *server_key;
  char *other_cert, *other_key;
  char *client_cert, *client_key;
  ts_server *server;      /* Server certificate only. */
  ts_server *mtls_server; /* Requires a client certificate. */
  char dir[64];
  char ca_path[128], client_cert_path[128], client_key_path[128];
} tls_fixture;

static int setup_tls(void **state) {
  tls_fixture *t = calloc(1, sizeof(*t));
  ts_tls tls = {0};
  assert_non_null(t);
  ts_make_cert("leasefence-test-server", &t->server_cert, &t->server_key);
  ts_make_cert("someone-else", &t->other_cert, &t->other_key);
  ts_make_cert("admin-user", &t->client_cert, &t->client_key);
  tls.cert_pem = t->server_cert;
  tls.key_pem = t->server_key;
  t->server = ts_start(&tls, handler, NULL);
  tls.client_ca_pem = t->client_cert;
  t->mtls_server = ts_start(&tls, handler, NULL);
  snprintf(t->dir, sizeof(t->dir), "/tmp/lf-kube-tls-XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->ca_path, sizeof(t->ca_path), "%s/ca.crt", t->dir);
  snprintf(t->client_cert_path, sizeof(t->client_cert_path), "%s/client.crt", t->dir);
  snprintf(t->client_key_path, sizeof(t->client_key_path), "%s/client.key", t->dir);
  ts_write_file(t->ca_path, t->server_cert);
  ts_write_file(t->client_cert_path, t->client_cert);
  ts_write_file(t->client_key_path, t->client_key);
  *state = t;
  return 0;
}

static int teardown_tls(void **state) {
  tls_fixture *t = *state;
  char cmd[128];
  ts_stop(&t->server);
  ts_stop(&t->mtls_server);
  free(t->server_cert);
  free(t->server_key);
  free(t->other_cert);
  free(t->other_key);
  free(t->client_cert);
  free(t->client_key);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
  assert_int_equal(system(cmd), 0);
  free(t);
  return 0;
}

/* GETs the Lease through a client built from `parts` (server filled in). */
static int tls_get(ts_server *s, lf_kube_parts *parts, lf_error *err) {
  char url[64];
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_lease lease;
  int rc;

  snprintf(url, sizeof(url), "https://127.0.0.1:%d", ts_port(s));
  parts->server = url;
  assert_int_equal(lf_kube_config_from_parts(parts, &cfg, err), LF_OK);
  assert_int_equal(lf_kube_client_new(&cfg, NULL, &c, err), LF_OK);
  set_mode(M_LEASE, 0, NULL);
  g.client_cn[0] = '\0';
  rc = lf_kube_get_lease(c, &REF, 5000, &lease, err);
  if (rc == LF_OK) {
    assert_string_equal(lease.holder, "ctrl-0_abc");
  }
  lf_kube_client_free(&c);
  return rc;
}

static void test_tls_ca_in_memory_and_file(void **state) {
  tls_fixture *t = *state;
  lf_kube_parts parts = {0};
  lf_error err = {0};
  parts.ca_pem = t->server_cert;
  if (tls_get(t->server, &parts, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  memset(&parts, 0, sizeof(parts));
  parts.ca_file = t->ca_path;
  assert_int_equal(tls_get(t->server, &parts, &err), LF_OK);
}

static void test_tls_wrong_ca(void **state) {
  tls_fixture *t = *state;
  lf_kube_parts parts = {0};
  lf_error err = {0};
  parts.ca_pem = t->other_cert;
  assert_int_equal(tls_get(t->server, &parts, &err), LF_EIO);
  if (strncmp(err.text, "TLS: certificate verify failed", 30) != 0) {
    fail_msg("%s", err.text);
  }
}

static void test_tls_insecure(void **state) {
  tls_fixture *t = *state;
  lf_kube_parts parts = {0};
  lf_error err = {0};
  parts.insecure_skip_verify = true;
  assert_int_equal(tls_get(t->server, &parts, &err), LF_OK);
}

static void test_tls_client_certificate(void **state) {
  tls_fixture *t = *state;
  lf_kube_parts parts = {0};
  lf_error err = {0};

  parts.ca_pem = t->server_cert;
  parts.cert_pem = t->client_cert;
  parts.key_pem = t->client_key;
  if (tls_get(t->mtls_server, &parts, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  assert_string_equal(g.client_cn, "admin-user");

  memset(&parts, 0, sizeof(parts));
  parts.ca_file = t->ca_path;
  parts.cert_file = t->client_cert_path;
  parts.key_file = t->client_key_path;
  assert_int_equal(tls_get(t->mtls_server, &parts, &err), LF_OK);
  assert_string_equal(g.client_cn, "admin-user");

  /* Without a certificate the server ends the handshake. */
  memset(&parts, 0, sizeof(parts));
  parts.ca_file = t->ca_path;
  assert_int_equal(tls_get(t->mtls_server, &parts, &err), LF_EIO);
}

static void test_tls_connection_reused(void **state) {
  tls_fixture *t = *state;
  char url[64];
  lf_kube_parts parts = {0};
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_lease lease;
  lf_error err = {0};
  unsigned before = ts_connections(t->mtls_server);

  /* In-memory CA and client certificate: curl must still match the pooled
   * connection, or every Lease read would pay a TLS handshake. */
  snprintf(url, sizeof(url), "https://127.0.0.1:%d", ts_port(t->mtls_server));
  parts.server = url;
  parts.ca_pem = t->server_cert;
  parts.cert_pem = t->client_cert;
  parts.key_pem = t->client_key;
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  assert_int_equal(lf_kube_client_new(&cfg, NULL, &c, &err), LF_OK);
  set_mode(M_LEASE, 0, NULL);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(lf_kube_get_lease(c, &REF, 5000, &lease, &err), LF_OK);
  }
  assert_int_equal(ts_connections(t->mtls_server) - before, 1);
  lf_kube_client_free(&c);
}

static char *b64(const char *s) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(s);
  char *out = malloc(n / 3 * 4 + 5);
  size_t o = 0;
  assert_non_null(out);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
    if (i + 1 < n) {
      v |= (uint32_t)(unsigned char)s[i + 1] << 8;
    }
    if (i + 2 < n) {
      v |= (unsigned char)s[i + 2];
    }
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

static void test_tls_from_kubeconfig(void **state) {
  tls_fixture *t = *state;
  char path[160];
  char *ca = b64(t->server_cert);
  char *cert = b64(t->client_cert);
  char *key = b64(t->client_key);
  char *doc = NULL;
  lf_kube_config *cfg = NULL;
  lf_kube_client *c = NULL;
  lf_lease lease;
  lf_error err = {0};

  /* The shape the e2e cluster package writes: CA data and client cert data. */
  assert_true(asprintf(&doc,
                       "apiVersion: v1\nkind: Config\ncurrent-context: admin\n"
                       "clusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:%d\n"
                       "    certificate-authority-data: %s\n"
                       "contexts:\n- name: admin\n  context:\n    cluster: local\n    user: admin\n"
                       "users:\n- name: admin\n  user:\n    client-certificate-data: %s\n"
                       "    client-key-data: %s\n",
                       ts_port(t->mtls_server), ca, cert, key) > 0);
  snprintf(path, sizeof(path), "%s/kubeconfig", t->dir);
  ts_write_file(path, doc);
  if (lf_kube_config_from_kubeconfig(path, NULL, &cfg, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  assert_int_equal(lf_kube_client_new(&cfg, NULL, &c, &err), LF_OK);
  set_mode(M_LEASE, 0, NULL);
  assert_int_equal(lf_kube_get_lease(c, &REF, 5000, &lease, &err), LF_OK);
  assert_string_equal(g.client_cn, "admin-user");
  assert_string_equal(g.auth, "");
  lf_kube_client_free(&c);
  free(doc);
  free(ca);
  free(cert);
  free(key);
}

int main(void) {
  const struct CMUnitTest plain[] = {
      cmocka_unit_test(test_get_lease_ok),
      cmocka_unit_test(test_get_lease_escapes_path),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_forbidden_names_permission),
      cmocka_unit_test(test_unauthorized),
      cmocka_unit_test(test_server_errors),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_lease_body_capped),
      cmocka_unit_test(test_not_a_lease),
      cmocka_unit_test(test_connect_refused),
      cmocka_unit_test(test_token_file_rotation),
      cmocka_unit_test(test_token_recheck_interval_and_401),
      cmocka_unit_test(test_bad_token_never_printed),
      cmocka_unit_test(test_connection_reused),
      cmocka_unit_test(test_threads_share_one_client),
      cmocka_unit_test(test_request_generic),
      cmocka_unit_test(test_get_json),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_status_error_mapping),
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_watch_events_split_anywhere),
      cmocka_unit_test(test_watch_last_event_without_newline),
      cmocka_unit_test(test_watch_nul_in_strings),
      cmocka_unit_test(test_watch_callback_stops),
      cmocka_unit_test(test_watch_error_event),
      cmocka_unit_test(test_watch_oversize_event),
      cmocka_unit_test(test_watch_malformed_event),
      cmocka_unit_test(test_watch_deadline),
      cmocka_unit_test(test_watch_refused),
  };
  const struct CMUnitTest tls[] = {
      cmocka_unit_test(test_tls_ca_in_memory_and_file),
      cmocka_unit_test(test_tls_wrong_ca),
      cmocka_unit_test(test_tls_insecure),
      cmocka_unit_test(test_tls_client_certificate),
      cmocka_unit_test(test_tls_connection_reused),
      cmocka_unit_test(test_tls_from_kubeconfig),
  };
  int failed = cmocka_run_group_tests_name("kube (plain HTTP)", plain, setup_plain, teardown_plain);
  failed += cmocka_run_group_tests_name("kube (TLS)", tls, setup_tls, teardown_tls);
  return failed;
}
