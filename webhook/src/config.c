/*
 * config.c: flags, their defaults and their help text, from one table.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

const char *lfw_mode_name(lfw_mode mode) {
  switch (mode) {
  case LFW_MODE_WARN:
    return "warn";
  case LFW_MODE_DRY_RUN:
    return "dry-run";
  default:
    return "deny";
  }
}

typedef enum flag_id {
  F_HELP,
  F_VERSION,
  F_BIND,
  F_PORT,
  F_PATH,
  F_CERT,
  F_KEY,
  F_CLIENT_CA,
  F_TLS_MIN,
  F_MAX_BYTES,
  F_MAX_CONN,
  F_IDLE,
  F_BODY_MEMORY,
  F_HANDSHAKE_TIMEOUT,
  F_HEADER_TIMEOUT,
  F_BODY_TIMEOUT,
  F_THREADS,
  F_SHUTDOWN,
  F_HEALTH_BIND,
  F_HEALTH_PORT,
  F_LOG_LEVEL,
  F_V,
  F_MODE,
  F_LEASE_SOURCE,
  F_LEASE_TIMEOUT,
  F_CERT_POLL,
  F_IDENTITY,
  F_DEFAULT_FENCING,
  F_SKEW,
  F_UNAVAILABLE,
  F_UNSTAMPED,
  F_EXEMPT_USER,
  F_EXEMPT_GROUP,
  F_NO_DEFAULT_EXEMPT,
  F_KUBECONFIG,
  F_CACHE_STALENESS,
  F_CACHE_NAMESPACE,
  F_CACHE_SELECTOR,
  F_EVENTS,
  F_EVENT_QPS,
  F_EVENT_BURST,
  F_EVENT_TIMEOUT,
} flag_id;

typedef struct flag {
  flag_id id;
  const char *name;  /* Without the leading dashes. */
  const char *value; /* Placeholder in --help, NULL for flags without a value. */
  const char *def;   /* Default shown in --help, NULL for none. */
  const char *help;
} flag;

static const flag flags[] = {
    {F_BIND, "bind-address", "ADDR", "0.0.0.0", "address to serve HTTPS on (IPv4 or IPv6)"},
    {F_PORT, "port", "PORT", "8443", "HTTPS port"},
    {F_PATH, "path", "PATH", "/validate", "path that receives AdmissionReviews"},
    {F_CERT, "tls-cert-file", "FILE", NULL,
     "serving certificate (PEM, leaf first); reloaded when it changes on disk (required)"},
    {F_KEY, "tls-private-key-file", "FILE", NULL,
     "private key of the serving certificate (PEM) (required)"},
    {F_CLIENT_CA, "client-ca-file", "FILE", NULL,
     "CA bundle (PEM); when set, every client must present a certificate it signed"},
    {F_TLS_MIN, "tls-min-version", "1.2|1.3", "1.2", "lowest TLS version accepted"},
    {F_MAX_BYTES, "max-request-bytes", "BYTES", "7Mi", "largest request body accepted (413 above)"},
    {F_MAX_CONN, "max-connections", "N", "1024", "most connections open at once"},
    {F_IDLE, "idle-timeout", "DURATION", "120s",
     "close a connection idle this long (keep above the API server's 90s)"},
    {F_BODY_MEMORY, "max-body-memory", "BYTES", "24Mi",
     "memory for all request bodies at once; a body that finds none gets 503 with Retry-After"},
    {F_HANDSHAKE_TIMEOUT, "tls-handshake-timeout", "DURATION", "5s",
     "close a connection whose TLS handshake takes longer"},
    {F_HEADER_TIMEOUT, "request-header-timeout", "DURATION", "5s",
     "close a connection whose request headers take longer (from the handshake, or from the "
     "request line on a kept-alive connection)"},
    {F_BODY_TIMEOUT, "request-body-timeout", "DURATION", "10s",
     "close a connection whose request body takes longer (from the end of the headers)"},
    {F_THREADS, "threads", "N", "0",
     "server threads; 0 means one per connection with a kube Lease source (a decision waits "
     "for the API server) and one per online CPU with file:"},
    {F_SHUTDOWN, "shutdown-timeout", "DURATION", "10s",
     "on SIGTERM/SIGINT, wait this long for requests in flight"},
    {F_HEALTH_BIND, "health-bind-address", "ADDR", "0.0.0.0",
     "address of the plain-HTTP /healthz, /readyz and /metrics"},
    {F_HEALTH_PORT, "health-port", "PORT", "8081", "port of /healthz, /readyz and /metrics"},
    {F_LOG_LEVEL, "log-level", "LEVEL", "1",
     "0|error, 1|info (denials), 2|debug (also every allowed review)"},
    {F_V, "v", "LEVEL", NULL, "same as --log-level"},
    {F_MODE, "mode", "deny|warn|dry-run", "deny",
     "deny: answer as decided; warn: admit with a warning; dry-run: admit, only log and count"},
    {F_LEASE_SOURCE, "lease-source", "SOURCE", "kube",
     "where Leases are read: kube = a quorum GET per decision, shared by concurrent "
     "decisions; kube-cached = a watch cache in front of it; file:DIR = "
     "DIR/<namespace>/<name>.json (tests and demos)"},
    {F_KUBECONFIG, "kubeconfig", "FILE", NULL,
     "kubeconfig for the kube sources (default: the in-cluster service account)"},
    {F_LEASE_TIMEOUT, "lease-timeout", "DURATION", "1s",
     "deadline of one Lease lookup (keep well under the webhook's timeoutSeconds)"},
    {F_CACHE_STALENESS, "cache-max-staleness", "DURATION", "3s",
     "kube-cached: serve a Lease from the cache only if it arrived and was renewed this recently"},
    {F_CACHE_NAMESPACE, "cache-namespace", "NS", NULL,
     "kube-cached: watch Leases in this namespace only (default all)"},
    {F_CACHE_SELECTOR, "cache-label-selector", "SELECTOR", NULL,
     "kube-cached: watch only Leases matching this label selector"},
    {F_CERT_POLL, "cert-poll-interval", "DURATION", "1s",
     "how often the certificate files are checked for a change"},
    {F_IDENTITY, "identity-binding", "off|when-present|required", "when-present",
     "check the requester's pod against the Lease holder"},
    {F_DEFAULT_FENCING, "default-fencing", "stamp|identity", "stamp",
     "how objects whose leasefence.io/lease names no mode are fenced: stamp = the guarded "
     "controller's writes carry a per-request stamp; identity = its writes without one are "
     "admitted from the Lease holder's pod (protocol section 7a); an annotation "
     "\"stamp:<lease>\" or \"identity:<lease>\" overrides it"},
    {F_SKEW, "clock-skew-tolerance", "DURATION", "2s",
     "clock skew tolerated between Lease holders and the webhook"},
    {F_UNAVAILABLE, "on-lease-unavailable", "deny|admit", "deny",
     "answer when the guarding Lease cannot be read (admit adds a warning)"},
    {F_UNSTAMPED, "unstamped-writes", "judge|deny", "judge",
     "writes to protected objects without a per-request stamp from people and tools outside "
     "the Lease's namespace: judge them as others' writes, or deny them (strict mode)"},
    {F_EXEMPT_USER, "exempt-user", "NAME", NULL,
     "user admitted without a stamp; repeatable; adds to the built-in users"},
    {F_EXEMPT_GROUP, "exempt-group", "NAME", NULL, "group admitted without a stamp; repeatable"},
    {F_NO_DEFAULT_EXEMPT, "no-default-exempt", NULL, NULL,
     "do not exempt Kubernetes' own control plane (kube-controller-manager's controllers, "
     "kube-scheduler)"},
    {F_EVENTS, "events", "true|false", "true",
     "post a Warning Event on each object whose write was denied (not for dry runs), "
     "through --kubeconfig or the in-cluster service account (with a file: Lease source, "
     "only when --kubeconfig is given); repeats are aggregated"},
    {F_EVENT_QPS, "event-qps", "N", "5", "Event requests a second at most, on average"},
    {F_EVENT_BURST, "event-burst", "N", "25", "Event requests at once at most"},
    {F_EVENT_TIMEOUT, "event-timeout", "DURATION", "3s",
     "deadline of one Event request (Events are sent by one thread of their own, never "
     "from the request path)"},
    {F_HELP, "help", NULL, NULL, "print this help and exit"},
    {F_VERSION, "version", NULL, NULL, "print the version and exit"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static void print_help(FILE *out, const char *prog) {
  size_t i;

  fprintf(out,
          "Usage: %s --tls-cert-file FILE --tls-private-key-file FILE [flags]\n\n"
          "leasefence validating admission webhook: denies writes to protected objects from\n"
          "stale leader-election ex-leaders (docs/protocol.md).\n\nFlags:\n",
          prog);
  for (i = 0; i < N_FLAGS; i++) {
    char left[64];

    if (flags[i].value != NULL)
      snprintf(left, sizeof left, "%s%s %s", strlen(flags[i].name) == 1 ? "-" : "--", flags[i].name,
               flags[i].value);
    else
      snprintf(left, sizeof left, "--%s", flags[i].name);
    fprintf(out, "  %-44s %s", left, flags[i].help);
    if (flags[i].def != NULL)
      fprintf(out, " (default %s)", flags[i].def);
    fputc('\n', out);
  }
  fprintf(out, "\nExempt requesters are Kubernetes' own control plane (every controller\n"
               "service account of kube-controller-manager, system:kube-controller-manager,\n"
               "system:kube-scheduler), unless --no-default-exempt, plus every --exempt-user\n"
               "and --exempt-group. docs/protocol.md, section 5.1, says who else is fenced.\n");
}

static int fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
  return LFW_CONFIG_ERROR;
}

int lfw_parse_duration(const char *text, int64_t *out_us) {
  const char *p = text;
  int64_t total = 0;

  if (*p == '\0')
    return -1;
  if (strcmp(p, "0") == 0) {
    *out_us = 0;
    return 0;
  }
  while (*p != '\0') {
    char *end = NULL;
    double v;
    double unit;

    if (*p < '0' || *p > '9')
      return -1;
    /* strtod also reads hex ("0x1p3") and exponents ("1e3"); Go durations
     * have neither, so only digits and one '.' may come before the unit. */
    for (end = (char *)(uintptr_t)p; (*end >= '0' && *end <= '9') || *end == '.'; end++) {
    }
    if (*end == 'x' || *end == 'X' || *end == 'e' || *end == 'E' || *end == 'p' || *end == 'P')
      return -1;
    errno = 0;
    v = strtod(p, &end);
    if (errno != 0 || end == p)
      return -1;
    p = end;
    if (strncmp(p, "ns", 2) == 0) {
      unit = 1e-3;
      p += 2;
    } else if (strncmp(p, "us", 2) == 0) {
      unit = 1;
      p += 2;
    } else if (strncmp(p, "ms", 2) == 0) {
      unit = 1e3;
      p += 2;
    } else if (*p == 's') {
      unit = 1e6;
      p += 1;
    } else if (*p == 'm') {
      unit = 60e6;
      p += 1;
    } else if (*p == 'h') {
      unit = 3600e6;
      p += 1;
    } else {
      return -1; /* A unit is required, as in Go. */
    }
    /* Each part and the sum stay below 1e15 µs (31 years), far from
     * int64_t overflow however many parts there are. */
    if (v * unit > 1e15 || (double)total + v * unit > 1e15)
      return -1;
    total += (int64_t)(v * unit);
  }
  *out_us = total;
  return 0;
}

static int parse_uint(const char *text, unsigned long long max, unsigned long long *out) {
  char *end = NULL;
  unsigned long long v;

  if (text[0] < '0' || text[0] > '9')
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_size(const char *text, size_t *out) {
  char *end = NULL;
  unsigned long long v;
  unsigned long long mult = 1;

  if (text[0] < '0' || text[0] > '9')
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno != 0)
    return -1;
  if (strcmp(end, "Ki") == 0)
    mult = 1ULL << 10;
  else if (strcmp(end, "Mi") == 0)
    mult = 1ULL << 20;
  else if (strcmp(end, "Gi") == 0)
    mult = 1ULL << 30;
  else if (*end != '\0')
    return -1;
  if (v > (1ULL << 40) / mult)
    return -1;
  *out = (size_t)(v * mult);
  return 0;
}

static int set_flag(lfw_config *cfg, const flag *f, const char *val, char *err, size_t err_size) {
  unsigned long long n;
  int64_t us;

  switch (f->id) {
  case F_BIND:
    cfg->bind_address = val;
    break;
  case F_HEALTH_BIND:
    cfg->health_bind_address = val;
    break;
  case F_PORT:
  case F_HEALTH_PORT:
    if (parse_uint(val, 65535, &n) != 0 || n == 0)
      return fail(err, err_size, "--%s: \"%s\" is not a port (1-65535)", f->name, val);
    if (f->id == F_PORT)
      cfg->port = (unsigned)n;
    else
      cfg->health_port = (unsigned)n;
    break;
  case F_PATH:
    if (val[0] != '/')
      return fail(err, err_size, "--path: \"%s\" must start with /", val);
    cfg->path = val;
    break;
  case F_CERT:
    cfg->cert_file = val;
    break;
  case F_KEY:
    cfg->key_file = val;
    break;
  case F_CLIENT_CA:
    cfg->client_ca_file = val;
    break;
  case F_TLS_MIN:
    if (strcmp(val, "1.2") == 0 || strcmp(val, "VersionTLS12") == 0)
      cfg->tls_min = 12;
    else if (strcmp(val, "1.3") == 0 || strcmp(val, "VersionTLS13") == 0)
      cfg->tls_min = 13;
    else
      return fail(err, err_size, "--tls-min-version: \"%s\" is not 1.2 or 1.3", val);
    break;
  case F_MAX_BYTES:
    if (parse_size(val, &cfg->max_request_bytes) != 0 || cfg->max_request_bytes == 0)
      return fail(err, err_size,
                  "--max-request-bytes: \"%s\" is not a size (bytes, or with Ki/Mi/Gi)", val);
    break;
  case F_MAX_CONN:
    if (parse_uint(val, 1000000, &n) != 0 || n == 0)
      return fail(err, err_size, "--max-connections: \"%s\" is not a count (1-1000000)", val);
    cfg->max_connections = (unsigned)n;
    break;
  case F_THREADS:
    if (parse_uint(val, 1024, &n) != 0)
      return fail(err, err_size, "--threads: \"%s\" is not a count (0-1024)", val);
    cfg->threads = (unsigned)n;
    break;
  case F_IDLE:
    if (lfw_parse_duration(val, &us) != 0 || us < 1000000)
      return fail(err, err_size, "--idle-timeout: \"%s\" is not a duration of at least 1s", val);
    cfg->idle_timeout_s = (unsigned)(us / 1000000);
    break;
  case F_BODY_MEMORY:
    if (parse_size(val, &cfg->max_body_memory) != 0 || cfg->max_body_memory == 0)
      return fail(err, err_size,
                  "--max-body-memory: \"%s\" is not a size (bytes, or with Ki/Mi/Gi)", val);
    break;
  case F_HANDSHAKE_TIMEOUT:
  case F_HEADER_TIMEOUT:
  case F_BODY_TIMEOUT:
    if (lfw_parse_duration(val, &us) != 0 || us < 100000)
      return fail(err, err_size, "--%s: \"%s\" is not a duration of at least 100ms", f->name, val);
    if (f->id == F_HANDSHAKE_TIMEOUT)
      cfg->handshake_timeout_us = us;
    else if (f->id == F_HEADER_TIMEOUT)
      cfg->header_timeout_us = us;
    else
      cfg->body_timeout_us = us;
    break;
  case F_KUBECONFIG:
    cfg->kubeconfig = val;
    break;
  case F_CACHE_NAMESPACE:
    cfg->cache_namespace = val;
    break;
  case F_CACHE_SELECTOR:
    cfg->cache_label_selector = val;
    break;
  case F_CACHE_STALENESS:
    if (lfw_parse_duration(val, &us) != 0 || us <= 0)
      return fail(err, err_size, "--cache-max-staleness: \"%s\" is not a duration above 0", val);
    cfg->cache_max_staleness_us = us;
    break;
  case F_SHUTDOWN:
  case F_LEASE_TIMEOUT:
  case F_CERT_POLL:
  case F_SKEW:
    if (lfw_parse_duration(val, &us) != 0)
      return fail(err, err_size, "--%s: \"%s\" is not a duration (like 2s, 500ms, 1m30s)", f->name,
                  val);
    if (f->id == F_SHUTDOWN) {
      cfg->shutdown_timeout_us = us;
    } else if (f->id == F_LEASE_TIMEOUT) {
      if (us <= 0)
        return fail(err, err_size, "--lease-timeout: must be more than 0");
      cfg->lease_timeout_us = us;
    } else if (f->id == F_CERT_POLL) {
      if (us < 10000)
        return fail(err, err_size, "--cert-poll-interval: must be at least 10ms");
      cfg->cert_poll_us = us;
    } else {
      cfg->policy.skew_us = us;
    }
    break;
  case F_LOG_LEVEL:
  case F_V:
    if (strcmp(val, "error") == 0)
      cfg->log_level = 0;
    else if (strcmp(val, "info") == 0)
      cfg->log_level = 1;
    else if (strcmp(val, "debug") == 0)
      cfg->log_level = 2;
    else if (parse_uint(val, 10, &n) == 0)
      cfg->log_level = (int)n;
    else
      return fail(err, err_size, "--%s: \"%s\" is not a level (0-10, error, info, debug)", f->name,
                  val);
    break;
  case F_MODE:
    if (strcmp(val, "deny") == 0)
      cfg->mode = LFW_MODE_DENY;
    else if (strcmp(val, "warn") == 0)
      cfg->mode = LFW_MODE_WARN;
    else if (strcmp(val, "dry-run") == 0)
      cfg->mode = LFW_MODE_DRY_RUN;
    else
      return fail(err, err_size, "--mode: \"%s\" is not deny, warn or dry-run", val);
    break;
  case F_LEASE_SOURCE:
    cfg->lease_source = val;
    break;
  case F_IDENTITY:
    if (strcmp(val, "off") == 0)
      cfg->policy.identity = LF_IDENTITY_OFF;
    else if (strcmp(val, "when-present") == 0)
      cfg->policy.identity = LF_IDENTITY_WHEN_PRESENT;
    else if (strcmp(val, "required") == 0)
      cfg->policy.identity = LF_IDENTITY_REQUIRED;
    else
      return fail(err, err_size, "--identity-binding: \"%s\" is not off, when-present or required",
                  val);
    break;
  case F_DEFAULT_FENCING:
    if (strcmp(val, "stamp") == 0)
      cfg->policy.default_fencing = LF_FENCING_STAMP;
    else if (strcmp(val, "identity") == 0)
      cfg->policy.default_fencing = LF_FENCING_IDENTITY;
    else
      return fail(err, err_size, "--default-fencing: \"%s\" is not stamp or identity", val);
    break;
  case F_UNAVAILABLE:
    if (strcmp(val, "deny") == 0)
      cfg->policy.admit_when_unavailable = false;
    else if (strcmp(val, "admit") == 0)
      cfg->policy.admit_when_unavailable = true;
    else
      return fail(err, err_size, "--on-lease-unavailable: \"%s\" is not deny or admit", val);
    break;
  case F_UNSTAMPED:
    if (strcmp(val, "judge") == 0)
      cfg->policy.deny_unstamped = false;
    else if (strcmp(val, "deny") == 0)
      cfg->policy.deny_unstamped = true;
    else
      return fail(err, err_size, "--unstamped-writes: \"%s\" is not judge or deny", val);
    break;
  case F_EXEMPT_USER:
  case F_EXEMPT_GROUP: {
    const char **arr = f->id == F_EXEMPT_USER ? cfg->exempt_users : cfg->exempt_groups;
    size_t *n_arr = f->id == F_EXEMPT_USER ? &cfg->n_exempt_users : &cfg->n_exempt_groups;

    if (val[0] == '\0')
      return fail(err, err_size, "--%s: the name is empty", f->name);
    if (*n_arr >= LFW_EXEMPT_MAX)
      return fail(err, err_size, "--%s: more than %d given", f->name, LFW_EXEMPT_MAX);
    arr[(*n_arr)++] = val;
    break;
  }
  case F_EVENTS:
    if (strcmp(val, "true") == 0)
      cfg->events = true;
    else if (strcmp(val, "false") == 0)
      cfg->events = false;
    else
      return fail(err, err_size, "--events: \"%s\" is not true or false", val);
    break;
  case F_EVENT_TIMEOUT:
    if (lfw_parse_duration(val, &us) != 0 || us < 1000)
      return fail(err, err_size, "--event-timeout: \"%s\" is not a duration of at least 1ms", val);
    cfg->event_timeout_us = us;
    break;
  case F_EVENT_QPS:
  case F_EVENT_BURST:
    if (parse_uint(val, 10000, &n) != 0 || n == 0)
      return fail(err, err_size, "--%s: \"%s\" is not a count (1-10000)", f->name, val);
    if (f->id == F_EVENT_QPS)
      cfg->event_qps = (int64_t)n;
    else
      cfg->event_burst = (int64_t)n;
    break;
  case F_HELP:
  case F_VERSION:
  case F_NO_DEFAULT_EXEMPT:
    break;
  }
  return LFW_CONFIG_RUN;
}

static void set_defaults(lfw_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->bind_address = "0.0.0.0";
  cfg->port = 8443;
  cfg->path = "/validate";
  cfg->tls_min = 12;
  cfg->max_request_bytes = LF_REVIEW_JSON_MAX;
  cfg->max_connections = 1024;
  cfg->idle_timeout_s = 120;
  cfg->max_body_memory = (size_t)24 * 1024 * 1024;
  cfg->handshake_timeout_us = 5 * 1000000;
  cfg->header_timeout_us = 5 * 1000000;
  cfg->body_timeout_us = 10 * 1000000;
  cfg->shutdown_timeout_us = 10 * 1000000;
  cfg->health_bind_address = "0.0.0.0";
  cfg->health_port = 8081;
  cfg->log_level = 1;
  cfg->mode = LFW_MODE_DENY;
  cfg->lease_timeout_us = 1000000;
  cfg->lease_source = "kube";
  cfg->cache_max_staleness_us = 3000000;
  cfg->cert_poll_us = 1000000;
  cfg->events = true;
  cfg->event_qps = 5;
  cfg->event_burst = 25;
  cfg->event_timeout_us = 3000000;
  lf_policy_init(&cfg->policy);
}

int lfw_config_parse(int argc, char **argv, lfw_config *cfg, FILE *out, char *err,
                     size_t err_size) {
  int i;
  int rc;
  bool no_default_exempt = false;
  lf_policy defaults;
  const char *given[LFW_EXEMPT_MAX];
  size_t n_given;

  set_defaults(cfg);
  for (i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *name;
    const char *eq;
    const char *val = NULL;
    size_t name_len;
    const flag *f = NULL;
    size_t k;

    if (arg[0] != '-' || arg[1] == '\0')
      return fail(err, err_size, "unexpected argument \"%s\" (flags start with --)", arg);
    name = arg[1] == '-' ? arg + 2 : arg + 1;
    eq = strchr(name, '=');
    name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    /* -v2 is accepted as well as -v 2 and -v=2, as klog does. */
    if (arg[1] != '-' && name[0] == 'v' && name_len > 1 && name[1] >= '0' && name[1] <= '9') {
      name_len = 1;
      val = name + 1;
    }
    for (k = 0; k < N_FLAGS; k++)
      if (strlen(flags[k].name) == name_len && strncmp(flags[k].name, name, name_len) == 0)
        f = &flags[k];
    if (f == NULL)
      return fail(err, err_size, "unknown flag \"%s\" (see --help)", arg);
    if (f->id == F_HELP) {
      print_help(out, argv[0]);
      return LFW_CONFIG_EXIT;
    }
    if (f->id == F_VERSION) {
      fprintf(out, "leasefence-webhook %s\n", LFW_VERSION);
      return LFW_CONFIG_EXIT;
    }
    if (f->id == F_NO_DEFAULT_EXEMPT) {
      if (eq != NULL)
        return fail(err, err_size, "--no-default-exempt takes no value");
      no_default_exempt = true;
      continue;
    }
    if (val == NULL && eq != NULL)
      val = eq + 1;
    if (val == NULL) {
      if (i + 1 >= argc)
        return fail(err, err_size, "flag --%s needs a value", f->name);
      val = argv[++i];
    }
    rc = set_flag(cfg, f, val, err, err_size);
    if (rc != LFW_CONFIG_RUN)
      return rc;
  }
  if (cfg->cert_file == NULL || cfg->key_file == NULL)
    return fail(err, err_size, "--tls-cert-file and --tls-private-key-file are required");
  if (cfg->health_port == cfg->port && strcmp(cfg->health_bind_address, cfg->bind_address) == 0)
    return fail(err, err_size, "--health-port must differ from --port");
  /* Exempt users: the library's built-in ones (unless dropped), then the
   * ones given, in one array the policy points into. */
  lf_policy_init(&defaults);
  n_given = cfg->n_exempt_users;
  memcpy(given, cfg->exempt_users, n_given * sizeof given[0]);
  cfg->n_exempt_users = 0;
  if (!no_default_exempt) {
    if (defaults.n_exempt_users + n_given > LFW_EXEMPT_MAX)
      return fail(err, err_size, "--exempt-user: more than %d in all", LFW_EXEMPT_MAX);
    for (size_t k = 0; k < defaults.n_exempt_users; k++)
      cfg->exempt_users[cfg->n_exempt_users++] = defaults.exempt_users[k];
  }
  for (size_t k = 0; k < n_given; k++)
    cfg->exempt_users[cfg->n_exempt_users++] = given[k];
  cfg->policy.exempt_users = cfg->exempt_users;
  cfg->policy.n_exempt_users = cfg->n_exempt_users;
  cfg->policy.exempt_groups = cfg->exempt_groups;
  cfg->policy.n_exempt_groups = cfg->n_exempt_groups;
  return LFW_CONFIG_RUN;
}
