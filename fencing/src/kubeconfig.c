/*
 * kubeconfig.c: where the API server is and how to authenticate to it:
 * in-cluster service-account files, a kubeconfig file (YAML, read with
 * libyaml's document loader), or explicit parts.
 *
 * A kubeconfig is read whole into memory first (bounded by
 * LF_KUBE_CONFIG_MAX) and then loaded as one YAML document. Only the nodes
 * on the path to the chosen context, cluster and user are visited, so YAML
 * aliases cannot make the walk grow: libyaml keeps an alias as a reference to
 * the anchored node, not a copy.
 */
#include "kube_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

void lf_kube_config_free(lf_kube_config **cfg) {
  lf_kube_config *c;
  if (cfg == NULL || *cfg == NULL) {
    return;
  }
  c = *cfg;
  free(c->server);
  free(c->ns);
  lf__kube_blob_clear(&c->ca_pem);
  free(c->ca_file);
  lf__kube_blob_clear(&c->cert_pem);
  free(c->cert_file);
  lf__kube_blob_clear(&c->key_pem);
  free(c->key_file);
  lf__kube_str_wipe(&c->token);
  free(c->token_file);
  free(c);
  *cfg = NULL;
}

static char *dup_or_null(const char *s) {
  return s == NULL ? NULL : strdup(s);
}

/* Removes trailing whitespace (token and namespace files end in newlines). */
static void trim_right(char *s, size_t *len) {
  size_t n = *len;
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
    n--;
  }
  s[n] = '\0';
  *len = n;
}

static int check_server(const char *server, const char *where, lf_error *err) {
  size_t scheme;
  size_t rest;
  if (server == NULL || server[0] == '\0') {
    return lf__kube_fail(err, LF_EINVAL, "%s: no server URL", where);
  }
  if (strncmp(server, "https://", 8) == 0) {
    scheme = 8;
  } else if (strncmp(server, "http://", 7) == 0) {
    scheme = 7;
  } else {
    return lf__kube_fail(err, LF_EINVAL, "%s: server \"%.200s\" is not an https:// or http:// URL",
                         where, server);
  }
  /* Something must be left once the trailing slashes are dropped: a host. */
  rest = strlen(server + scheme);
  while (rest > 0 && server[scheme + rest - 1] == '/') {
    rest--;
  }
  if (rest == 0 || server[scheme] == '/') {
    return lf__kube_fail(err, LF_EINVAL, "%s: server \"%.200s\" names no host", where, server);
  }
  for (const char *p = server; *p != '\0'; p++) {
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
      return lf__kube_fail(err, LF_EINVAL, "%s: server URL holds a space or control character",
                           where);
    }
  }
  return LF_OK;
}

/* A copy of `server` without trailing slashes, or NULL (out of memory). */
static char *server_dup(const char *server) {
  size_t n = strlen(server);
  while (n > 0 && server[n - 1] == '/') {
    n--;
  }
  return strndup(server, n);
}

static int check_readable(const char *path, const char *what, lf_error *err) {
  if (access(path, R_OK) != 0) {
    return lf__kube_fail(err, LF_EINVAL, "%s \"%s\" cannot be read: %s", what, path,
                         strerror(errno));
  }
  return LF_OK;
}

/* ------------------------------------------------------------------------ */
/* Explicit parts                                                           */

/* Copies a PEM of `len` bytes (0: strlen) into `blob`. */
static int pem_set(lf_kube_blob *blob, const char *pem, size_t len) {
  if (pem == NULL) {
    return LF_OK;
  }
  return lf__kube_blob_set(blob, pem, len > 0 ? len : strlen(pem));
}

int lf_kube_config_from_parts(const lf_kube_parts *parts, lf_kube_config **out, lf_error *err) {
  int rc = LF_OK;
  lf_kube_config *c = NULL;

  *out = NULL;
  rc = check_server(parts->server, "configuration", err);
  if (rc != LF_OK) {
    goto out;
  }
  if ((parts->ca_pem != NULL && parts->ca_file != NULL) ||
      (parts->cert_pem != NULL && parts->cert_file != NULL) ||
      (parts->key_pem != NULL && parts->key_file != NULL) ||
      (parts->token != NULL && parts->token_file != NULL)) {
    rc = lf__kube_fail(err, LF_EINVAL,
                       "configuration: give each of the CA, client certificate, client key and "
                       "token either in memory or as a file, not both");
    goto out;
  }
  if ((parts->cert_pem != NULL || parts->cert_file != NULL) !=
      (parts->key_pem != NULL || parts->key_file != NULL)) {
    rc = lf__kube_fail(
        err, LF_EINVAL,
        "configuration: a client certificate needs its key and a key its certificate");
    goto out;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  c->server = server_dup(parts->server);
  c->ns = strdup(parts->ns != NULL ? parts->ns : "");
  c->ca_file = dup_or_null(parts->ca_file);
  c->cert_file = dup_or_null(parts->cert_file);
  c->key_file = dup_or_null(parts->key_file);
  c->token = dup_or_null(parts->token);
  c->token_file = dup_or_null(parts->token_file);
  c->insecure_skip_verify = parts->insecure_skip_verify;
  if (c->server == NULL || c->ns == NULL || (parts->ca_file != NULL && c->ca_file == NULL) ||
      (parts->cert_file != NULL && c->cert_file == NULL) ||
      (parts->key_file != NULL && c->key_file == NULL) ||
      (parts->token != NULL && c->token == NULL) ||
      (parts->token_file != NULL && c->token_file == NULL) ||
      pem_set(&c->ca_pem, parts->ca_pem, parts->ca_pem_len) != LF_OK ||
      pem_set(&c->cert_pem, parts->cert_pem, parts->cert_pem_len) != LF_OK ||
      pem_set(&c->key_pem, parts->key_pem, parts->key_pem_len) != LF_OK) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  *out = c;
  c = NULL;

out:
  lf_kube_config_free(&c);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* In the cluster                                                           */

int lf_kube_config_in_cluster(const lf_kube_in_cluster_paths *paths, lf_kube_config **out,
                              lf_error *err) {
  int rc = LF_OK;
  lf_kube_config *c = NULL;
  const char *token_file = LF_KUBE_SA_DIR "/token";
  const char *ca_file = LF_KUBE_SA_DIR "/ca.crt";
  const char *ns_file = LF_KUBE_SA_DIR "/namespace";
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  char *ns = NULL;
  size_t ns_len = 0;
  char server[300];
  bool ipv6;

  *out = NULL;
  if (paths != NULL) {
    token_file = paths->token_file != NULL ? paths->token_file : token_file;
    ca_file = paths->ca_file != NULL ? paths->ca_file : ca_file;
    ns_file = paths->namespace_file != NULL ? paths->namespace_file : ns_file;
  }
  if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
    rc = lf__kube_fail(err, LF_EINVAL,
                       "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                       "must both be set");
    goto out;
  }
  if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) {
    rc = lf__kube_fail(err, LF_EINVAL, "KUBERNETES_SERVICE_PORT \"%.20s\" is not a port", port);
    goto out;
  }
  /* An IPv6 literal needs brackets in a URL; one already bracketed is kept. */
  ipv6 = strchr(host, ':') != NULL && host[0] != '[';
  if ((size_t)snprintf(server, sizeof(server), "https://%s%s%s:%s", ipv6 ? "[" : "", host,
                       ipv6 ? "]" : "", port) >= sizeof(server)) {
    rc = lf__kube_fail(err, LF_EINVAL, "KUBERNETES_SERVICE_HOST is too long");
    goto out;
  }
  rc = check_readable(token_file, "service-account token file", err);
  if (rc != LF_OK) {
    goto out;
  }
  rc = check_readable(ca_file, "service-account CA file", err);
  if (rc != LF_OK) {
    goto out;
  }
  /* The namespace file is a convenience; a missing one leaves "" and callers
   * that need a namespace say so. */
  if (access(ns_file, R_OK) == 0) {
    rc = lf__kube_read_file(ns_file, LF_NAMESPACE_MAX + 2, "namespace file", &ns, &ns_len, err);
    if (rc != LF_OK) {
      goto out;
    }
    trim_right(ns, &ns_len);
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  c->server = strdup(server);
  c->ns = strdup(ns != NULL ? ns : "");
  c->ca_file = strdup(ca_file);
  c->token_file = strdup(token_file);
  if (c->server == NULL || c->ns == NULL || c->ca_file == NULL || c->token_file == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  *out = c;
  c = NULL;

out:
  free(ns);
  lf_kube_config_free(&c);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* kubeconfig                                                               */

/* What the walk through one kubeconfig document needs. */
typedef struct kc {
  yaml_document_t doc;
  const char *path; /* The file, for error texts. */
  char *dir;        /* Its directory, for relative paths. */
  lf_error *err;
} kc;

static yaml_node_t *node_at(kc *k, yaml_node_item_t id) {
  return yaml_document_get_node(&k->doc, id);
}

/* The scalar text of `n`, or NULL when `n` is not a scalar. */
static const char *scalar(const yaml_node_t *n) {
  if (n == NULL || n->type != YAML_SCALAR_NODE) {
    return NULL;
  }
  return (const char *)n->data.scalar.value;
}

/* The value under `key` in the mapping `map`, or NULL. */
static yaml_node_t *map_get(kc *k, yaml_node_t *map, const char *key) {
  if (map == NULL || map->type != YAML_MAPPING_NODE) {
    return NULL;
  }
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    const char *name = scalar(node_at(k, p->key));
    if (name != NULL && strcmp(name, key) == 0) {
      return node_at(k, p->value);
    }
  }
  return NULL;
}

/* The string under `key`, or NULL when absent or empty. LF_EINVAL (through
 * *rc) when present but not a scalar. */
static const char *map_str(kc *k, yaml_node_t *map, const char *key, const char *where, int *rc) {
  yaml_node_t *n = map_get(k, map, key);
  const char *s;
  if (n == NULL) {
    return NULL;
  }
  s = scalar(n);
  if (s == NULL) {
    *rc = lf__kube_fail(k->err, LF_EINVAL, "kubeconfig %s: %s: \"%s\" is not a string", k->path,
                        where, key);
    return NULL;
  }
  return s[0] == '\0' ? NULL : s;
}

/*
 * In the sequence under `list` (contexts, clusters, users), the entry whose
 * "name" is `name`, and in it the mapping under `inner` (context, cluster,
 * user). Fails with a sentence that names what was looked for.
 */
static int find_named(kc *k, const char *list, const char *inner, const char *name,
                      yaml_node_t **out) {
  yaml_node_t *root = yaml_document_get_root_node(&k->doc);
  yaml_node_t *seq = map_get(k, root, list);
  *out = NULL;
  if (seq != NULL && seq->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
      yaml_node_t *entry = node_at(k, *it);
      const char *entry_name = scalar(map_get(k, entry, "name"));
      yaml_node_t *body;
      if (entry_name == NULL || strcmp(entry_name, name) != 0) {
        continue;
      }
      body = map_get(k, entry, inner);
      if (body == NULL || body->type != YAML_MAPPING_NODE) {
        return lf__kube_fail(k->err, LF_EINVAL, "kubeconfig %s: %s \"%s\" has no \"%s\" mapping",
                             k->path, inner, name, inner);
      }
      *out = body;
      return LF_OK;
    }
  }
  return lf__kube_fail(k->err, LF_EINVAL, "kubeconfig %s: no %s named \"%s\" in \"%s\"", k->path,
                       inner, name, list);
}

/* `path` as written in the file, resolved against the file's directory and
 * checked for readability. Returns a new string or NULL with *rc set. */
static char *resolve_file(kc *k, const char *path, const char *what, int *rc) {
  char *full = NULL;
  if (path[0] == '/') {
    full = strdup(path);
  } else if (asprintf(&full, "%s/%s", k->dir, path) < 0) {
    full = NULL;
  }
  if (full == NULL) {
    *rc = lf__kube_fail(k->err, LF_ENOMEM, "out of memory");
    return NULL;
  }
  if (access(full, R_OK) != 0) {
    *rc = lf__kube_fail(k->err, LF_EINVAL, "kubeconfig %s: %s \"%s\" cannot be read: %s", k->path,
                        what, full, strerror(errno));
    free(full);
    return NULL;
  }
  return full;
}

/* Decodes the base64 `text` of the field `what` into `blob`. */
static int decode_into(kc *k, const char *text, const char *what, lf_kube_blob *blob) {
  lf_error sub = {0};
  int rc = lf__kube_base64_decode(text, strlen(text), &blob->data, &blob->len, &sub);
  if (rc != LF_OK) {
    return lf__kube_fail(k->err, rc, "kubeconfig %s: %s: %s", k->path, what, sub.text);
  }
  return LF_OK;
}

static bool parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

/* Fills server, CA and TLS settings of `c` from the cluster entry. */
static int read_cluster(kc *k, yaml_node_t *cl, const char *name, lf_kube_config *c) {
  int rc = LF_OK;
  char where[300];
  const char *server;
  const char *ca_data;
  const char *ca_file;
  const char *insecure;

  snprintf(where, sizeof(where), "cluster \"%.250s\"", name);
  /* Settings we cannot honour change where or how we connect: refuse them
   * rather than connect somewhere else than the user meant. */
  if (map_str(k, cl, "proxy-url", where, &rc) != NULL) {
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s uses proxy-url, which is not supported", k->path,
                         where);
  }
  if (map_str(k, cl, "tls-server-name", where, &rc) != NULL) {
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s uses tls-server-name, which is not supported", k->path,
                         where);
  }
  server = map_str(k, cl, "server", where, &rc);
  ca_data = map_str(k, cl, "certificate-authority-data", where, &rc);
  ca_file = map_str(k, cl, "certificate-authority", where, &rc);
  insecure = map_str(k, cl, "insecure-skip-tls-verify", where, &rc);
  if (rc != LF_OK) {
    return rc;
  }
  if (server == NULL) {
    return lf__kube_fail(k->err, LF_EINVAL, "kubeconfig %s: %s has no server", k->path, where);
  }
  rc = check_server(server, where, k->err);
  if (rc != LF_OK) {
    return rc;
  }
  c->server = server_dup(server);
  if (c->server == NULL) {
    return lf__kube_fail(k->err, LF_ENOMEM, "out of memory");
  }
  if (insecure != NULL && !parse_bool(insecure, &c->insecure_skip_verify)) {
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s: insecure-skip-tls-verify \"%.20s\" is not a boolean",
                         k->path, where, insecure);
  }
  if (c->insecure_skip_verify && (ca_data != NULL || ca_file != NULL)) {
    /* client-go refuses this combination too: which one did the user mean? */
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s sets both a certificate authority and "
                         "insecure-skip-tls-verify",
                         k->path, where);
  }
  /* As in client-go, inline data wins over a file. */
  if (ca_data != NULL) {
    return decode_into(k, ca_data, "certificate-authority-data", &c->ca_pem);
  }
  if (ca_file != NULL) {
    c->ca_file = resolve_file(k, ca_file, "certificate-authority", &rc);
  }
  return rc;
}

/* Fills the credentials of `c` from the user entry. */
static int read_user(kc *k, yaml_node_t *u, const char *name, lf_kube_config *c) {
  int rc = LF_OK;
  char where[300];
  const char *cert_data;
  const char *cert_file;
  const char *key_data;
  const char *key_file;
  const char *token;
  const char *token_file;
  yaml_node_t *plugin;

  snprintf(where, sizeof(where), "user \"%.250s\"", name);
  plugin = map_get(k, u, "exec");
  if (plugin != NULL) {
    const char *cmd = scalar(map_get(k, plugin, "command"));
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s uses exec credentials (command \"%.100s\"), which are "
                         "not supported; use a token, tokenFile or client certificate",
                         k->path, where, cmd != NULL ? cmd : "");
  }
  plugin = map_get(k, u, "auth-provider");
  if (plugin != NULL) {
    const char *pname = scalar(map_get(k, plugin, "name"));
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s uses auth-provider \"%.100s\", which is not supported; "
                         "use a token, tokenFile or client certificate",
                         k->path, where, pname != NULL ? pname : "");
  }
  if (map_get(k, u, "username") != NULL || map_get(k, u, "password") != NULL) {
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s uses basic authentication (username/password), which "
                         "is not supported",
                         k->path, where);
  }
  cert_data = map_str(k, u, "client-certificate-data", where, &rc);
  cert_file = map_str(k, u, "client-certificate", where, &rc);
  key_data = map_str(k, u, "client-key-data", where, &rc);
  key_file = map_str(k, u, "client-key", where, &rc);
  token = map_str(k, u, "token", where, &rc);
  token_file = map_str(k, u, "tokenFile", where, &rc);
  if (rc != LF_OK) {
    return rc;
  }
  if ((cert_data != NULL || cert_file != NULL) != (key_data != NULL || key_file != NULL)) {
    return lf__kube_fail(k->err, LF_EINVAL,
                         "kubeconfig %s: %s has a client certificate without a key or a key "
                         "without a certificate",
                         k->path, where);
  }
  if (cert_data != NULL) {
    rc = decode_into(k, cert_data, "client-certificate-data", &c->cert_pem);
  } else if (cert_file != NULL) {
    c->cert_file = resolve_file(k, cert_file, "client-certificate", &rc);
  }
  if (rc != LF_OK) {
    return rc;
  }
  if (key_data != NULL) {
    rc = decode_into(k, key_data, "client-key-data", &c->key_pem);
  } else if (key_file != NULL) {
    c->key_file = resolve_file(k, key_file, "client-key", &rc);
  }
  if (rc != LF_OK) {
    return rc;
  }
  /* client-go: when both are set the file, re-read as it changes, wins. */
  if (token_file != NULL) {
    c->token_file = resolve_file(k, token_file, "tokenFile", &rc);
  } else if (token != NULL) {
    c->token = strdup(token);
    if (c->token == NULL) {
      rc = lf__kube_fail(k->err, LF_ENOMEM, "out of memory");
    }
  }
  return rc;
}

/* Loads the document from `buf` with a clear message for a syntax error. */
static int load_document(kc *k, const char *buf, size_t len) {
  yaml_parser_t parser;
  int rc = LF_OK;

  if (!yaml_parser_initialize(&parser)) {
    return lf__kube_fail(k->err, LF_ENOMEM, "out of memory");
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
  if (!yaml_parser_load(&parser, &k->doc)) {
    rc = lf__kube_fail(
        k->err, LF_EINVAL, "kubeconfig %s: malformed YAML at line %zu: %s%s%s", k->path,
        parser.problem_mark.line + 1, parser.problem != NULL ? parser.problem : "unknown error",
        parser.context != NULL ? " " : "", parser.context != NULL ? parser.context : "");
    memset(&k->doc, 0, sizeof(k->doc));
  }
  yaml_parser_delete(&parser);
  return rc;
}

int lf__kube_kubeconfig_parse(const char *buf, size_t len, const char *path, const char *context,
                              lf_kube_config **out, lf_error *err) {
  int rc = LF_OK;
  kc k;
  bool loaded = false;
  lf_kube_config *c = NULL;
  yaml_node_t *root;
  yaml_node_t *ctx;
  yaml_node_t *cl;
  yaml_node_t *user = NULL;
  const char *ctx_name;
  const char *cluster_name;
  const char *user_name;
  const char *ns;
  const char *slash;

  memset(&k, 0, sizeof(k));
  k.err = err;
  k.path = path;
  *out = NULL;
  if (len > LF_KUBE_CONFIG_MAX) {
    rc = lf__kube_fail(err, LF_ETOOBIG, "kubeconfig \"%s\" is larger than %d bytes", path,
                       LF_KUBE_CONFIG_MAX);
    goto out;
  }
  slash = strrchr(path, '/');
  if (slash == NULL) {
    k.dir = strdup(".");
  } else if (slash == path) {
    k.dir = strdup("/");
  } else {
    k.dir = strndup(path, (size_t)(slash - path));
  }
  if (k.dir == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  rc = load_document(&k, buf, len);
  if (rc != LF_OK) {
    goto out;
  }
  loaded = true;
  root = yaml_document_get_root_node(&k.doc);
  if (root == NULL || root->type != YAML_MAPPING_NODE) {
    rc = lf__kube_fail(err, LF_EINVAL, "kubeconfig %s is not a YAML mapping", path);
    goto out;
  }
  ctx_name = context;
  if (ctx_name == NULL) {
    ctx_name = scalar(map_get(&k, root, "current-context"));
    if (ctx_name == NULL || ctx_name[0] == '\0') {
      rc = lf__kube_fail(err, LF_EINVAL, "kubeconfig %s has no current-context; name a context",
                         path);
      goto out;
    }
  }
  rc = find_named(&k, "contexts", "context", ctx_name, &ctx);
  if (rc != LF_OK) {
    goto out;
  }
  cluster_name = scalar(map_get(&k, ctx, "cluster"));
  user_name = scalar(map_get(&k, ctx, "user"));
  ns = scalar(map_get(&k, ctx, "namespace"));
  if (cluster_name == NULL || cluster_name[0] == '\0') {
    rc = lf__kube_fail(err, LF_EINVAL, "kubeconfig %s: context \"%.200s\" names no cluster", path,
                       ctx_name);
    goto out;
  }
  rc = find_named(&k, "clusters", "cluster", cluster_name, &cl);
  if (rc != LF_OK) {
    goto out;
  }
  /* A context without a user is anonymous; one naming a user that is not
   * there is a mistake. */
  if (user_name != NULL && user_name[0] != '\0') {
    rc = find_named(&k, "users", "user", user_name, &user);
    if (rc != LF_OK) {
      goto out;
    }
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  c->ns = strdup(ns != NULL ? ns : "");
  if (c->ns == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  rc = read_cluster(&k, cl, cluster_name, c);
  if (rc != LF_OK) {
    goto out;
  }
  if (user != NULL) {
    rc = read_user(&k, user, user_name, c);
    if (rc != LF_OK) {
      goto out;
    }
  }
  *out = c;
  c = NULL;

out:
  if (loaded) {
    yaml_document_delete(&k.doc);
  }
  free(k.dir);
  lf_kube_config_free(&c);
  return rc;
}

int lf_kube_config_from_kubeconfig(const char *path, const char *context, lf_kube_config **out,
                                   lf_error *err) {
  int rc = LF_OK;
  char *buf = NULL;
  char *default_path = NULL;
  size_t len = 0;

  *out = NULL;
  if (path == NULL) {
    const char *env = getenv("KUBECONFIG");
    if (env != NULL && env[0] != '\0') {
      if (strchr(env, ':') != NULL) {
        rc = lf__kube_fail(err, LF_EINVAL,
                           "KUBECONFIG lists several files, and merging them is not supported; "
                           "name one file");
        goto out;
      }
      path = env;
    } else {
      const char *home = getenv("HOME");
      if (home == NULL || home[0] == '\0' || asprintf(&default_path, "%s/.kube/config", home) < 0) {
        default_path = NULL;
        rc = lf__kube_fail(err, LF_EINVAL, "no kubeconfig given, no KUBECONFIG and no HOME");
        goto out;
      }
      path = default_path;
    }
  }
  rc = lf__kube_read_file(path, LF_KUBE_CONFIG_MAX, "kubeconfig", &buf, &len, err);
  if (rc != LF_OK) {
    goto out;
  }
  rc = lf__kube_kubeconfig_parse(buf, len, path, context, out, err);

out:
  if (buf != NULL) {
    /* The file may hold a token or a private key. */
    explicit_bzero(buf, len);
    free(buf);
  }
  free(default_path);
  return rc;
}
