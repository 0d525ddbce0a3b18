/*
 * main.c: leasefence-webhook's entry point: flags, start-up, signals.
 *
 * Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 2 for a bad flag, a
 * bad value or an unreadable file (one message on stderr), 1 when serving
 * cannot start for another reason (the port is taken).
 */
#include "config.h"
#include "events.h"
#include "lease_source.h"
#include "log.h"
#include "review.h"
#include "server.h"
#include "tlsreload.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA_FILE_MAX (1024 * 1024)

/* Reads --client-ca-file, checking that it holds at least one certificate. */
static char *read_client_ca(const char *path, char *err, size_t err_size) {
  FILE *f = NULL;
  char *pem = NULL;
  size_t len;
  gnutls_x509_crt_t *list = NULL;
  unsigned n = 0;
  gnutls_datum_t d;
  char *ret = NULL;
  unsigned i;

  f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, err_size, "--client-ca-file: cannot open %s: %s", path, strerror(errno));
    goto out;
  }
  pem = malloc(CA_FILE_MAX + 1);
  if (pem == NULL) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  len = fread(pem, 1, CA_FILE_MAX + 1, f);
  if (ferror(f) || len > CA_FILE_MAX) {
    snprintf(err, err_size, "--client-ca-file: cannot read %s (or larger than 1 MiB)", path);
    goto out;
  }
  pem[len] = '\0';
  d.data = (unsigned char *)pem;
  d.size = (unsigned)len;
  if (gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0 || n == 0) {
    snprintf(err, err_size, "--client-ca-file: %s holds no PEM certificate", path);
    goto out;
  }
  ret = pem;
  pem = NULL;
out:
  for (i = 0; i < n; i++)
    gnutls_x509_crt_deinit(list[i]);
  gnutls_free(list);
  free(pem);
  if (f != NULL)
    fclose(f);
  return ret;
}

int main(int argc, char **argv) {
  lfw_config cfg;
  lfw_lease_source source;
  lfw_review_env env = {0};
  lfw_tls *tls = NULL;
  lfw_server *srv = NULL;
  lfw_events *events = NULL;
  char *client_ca = NULL;
  char err[1024];
  lf_error lerr;
  sigset_t sigs;
  int sig = 0;
  int code = 2;
  int rc;

  memset(&source, 0, sizeof source);
  rc = lfw_config_parse(argc, argv, &cfg, stdout, err, sizeof err);
  if (rc == LFW_CONFIG_EXIT)
    return 0;
  if (rc != LFW_CONFIG_RUN) {
    fprintf(stderr, "leasefence-webhook: %s\n", err);
    return 2;
  }
  lfw_log_level = cfg.log_level;
  /* Before any other thread uses jansson: parses during which memory ran
   * out are then refused, not trusted (fencing.h, "jansson's allocations"). */
  json_set_alloc_funcs(lf_json_malloc, lf_json_free);

  /* Every thread started from here on inherits this mask, so only the
   * sigwait below ever sees SIGTERM and SIGINT. */
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  gnutls_global_init();

  memset(&lerr, 0, sizeof lerr);
  lfw_lease_source_config scfg = {
      .kubeconfig = cfg.kubeconfig,
      .read_timeout_us = cfg.lease_timeout_us,
      .max_staleness_us = cfg.cache_max_staleness_us,
      .cache_namespace = cfg.cache_namespace,
      .cache_label_selector = cfg.cache_label_selector,
  };
  if (lfw_lease_source_open(cfg.lease_source, &scfg, &source, &lerr) != LF_OK) {
    fprintf(stderr, "leasefence-webhook: %s\n", lerr.text);
    goto out;
  }
  /* The file source needs no API server, so there may be none to post to:
   * with it, Events need --kubeconfig. */
  if (cfg.events && (strncmp(cfg.lease_source, "file:", 5) != 0 || cfg.kubeconfig != NULL)) {
    lfw_events_options eopts = {
        .qps = cfg.event_qps, .burst = cfg.event_burst, .timeout_ms = cfg.event_timeout_us / 1000};

    if (lfw_events_open(cfg.kubeconfig, &eopts, &events, &lerr) != LF_OK) {
      fprintf(stderr, "leasefence-webhook: --events: %s\n", lerr.text);
      goto out;
    }
  }
  if (cfg.client_ca_file != NULL) {
    client_ca = read_client_ca(cfg.client_ca_file, err, sizeof err);
    if (client_ca == NULL) {
      fprintf(stderr, "leasefence-webhook: %s\n", err);
      goto out;
    }
  }
  if (lfw_tls_open(cfg.cert_file, cfg.key_file, &tls, err, sizeof err) != 0) {
    fprintf(stderr, "leasefence-webhook: --tls-cert-file/--tls-private-key-file: %s\n", err);
    goto out;
  }
  if (lfw_tls_watch(tls, cfg.cert_poll_us) != 0) {
    fprintf(stderr, "leasefence-webhook: cannot start the certificate watcher\n");
    code = 1;
    goto out;
  }
  env.policy = &cfg.policy;
  env.mode = cfg.mode;
  env.source = &source;
  env.lease_timeout_us = cfg.lease_timeout_us;
  env.clock = NULL; /* the wall clock */
  env.events = events;
  if (lfw_server_start(&cfg, &env, tls, client_ca, &srv, err, sizeof err) != 0) {
    fprintf(stderr, "leasefence-webhook: %s\n", err);
    code = 1;
    goto out;
  }

  while (sig != SIGTERM && sig != SIGINT) {
    sig = sigwaitinfo(&sigs, NULL);
    if (sig < 0 && errno != EINTR)
      break;
  }
  lfw_log_json(LFW_LOG_INFO, "shutting down",
               json_pack("{s:s,s:f}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                         "timeout_seconds", (double)cfg.shutdown_timeout_us / 1e6));
  lfw_server_shutdown(srv, cfg.shutdown_timeout_us);
  lfw_log_json(LFW_LOG_INFO, "stopped", NULL);
  code = 0;
out:
  lfw_server_free(&srv);
  lfw_events_free(&events); /* After the server: no review reports any more. */
  lfw_tls_close(&tls);
  lfw_lease_source_close(&source);
  free(client_ca);
  gnutls_global_deinit();
  return code;
}
