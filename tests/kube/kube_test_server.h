/*
 * kube_test_server.h: a tiny HTTP/1.1 server for the Kubernetes client's
 * tests, over plain TCP or TLS (OpenSSL), on 127.0.0.1 with a free port.
 * One thread per connection, keep-alive, Content-Length request bodies.
 * Handlers script the answers, including slow and split writes.
 */
#ifndef LEASEFENCE_KUBE_TEST_SERVER_H
#define LEASEFENCE_KUBE_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_request {
  char method[16];
  char path[4096];
  char authorization[8192]; /* "" when absent. */
  char accept[512];
  char content_type[256];
  char client_cn[256]; /* The TLS client certificate's CN, or "". */
  char *body;          /* NUL-terminated; owned by the server. */
  size_t body_len;
} ts_request;

typedef struct ts_conn ts_conn;
typedef void (*ts_handler)(const ts_request *req, ts_conn *conn, void *arg);

/* Sends a whole response with Content-Length. */
void ts_respond(ts_conn *conn, int status, const char *content_type, const char *body, size_t len);
/* Sends raw bytes (for chunked or split answers); false when the peer left. */
bool ts_write(ts_conn *conn, const void *data, size_t len);
/* Sends one chunk of a chunked body (len 0 ends the body). */
bool ts_chunk(ts_conn *conn, const void *data, size_t len);
/* Closes the connection after this handler returns. */
void ts_close_after(ts_conn *conn);

typedef struct ts_tls {
  const char *cert_pem;      /* Server certificate. */
  const char *key_pem;       /* Its key. */
  const char *client_ca_pem; /* When set, a client certificate signed by it is required. */
} ts_tls;

typedef struct ts_server ts_server;

/* Starts a server; `tls` NULL means plain HTTP. Aborts the test on failure. */
ts_server *ts_start(const ts_tls *tls, ts_handler handler, void *arg);
int ts_port(const ts_server *s);
/* Connections accepted so far. */
unsigned ts_connections(ts_server *s);
/* Stops the server, closes every connection and joins every thread. */
void ts_stop(ts_server **s);

/* A self-signed EC certificate for CN `cn` with SANs IP:127.0.0.1 and
 * DNS:localhost, usable as its own CA. Both strings are malloc'd PEM. */
void ts_make_cert(const char *cn, char **cert_pem, char **key_pem);

/* Writes `data` to `path` (replacing it); aborts the test on failure. */
void ts_write_file(const char *path, const char *data);

#endif
