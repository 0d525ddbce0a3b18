/*
 * config.h: the webhook's command line.
 *
 * Flags follow the Kubernetes spelling (--tls-cert-file, --bind-address, ...).
 * Both "--flag=value" and "--flag value" work. Durations are Go-style
 * ("2s", "500ms", "1m30s"); sizes are bytes with an optional Ki/Mi/Gi suffix.
 */
#ifndef LFW_CONFIG_H
#define LFW_CONFIG_H

#include <leasefence/fencing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum lfw_mode {
  LFW_MODE_DENY = 0, /* Answer as decided. */
  LFW_MODE_WARN,     /* Admit what would be denied, with a warning. */
  LFW_MODE_DRY_RUN,  /* Admit everything; only count and log. */
} lfw_mode;

const char *lfw_mode_name(lfw_mode mode);

#define LFW_EXEMPT_MAX 128 /* Exempt users (built-in ones included) / groups, each. */

typedef struct lfw_config {
  const char *bind_address;   /* Serving address, default "0.0.0.0". */
  unsigned port;              /* Default 8443. */
  const char *path;           /* Review path, default "/validate". */
  const char *cert_file;      /* --tls-cert-file (required). */
  const char *key_file;       /* --tls-private-key-file (required). */
  const char *client_ca_file; /* Optional: require client certificates from it. */
  int tls_min;                /* 12 or 13. */
  size_t max_request_bytes;   /* Default 7 MiB (LF_REVIEW_JSON_MAX). */
  unsigned max_connections;   /* Default 1024. */
  unsigned idle_timeout_s;    /* Per-connection idle timeout, default 120 s. */
  unsigned threads;           /* 0: one per online CPU. */
  int64_t shutdown_timeout_us;
  const char *health_bind_address;
  unsigned health_port; /* Plain HTTP: /healthz, /readyz, /metrics. */
  int log_level;
  lfw_mode mode;
  const char *lease_source;         /* "kube" (default), "kube-cached" or "file:DIR". */
  const char *kubeconfig;           /* NULL: in-cluster configuration. */
  int64_t lease_timeout_us;         /* Deadline of one Lease lookup. */
  int64_t cache_max_staleness_us;   /* kube-cached: oldest copy served. */
  const char *cache_namespace;      /* kube-cached: NULL for all namespaces. */
  const char *cache_label_selector; /* kube-cached: NULL for all Leases. */
  int64_t cert_poll_us;             /* How often the certificate files are checked. */
  bool events;                      /* Report denials as Events (events.h). */
  int64_t event_qps;                /* Event requests a second, on average. */
  int64_t event_burst;              /* Event requests at once. */
  int64_t event_timeout_us;         /* Deadline of one Event request. */
  lf_policy policy;
  /* Storage for the exempt lists the policy points into: the built-in users
   * (unless --no-default-exempt), then each --exempt-user; --exempt-group. */
  const char *exempt_users[LFW_EXEMPT_MAX];
  size_t n_exempt_users;
  const char *exempt_groups[LFW_EXEMPT_MAX];
  size_t n_exempt_groups;

  /* Hostile clients: memory for all request bodies at once, and the deadline
   * of each phase of a connection (monotonic, not renewed by trickling). */
  size_t max_body_memory;       /* Default 24 MiB. */
  int64_t handshake_timeout_us; /* Accept to the end of the TLS handshake. */
  int64_t header_timeout_us;    /* Handshake or request line to the end of the headers. */
  int64_t body_timeout_us;      /* End of the headers to the end of the body. */
} lfw_config;

enum {
  LFW_CONFIG_RUN = 0,   /* Flags parsed: run. */
  LFW_CONFIG_EXIT = 1,  /* --help or --version printed: exit 0. */
  LFW_CONFIG_ERROR = -1 /* Bad flag or value: `err` says which; exit 2. */
};

/* Parses argv into `cfg` (whose strings then point into argv). Writes --help
 * and --version output to `out`. Returns one of LFW_CONFIG_*. */
int lfw_config_parse(int argc, char **argv, lfw_config *cfg, FILE *out, char *err, size_t err_size);

/* Parses a Go-style duration ("1m30s", "250ms", "0") into microseconds. */
int lfw_parse_duration(const char *text, int64_t *out_us);

#endif /* LFW_CONFIG_H */
