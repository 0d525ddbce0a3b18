/*
 * lease_source.c: picks a Lease source from its --lease-source spelling.
 */
#include "lease_source.h"

#include "lease_kube.h"

#include <stdio.h>
#include <string.h>

int lfw_lease_source_open(const char *spec, const lfw_lease_source_config *cfg,
                          lfw_lease_source *out, lf_error *err) {
  static const lfw_lease_source_config none;
  memset(out, 0, sizeof *out);
  if (cfg == NULL)
    cfg = &none;
  if (strncmp(spec, "file:", 5) == 0)
    return lfw_lease_file_open(spec + 5, out, err);
  if (strcmp(spec, "kube") == 0 || strcmp(spec, "kube-cached") == 0) {
    lfw_kube_options o = {
        .kubeconfig = cfg->kubeconfig,
        .cached = strcmp(spec, "kube-cached") == 0,
        .read_timeout_us = cfg->read_timeout_us,
        .max_staleness_us = cfg->max_staleness_us,
        .cache_namespace = cfg->cache_namespace,
        .cache_label_selector = cfg->cache_label_selector,
    };
    return lfw_lease_kube_open(&o, out, err);
  }
  if (err != NULL) {
    err->code = LF_EINVAL;
    snprintf(err->text, sizeof err->text,
             "--lease-source: \"%s\" is not a known source (kube, kube-cached or file:DIR)", spec);
  }
  return LF_EINVAL;
}

void lfw_lease_source_close(lfw_lease_source *src) {
  if (src->close != NULL)
    src->close(src->ctx);
  memset(src, 0, sizeof *src);
}
