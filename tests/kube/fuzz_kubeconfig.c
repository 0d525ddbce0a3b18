/* Fuzz target: the kubeconfig parser (YAML through libyaml, base64 of the
 * inline credentials, context/cluster/user lookup), on bytes in memory. The
 * path puts the file in a folder that does not exist, so every file a
 * kubeconfig names is unreadable and only inline data can succeed. */
#include "fuzz.h"

#include "kube_internal.h"

#include <string.h>

static int pairs_exclusive(const lf_kube_blob *blob, const char *file) {
  return blob->data == NULL || file == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const contexts[] = {NULL, "c", ""};
  for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
    lf_kube_config *cfg = NULL;
    lf_error err = {0};
    int rc = lf__kube_kubeconfig_parse((const char *)data, size, "/nonexistent-lf-fuzz/kubeconfig",
                                       contexts[i], &cfg, &err);
    if (rc != LF_OK) {
      LF_FUZZ_CHECK(rc < 0 && err.code == rc && cfg == NULL);
      LF_FUZZ_CHECK(strlen(err.text) > 0);
      continue;
    }
    LF_FUZZ_CHECK(cfg != NULL && cfg->server != NULL && cfg->ns != NULL);
    LF_FUZZ_CHECK(strncmp(cfg->server, "https://", 8) == 0 ||
                  strncmp(cfg->server, "http://", 7) == 0);
    LF_FUZZ_CHECK(pairs_exclusive(&cfg->ca_pem, cfg->ca_file));
    LF_FUZZ_CHECK(pairs_exclusive(&cfg->cert_pem, cfg->cert_file));
    LF_FUZZ_CHECK(pairs_exclusive(&cfg->key_pem, cfg->key_file));
    LF_FUZZ_CHECK(cfg->token == NULL || cfg->token_file == NULL);
    LF_FUZZ_CHECK((cfg->cert_pem.data != NULL || cfg->cert_file != NULL) ==
                  (cfg->key_pem.data != NULL || cfg->key_file != NULL));
    LF_FUZZ_CHECK(!cfg->insecure_skip_verify || (cfg->ca_pem.data == NULL && cfg->ca_file == NULL));
    lf_kube_config_free(&cfg);
    LF_FUZZ_CHECK(cfg == NULL);
  }
  return 0;
}
