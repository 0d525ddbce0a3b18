/*
 * server.h: the HTTPS review endpoint and the plain-HTTP health endpoint, on
 * libmicrohttpd.
 *
 * HTTPS: TLS 1.2+ through GnuTLS with the certificate from tlsreload.h,
 * HTTP/1.1 keep-alive, a pool of polling threads (epoll), a bound on open
 * connections and an idle timeout per connection, so a slow or stalled client
 * holds one connection slot and nothing else. Routes: POST <path> with
 * application/json; anything else gets 404, 405, 413 or 415.
 *
 * Health: GET /healthz, /readyz and /metrics on their own port and thread.
 *
 * One server per process: the TLS certificate callback has no user pointer,
 * so the running server is found through a file-static pointer.
 */
#ifndef LFW_SERVER_H
#define LFW_SERVER_H

#include "config.h"
#include "review.h"
#include "tlsreload.h"

#include <stdint.h>

typedef struct lfw_server lfw_server;

/* Starts both listeners. `cfg`, `env` and `tls` are borrowed and must outlive
 * the server. `client_ca_pem` (NUL-terminated PEM, or NULL) is copied; when
 * set, clients must present a certificate it signed. On failure returns -1
 * with a sentence in `err`. */
int lfw_server_start(const lfw_config *cfg, const lfw_review_env *env, lfw_tls *tls,
                     const char *client_ca_pem, lfw_server **out, char *err, size_t err_size);

/* Graceful stop: stops accepting connections, marks /readyz not ready, asks
 * clients to close after their current response, waits up to `timeout_us`
 * for requests in flight, then stops both listeners. */
void lfw_server_shutdown(lfw_server *srv, int64_t timeout_us);

/* Frees the server (shutting it down at once if needed); accepts NULL and
 * clears the caller's pointer. */
void lfw_server_free(lfw_server **srv);

#endif /* LFW_SERVER_H */
