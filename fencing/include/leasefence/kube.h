/*
 * leasefence/kube.h: a small Kubernetes API client on libcurl.
 *
 * Just enough of a client for the webhook and the tools around it: read a
 * Lease with a quorum read, make any other request (LIST, metadata-only GETs
 * of parent objects, writes), and follow a WATCH stream event by event.
 *
 * What it supports:
 *  - Configuration in the cluster (the pod's service-account token, CA and
 *    namespace files, KUBERNETES_SERVICE_HOST/PORT), from a kubeconfig file
 *    (one file; contexts; CA, client certificate and key as files or inline
 *    base64 data; bearer token or tokenFile; insecure-skip-tls-verify), or
 *    from explicit parts.
 *  - Bearer tokens read from a file are re-read when the file changes
 *    (projected service-account tokens rotate about hourly): before a request
 *    the file's inode, size and mtime are looked at, at most once per
 *    recheck interval (1 s by default), and after every 401. The token is
 *    never written to an error text.
 *  - One client shared by many threads. Each request borrows a curl easy
 *    handle from a small pool, most recently used first; a handle keeps its
 *    connection between requests, so sequential requests reuse one
 *    connection and concurrent ones use one each. All handles share the DNS
 *    and TLS session caches. (Not the connection cache: libcurl does not
 *    support sharing it between concurrent threads, see CURLSHOPT_SHARE(3).)
 *    HTTP/1.1 or HTTP/2, as curl and the server negotiate.
 *  - A deadline on every request, and a separate connect timeout.
 *  - libcurl's usual proxy environment variables (https_proxy, no_proxy)
 *    apply, as Go's do for client-go.
 *  - Bounded memory: every response body has a cap (LF_LEASE_JSON_MAX for a
 *    Lease, LF_KUBE_BODY_MAX by default for anything else, settable per
 *    request), every watch event a cap (LF_KUBE_WATCH_EVENT_MAX), a
 *    kubeconfig file LF_KUBE_CONFIG_MAX (which also bounds its inline
 *    certificates and keys), a token file LF_KUBE_TOKEN_MAX. CA, certificate
 *    and key files are read by libcurl itself when it opens a connection
 *    (a CA file's trust store is kept for at most 60 s), so rotated files
 *    are picked up without a restart.
 *
 * What it does not support (each is refused with LF_EINVAL naming it where a
 * kubeconfig asks for it): exec and auth-provider credential plugins, basic
 * auth (username/password), proxy-url, tls-server-name, and merging several
 * kubeconfig files from a colon-separated KUBECONFIG. There are no retries:
 * the caller knows its deadline and decides. No client-side rate limiting.
 *
 * Conventions are those of leasefence/fencing.h: int 0 (LF_OK) or a negative
 * LF_E* code with a sentence in the optional `lf_error`; pointers NULL on
 * failure; strings borrowed for the call unless a comment says otherwise;
 * destructors accept NULL and clear the caller's pointer.
 *
 * Initialisation: lf_kube_client_new() calls curl_global_init() once per
 * process (guarded by pthread_once). A program that uses libcurl itself may
 * call curl_global_init() first; the library never calls
 * curl_global_cleanup().
 */
#ifndef LEASEFENCE_KUBE_H
#define LEASEFENCE_KUBE_H

#include <leasefence/fencing.h>

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Bounds                                                                    */

#define LF_KUBE_CONFIG_MAX (1024 * 1024)      /* A kubeconfig file. */
#define LF_KUBE_TOKEN_MAX (64 * 1024)         /* A bearer token file. */
#define LF_KUBE_BODY_MAX (16 * 1024 * 1024)   /* Default cap of lf_kube_request bodies. */
#define LF_KUBE_WATCH_EVENT_MAX (1024 * 1024) /* One watch event (one line). */
#define LF_KUBE_STATUS_MESSAGE_MAX 300        /* Server message quoted in an error. */

/* Where the service-account files are inside a pod. */
#define LF_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

/* Bytes held in memory, e.g. PEM decoded from certificate-authority-data. */
typedef struct lf_kube_blob {
  unsigned char *data; /* NULL when absent. */
  size_t len;
} lf_kube_blob;

/*
 * Where the API server is and how to authenticate to it. Produced by the
 * constructors below; every pointer in it is then owned by the config and
 * freed by lf_kube_config_free(). Callers may read the fields. For each of
 * the CA, the client certificate and the client key, at most one of the
 * in-memory PEM and the file is set.
 */
typedef struct lf_kube_config {
  char *server;              /* "https://host:port" (or http:// for tests), no trailing '/'. */
  char *ns;                  /* Default namespace ("" when none was given). */
  lf_kube_blob ca_pem;       /* Trusted CA certificates, PEM. */
  char *ca_file;             /* Or a PEM file that curl reads per connection. */
  bool insecure_skip_verify; /* Do not verify the server certificate at all. */
  lf_kube_blob cert_pem;     /* Client certificate, PEM. */
  char *cert_file;
  lf_kube_blob key_pem; /* Client private key, PEM. */
  char *key_file;
  char *token;      /* A fixed bearer token. */
  char *token_file; /* Or a file holding it, re-read when it changes. */
} lf_kube_config;

/* Frees `*cfg` and everything it owns, and sets `*cfg` to NULL. Accepts
 * NULL and a pointer to NULL. Wipes the token and key bytes first. */
LF_EXPORT void lf_kube_config_free(lf_kube_config **cfg);

/* Overrides for the in-cluster files; NULL members mean the defaults in
 * LF_KUBE_SA_DIR ("token", "ca.crt", "namespace"). */
typedef struct lf_kube_in_cluster_paths {
  const char *token_file;
  const char *ca_file;
  const char *namespace_file;
} lf_kube_in_cluster_paths;

/*
 * Configuration for a pod: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (an IPv6 host goes in brackets), the CA file, the token file (kept as a
 * file, so rotation is followed) and the namespace file (optional: "" when
 * missing). `paths` may be NULL. LF_EINVAL when the environment variables
 * are missing or the token or CA file cannot be read. On success the caller
 * owns `*out` (lf_kube_config_free); on failure `*out` is NULL.
 */
LF_EXPORT int lf_kube_config_in_cluster(const lf_kube_in_cluster_paths *paths, lf_kube_config **out,
                                        lf_error *err);

/*
 * Configuration from the kubeconfig file at `path` (at most
 * LF_KUBE_CONFIG_MAX bytes). `context` names the context to use; NULL means
 * the file's current-context. When `path` is NULL, $KUBECONFIG (a single
 * path) or else ~/.kube/config is read. Relative file paths in the file are
 * resolved against the file's directory, and every file named must be
 * readable now. LF_EINVAL names what is missing, malformed or unsupported
 * (e.g. "user \"u\" uses exec credentials, which are not supported");
 * LF_ETOOBIG for an oversized file. On success the caller owns `*out`; on
 * failure `*out` is NULL.
 */
LF_EXPORT int lf_kube_config_from_kubeconfig(const char *path, const char *context,
                                             lf_kube_config **out, lf_error *err);

/* The pieces of a configuration, all borrowed, for
 * lf_kube_config_from_parts(). A PEM length of 0 means strlen(). */
typedef struct lf_kube_parts {
  const char *server; /* Required: "https://..." or "http://...". */
  const char *ns;     /* NULL: "". */
  const char *ca_pem;
  size_t ca_pem_len;
  const char *ca_file;
  bool insecure_skip_verify;
  const char *cert_pem;
  size_t cert_pem_len;
  const char *cert_file;
  const char *key_pem;
  size_t key_pem_len;
  const char *key_file;
  const char *token;
  const char *token_file;
} lf_kube_parts;

/*
 * A configuration built from `parts`, for tests and tools that have the
 * pieces at hand; everything is copied. A trailing '/' of the server is
 * dropped. LF_EINVAL when the server is missing or not http(s), when one
 * item has two sources (PEM and file, token and token file), or when a
 * client certificate comes without its key or the other way round. Files
 * are not opened here. The caller owns `*out`; on failure it is NULL.
 */
LF_EXPORT int lf_kube_config_from_parts(const lf_kube_parts *parts, lf_kube_config **out,
                                        lf_error *err);

/* ------------------------------------------------------------------------ */
/* The client                                                                */

typedef struct lf_kube_client lf_kube_client;

/* Tuning; zero members mean the default given. */
typedef struct lf_kube_options {
  int64_t connect_timeout_ms; /* TCP and TLS handshake bound; default 3000. */
  int64_t token_recheck_ms;   /* Least time between token file checks; default 1000,
                                 a negative value checks before every request. */
  unsigned max_idle_handles;  /* Easy handles kept for reuse; default 8. */
  const char *user_agent;     /* Default "leasefence/<version>". Borrowed for the call. */
} lf_kube_options;

/*
 * Creates a client from `*cfg`. On success the client takes `*cfg` over and
 * sets `*cfg` to NULL; on failure `*cfg` stays the caller's. `opts` may be
 * NULL (defaults) and is borrowed for the call. A token file is read here
 * once, so a missing or empty token fails now (LF_EINVAL) and not on the
 * first request. The caller owns the client (lf_kube_client_free).
 *
 * All functions taking a client may be called from several threads at once.
 */
LF_EXPORT int lf_kube_client_new(lf_kube_config **cfg, const lf_kube_options *opts,
                                 lf_kube_client **out, lf_error *err);

/* Frees the client and its pooled connections; no request may be running.
 * Sets `*client` to NULL. Accepts NULL and a pointer to NULL. */
LF_EXPORT void lf_kube_client_free(lf_kube_client **client);

/* The client's configuration, owned by the client; read only. */
LF_EXPORT const lf_kube_config *lf_kube_client_config(const lf_kube_client *client);

/*
 * Reads the Lease named by `ref` with a quorum read (no resourceVersion, so
 * the API server reads etcd), within `timeout_ms`, into `*out`.
 * Returns:
 *   LF_OK         `*out` holds the Lease.
 *   LF_ENOTFOUND  HTTP 404.
 *   LF_EDENIED    HTTP 401 or 403; for a 403 the text quotes the API server,
 *                 which names the missing permission.
 *   LF_ETIMEDOUT  the deadline passed.
 *   LF_EIO        DNS, connect or TLS failure, HTTP 5xx or another status,
 *                 with the cause in the text ("TLS: ...", "HTTP 503 from ...").
 *   LF_EINVAL     the body is not a Lease, or not the Lease named by `ref`;
 *                 LF_ETOOBIG over LF_LEASE_JSON_MAX.
 * `*out` is written only on success.
 */
LF_EXPORT int lf_kube_get_lease(lf_kube_client *client, const lf_lease_ref *ref, int64_t timeout_ms,
                                lf_lease *out, lf_error *err);

/* One request for lf_kube_request(). Everything is borrowed for the call. */
typedef struct lf_kube_req {
  const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE". */
  const char *path;         /* "/api/v1/..." with the query; parts already escaped. */
  const char *accept;       /* NULL: "application/json". */
  const char *content_type; /* NULL: "application/json" (when there is a body). */
  const char *body;         /* NULL: no body. */
  size_t body_len;
  int64_t timeout_ms; /* Deadline of the whole request; must be > 0. */
  size_t max_bytes;   /* Cap on the response body; 0: LF_KUBE_BODY_MAX. */
} lf_kube_req;

/* Accept header for a metadata-only read (e.g. of a /scale parent). */
#define LF_KUBE_ACCEPT_PARTIAL_METADATA                                                            \
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

/*
 * Makes one request. Returns LF_OK whenever the server answered, whatever
 * the HTTP status: `*status` holds it and `*body` a NUL-terminated copy of
 * the response body (`*body_len` bytes without the NUL; `body_len` may be
 * NULL), which the caller frees with free(). lf_kube_status_error() turns a
 * status that is not 2xx into an error. Fails with LF_ETIMEDOUT, LF_EIO
 * (transport, with the cause), LF_ETOOBIG (body over the cap), LF_EINVAL
 * (bad request fields) or LF_ENOMEM; then `*body` is NULL and `*status` 0.
 */
LF_EXPORT int lf_kube_request(lf_kube_client *client, const lf_kube_req *req, long *status,
                              char **body, size_t *body_len, lf_error *err);

/*
 * Maps an HTTP status that is not 2xx to an LF_E* code and a sentence that
 * starts with `what` (e.g. "Lease ns/name", "patching ConfigMap ns/cm"),
 * quoting the message of the API server's
 * Status object in `body` (may be NULL) when there is one: 404 LF_ENOTFOUND,
 * 401 and 403 LF_EDENIED, anything else LF_EIO. Returns LF_OK for 2xx.
 * `client` supplies the server name for the text.
 */
LF_EXPORT int lf_kube_status_error(const lf_kube_client *client, long status, const char *body,
                                   size_t body_len, const char *what, lf_error *err);

/*
 * GETs `path` and parses the answer as a JSON object: the common case of a
 * metadata-only read of a parent object (accept =
 * LF_KUBE_ACCEPT_PARTIAL_METADATA) or a LIST. `accept` may be NULL
 * (application/json); `max_bytes` 0 means LF_KUBE_BODY_MAX. `what` names
 * the object in errors. Errors as lf_kube_request() and
 * lf_kube_status_error(), and LF_EINVAL when the body is not a JSON object.
 * On success the caller owns `*out` (json_decref); on failure it is NULL.
 */
LF_EXPORT int lf_kube_get_json(lf_kube_client *client, const char *path, const char *accept,
                               int64_t timeout_ms, size_t max_bytes, const char *what, json_t **out,
                               lf_error *err);

/*
 * Percent-encodes `segment` (a namespace, name or resource) for a request
 * path: RFC 3986 unreserved characters pass, every other byte becomes %XX.
 * Writes a NUL-terminated result into `out` of `size` bytes (3 * strlen + 1
 * always suffices). LF_ETOOBIG when it does not fit.
 */
LF_EXPORT int lf_kube_escape(const char *segment, char *out, size_t size);

/*
 * Called once per watch event with its "type" (ADDED, MODIFIED, DELETED,
 * BOOKMARK or ERROR; for ERROR the object is a Status) and its "object",
 * both borrowed for the call (json_incref to keep the object). Return 0 to
 * go on, anything else to stop the watch.
 */
typedef int (*lf_kube_watch_cb)(const char *type, json_t *object, void *arg);

/*
 * Follows a WATCH: GET `path_with_query` (which should hold "watch=1" and,
 * usually, resourceVersion, allowWatchBookmarks and timeoutSeconds) and
 * calls `cb` for each newline-delimited JSON event, in order, from the
 * calling thread. `timeout_ms` is a hard deadline for the whole stream; ask
 * the server to end it earlier with timeoutSeconds.
 * Returns LF_OK when the server ended the stream or `cb` stopped it;
 * LF_ETIMEDOUT when the deadline cut it; LF_ETOOBIG when one event exceeded
 * LF_KUBE_WATCH_EVENT_MAX (the stream is then abandoned: events were lost,
 * so re-list); LF_EINVAL for an event that is not {"type":..,"object":{..}};
 * the codes of lf_kube_status_error() when the server refused the watch;
 * LF_EIO for transport failures.
 */
LF_EXPORT int lf_kube_watch(lf_kube_client *client, const char *path_with_query, int64_t timeout_ms,
                            lf_kube_watch_cb cb, void *arg, lf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LEASEFENCE_KUBE_H */
