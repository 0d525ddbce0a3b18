/*
 * test_kubeconfig.c: configuration sources of the Kubernetes client:
 * kubeconfig files (contexts, every credential kind, inline data against
 * files, relative paths, missing pieces, unsupported auth, malformed and
 * oversized files), the in-cluster files and environment, explicit parts.
 */
#include <leasefence/kube.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define CA_PEM "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define CERT_B64 "Y2VydA=="    /* "cert" */
#define KEY_B64 "a2V5LWJ5dGVz" /* "key-bytes" */

static char dir[64];

static void write_file(const char *name, const char *data) {
  char path[256];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(data, f) >= 0);
  assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
  char pki[128];
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/lf-kubeconfig-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(pki, sizeof(pki), "%s/pki", dir);
  assert_int_equal(mkdir(pki, 0700), 0);
  write_file("pki/ca.crt", CA_PEM);
  write_file("pki/client.crt", "cert");
  write_file("pki/client.key", "key");
  write_file("pki/token", "file-token\n");
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

/* Writes `yaml` as <dir>/config and loads it. */
static int load(const char *yaml, const char *context, lf_kube_config **cfg, lf_error *err) {
  char path[128];
  write_file("config", yaml);
  snprintf(path, sizeof(path), "%s/config", dir);
  return lf_kube_config_from_kubeconfig(path, context, cfg, err);
}

/* Loads `yaml`, expects `code` and `text` in the error. */
static void expect_fail(const char *yaml, const char *context, int code, const char *text) {
  lf_kube_config *cfg = (lf_kube_config *)&cfg; /* Must be reset to NULL. */
  lf_error err = {0};
  int rc = load(yaml, context, &cfg, &err);
  if (rc != code) {
    fail_msg("expected %d, got %d (%s)", code, rc, err.text);
  }
  assert_null(cfg);
  if (strstr(err.text, text) == NULL) {
    fail_msg("\"%s\" not in \"%s\"", text, err.text);
  }
}

static char *path_in_dir(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof(buf), "%s/%s", dir, name);
  return buf;
}

static const char TWO_CONTEXTS[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: dev-cluster\n"
    "  cluster:\n"
    "    server: https://dev.example:6443/\n"
    "    certificate-authority-data: " CA_B64 "\n"
    "- name: prod-cluster\n"
    "  cluster:\n"
    "    server: https://[fd00::1]:443\n"
    "    certificate-authority: pki/ca.crt\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: dev-cluster, user: dev-user, namespace: team-a}\n"
    "- name: prod\n"
    "  context:\n"
    "    cluster: prod-cluster\n"
    "    user: prod-user\n"
    "users:\n"
    "- name: dev-user\n"
    "  user:\n"
    "    token: abc.def\n"
    "- name: prod-user\n"
    "  user:\n"
    "    client-certificate-data: " CERT_B64 "\n"
    "    client-key-data: " KEY_B64 "\n";

static void test_current_context_with_token(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  if (load(TWO_CONTEXTS, NULL, &cfg, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  assert_string_equal(cfg->server, "https://dev.example:6443");
  assert_string_equal(cfg->ns, "team-a");
  assert_string_equal(cfg->token, "abc.def");
  assert_null(cfg->token_file);
  assert_int_equal(cfg->ca_pem.len, strlen(CA_PEM));
  assert_memory_equal(cfg->ca_pem.data, CA_PEM, strlen(CA_PEM));
  assert_null(cfg->ca_file);
  assert_null(cfg->cert_pem.data);
  assert_false(cfg->insecure_skip_verify);
  lf_kube_config_free(&cfg);
  assert_null(cfg);
  lf_kube_config_free(&cfg);
  lf_kube_config_free(NULL);
}

static void test_named_context_with_client_cert_data(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  assert_int_equal(load(TWO_CONTEXTS, "prod", &cfg, &err), LF_OK);
  assert_string_equal(cfg->server, "https://[fd00::1]:443");
  assert_string_equal(cfg->ns, "");
  assert_string_equal(cfg->ca_file, path_in_dir("pki/ca.crt"));
  assert_int_equal(cfg->cert_pem.len, 4);
  assert_memory_equal(cfg->cert_pem.data, "cert", 4);
  assert_int_equal(cfg->key_pem.len, 9);
  assert_memory_equal(cfg->key_pem.data, "key-bytes", 9);
  assert_null(cfg->token);
  lf_kube_config_free(&cfg);
  expect_fail(TWO_CONTEXTS, "staging", LF_EINVAL, "no context named \"staging\"");
}

static void test_files_resolve_against_kubeconfig_dir(void **state) {
  char yaml[2048];
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  snprintf(yaml, sizeof(yaml),
           "current-context: c\n"
           "clusters:\n- name: k\n  cluster:\n    server: https://10.0.0.1\n"
           "    certificate-authority: ./pki/ca.crt\n"
           "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
           "users:\n- name: u\n  user:\n    client-certificate: pki/client.crt\n"
           "    client-key: %s/pki/client.key\n    tokenFile: pki/token\n",
           dir);
  if (load(yaml, NULL, &cfg, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  assert_string_equal(cfg->ca_file, path_in_dir("./pki/ca.crt"));
  assert_string_equal(cfg->cert_file, path_in_dir("pki/client.crt"));
  assert_string_equal(cfg->key_file, path_in_dir("pki/client.key"));
  assert_string_equal(cfg->token_file, path_in_dir("pki/token"));
  assert_null(cfg->ca_pem.data);
  assert_null(cfg->cert_pem.data);
  lf_kube_config_free(&cfg);
}

static void test_data_wins_over_file_and_token_file_over_token(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  assert_int_equal(load("current-context: c\n"
                        "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
                        "    certificate-authority: pki/ca.crt\n"
                        "    certificate-authority-data: " CA_B64 "\n"
                        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                        "users:\n- name: u\n  user:\n    client-certificate: pki/client.crt\n"
                        "    client-certificate-data: " CERT_B64 "\n"
                        "    client-key: pki/client.key\n    client-key-data: " KEY_B64 "\n"
                        "    token: static\n    tokenFile: pki/token\n",
                        NULL, &cfg, &err),
                   LF_OK);
  assert_non_null(cfg->ca_pem.data);
  assert_null(cfg->ca_file);
  assert_non_null(cfg->cert_pem.data);
  assert_null(cfg->cert_file);
  assert_non_null(cfg->key_pem.data);
  assert_null(cfg->key_file);
  assert_null(cfg->token);
  assert_string_equal(cfg->token_file, path_in_dir("pki/token"));
  lf_kube_config_free(&cfg);
}

static void test_insecure_and_anonymous(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  assert_int_equal(load("current-context: c\n"
                        "clusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:8080\n"
                        "    insecure-skip-tls-verify: true\n"
                        "contexts:\n- name: c\n  context:\n    cluster: k\n",
                        NULL, &cfg, &err),
                   LF_OK);
  assert_true(cfg->insecure_skip_verify);
  assert_null(cfg->token);
  assert_null(cfg->token_file);
  assert_null(cfg->cert_file);
  lf_kube_config_free(&cfg);
  expect_fail("current-context: c\n"
              "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
              "    insecure-skip-tls-verify: true\n"
              "    certificate-authority-data: " CA_B64 "\n"
              "contexts:\n- name: c\n  context: {cluster: k}\n",
              NULL, LF_EINVAL, "both a certificate authority and insecure-skip-tls-verify");
  expect_fail("current-context: c\n"
              "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
              "    insecure-skip-tls-verify: perhaps\n"
              "contexts:\n- name: c\n  context: {cluster: k}\n",
              NULL, LF_EINVAL, "is not a boolean");
}

static void test_missing_pieces(void **state) {
  (void)state;
  expect_fail("clusters: []\ncontexts: []\n", NULL, LF_EINVAL, "has no current-context");
  expect_fail("current-context: c\n", NULL, LF_EINVAL, "no context named \"c\" in \"contexts\"");
  expect_fail("current-context: c\ncontexts:\n- name: c\n", NULL, LF_EINVAL,
              "context \"c\" has no \"context\" mapping");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {user: u}\n", NULL, LF_EINVAL,
              "context \"c\" names no cluster");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n", NULL,
              LF_EINVAL, "no cluster named \"k\"");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h}\n",
              NULL, LF_EINVAL, "no user named \"u\"");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {certificate-authority-data: " CA_B64 "}\n",
              NULL, LF_EINVAL, "cluster \"k\" has no server");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: ftp://h}\n",
              NULL, LF_EINVAL, "is not an https:// or http:// URL");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h}\n"
              "users:\n- name: u\n  user: {client-certificate-data: " CERT_B64 "}\n",
              NULL, LF_EINVAL, "client certificate without a key");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h, certificate-authority: "
              "pki/missing.crt}\n",
              NULL, LF_EINVAL, "pki/missing.crt\" cannot be read: No such file");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h, certificate-authority-data: "
              "\"not*base64\"}\n",
              NULL, LF_EINVAL, "certificate-authority-data: invalid base64");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: [https://h]}\n",
              NULL, LF_EINVAL, "\"server\" is not a string");
}

static const char USER_PREFIX[] = "current-context: c\ncontexts:\n- name: c\n"
                                  "  context: {cluster: k, user: u}\n"
                                  "clusters:\n- name: k\n  cluster: {server: https://h}\n"
                                  "users:\n- name: u\n  user:\n";

static void expect_user_fail(const char *user_yaml, const char *text) {
  char yaml[2048];
  snprintf(yaml, sizeof(yaml), "%s%s", USER_PREFIX, user_yaml);
  expect_fail(yaml, NULL, LF_EINVAL, text);
}

static void test_unsupported_auth(void **state) {
  (void)state;
  expect_user_fail("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                   "      command: gke-gcloud-auth-plugin\n",
                   "uses exec credentials (command \"gke-gcloud-auth-plugin\"), which are not "
                   "supported");
  expect_user_fail("    auth-provider:\n      name: oidc\n      config: {}\n",
                   "uses auth-provider \"oidc\", which is not supported");
  expect_user_fail("    username: admin\n    password: secret\n",
                   "basic authentication (username/password)");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h, proxy-url: "
              "http://proxy:3128}\n",
              NULL, LF_EINVAL, "uses proxy-url, which is not supported");
  expect_fail("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
              "clusters:\n- name: k\n  cluster: {server: https://h, tls-server-name: x}\n",
              NULL, LF_EINVAL, "uses tls-server-name");
}

static void test_malformed_and_oversized(void **state) {
  char *big;
  size_t n = LF_KUBE_CONFIG_MAX + 1;
  (void)state;
  expect_fail("current-context: c\nclusters: [\n  - {name: k\n", NULL, LF_EINVAL,
              "malformed YAML at line");
  expect_fail("- just\n- a list\n", NULL, LF_EINVAL, "is not a YAML mapping");
  expect_fail("", NULL, LF_EINVAL, "is not a YAML mapping");
  expect_fail("current-context: c\nkey: *undefined_alias\n", NULL, LF_EINVAL, "malformed YAML");
  big = malloc(n + 1);
  assert_non_null(big);
  memset(big, '#', n);
  big[n] = '\0';
  expect_fail(big, NULL, LF_ETOOBIG, "larger than 1048576 bytes");
  free(big);
}

static void test_yaml_anchors(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  assert_int_equal(load("current-context: c\n"
                        "clusters:\n- name: k\n  cluster: &cl {server: https://anchored:6443}\n"
                        "- name: k2\n  cluster: *cl\n"
                        "contexts:\n- name: c\n  context: {cluster: k2}\n",
                        NULL, &cfg, &err),
                   LF_OK);
  assert_string_equal(cfg->server, "https://anchored:6443");
  lf_kube_config_free(&cfg);
}

static void test_kubeconfig_from_environment(void **state) {
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;
  write_file("config", TWO_CONTEXTS);
  assert_int_equal(setenv("KUBECONFIG", path_in_dir("config"), 1), 0);
  assert_int_equal(lf_kube_config_from_kubeconfig(NULL, NULL, &cfg, &err), LF_OK);
  assert_string_equal(cfg->server, "https://dev.example:6443");
  lf_kube_config_free(&cfg);
  assert_int_equal(setenv("KUBECONFIG", "/a/config:/b/config", 1), 0);
  assert_int_equal(lf_kube_config_from_kubeconfig(NULL, NULL, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "merging them is not supported"));
  assert_int_equal(lf_kube_config_from_kubeconfig("/nonexistent/config", NULL, &cfg, &err),
                   LF_EINVAL);
  assert_non_null(strstr(err.text, "cannot be opened"));
  unsetenv("KUBECONFIG");
}

static void test_in_cluster(void **state) {
  lf_kube_in_cluster_paths paths = {0};
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  char token[256], ca[256], ns[256];
  (void)state;

  snprintf(token, sizeof(token), "%s", path_in_dir("pki/token"));
  snprintf(ca, sizeof(ca), "%s", path_in_dir("pki/ca.crt"));
  snprintf(ns, sizeof(ns), "%s", path_in_dir("namespace"));
  write_file("namespace", "team-a\n");
  paths.token_file = token;
  paths.ca_file = ca;
  paths.namespace_file = ns;

  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  assert_int_equal(lf_kube_config_in_cluster(&paths, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "KUBERNETES_SERVICE_HOST"));

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  if (lf_kube_config_in_cluster(&paths, &cfg, &err) != LF_OK) {
    fail_msg("%s", err.text);
  }
  assert_string_equal(cfg->server, "https://10.96.0.1:443");
  assert_string_equal(cfg->ns, "team-a");
  assert_string_equal(cfg->token_file, token);
  assert_string_equal(cfg->ca_file, ca);
  assert_null(cfg->token);
  lf_kube_config_free(&cfg);

  setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
  paths.namespace_file = "/nonexistent/namespace";
  assert_int_equal(lf_kube_config_in_cluster(&paths, &cfg, &err), LF_OK);
  assert_string_equal(cfg->server, "https://[fd00:10:96::1]:443");
  assert_string_equal(cfg->ns, "");
  lf_kube_config_free(&cfg);

  setenv("KUBERNETES_SERVICE_PORT", "https", 1);
  assert_int_equal(lf_kube_config_in_cluster(&paths, &cfg, &err), LF_EINVAL);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  paths.token_file = "/nonexistent/token";
  assert_int_equal(lf_kube_config_in_cluster(&paths, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "service-account token file"));
  assert_null(cfg);
  /* Defaults point into the pod's service-account folder. */
  assert_int_equal(lf_kube_config_in_cluster(NULL, &cfg, &err),
                   access(LF_KUBE_SA_DIR "/token", R_OK) == 0 ? LF_OK : LF_EINVAL);
  lf_kube_config_free(&cfg);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_from_parts(void **state) {
  lf_kube_parts parts = {0};
  lf_kube_config *cfg = NULL;
  lf_error err = {0};
  (void)state;

  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  parts.server = "https://h:6443//";
  parts.ca_pem = CA_PEM;
  parts.token = "t";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  assert_string_equal(cfg->server, "https://h:6443");
  assert_string_equal(cfg->ns, "");
  assert_int_equal(cfg->ca_pem.len, strlen(CA_PEM));
  assert_string_equal(cfg->token, "t");
  lf_kube_config_free(&cfg);

  parts.ca_pem_len = 5;
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  assert_int_equal(cfg->ca_pem.len, 5);
  lf_kube_config_free(&cfg);

  parts.ca_file = "/x";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "not both"));
  parts.ca_file = NULL;
  parts.cert_pem = "cert";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "needs its key"));
  parts.cert_pem = NULL;
  parts.server = "h:6443";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  assert_null(cfg);
  /* Found by fuzzing: "https://" alone once became "https:". */
  parts.server = "https://";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "names no host"));
  parts.server = "https:///path";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  parts.server = "https://h /x";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_EINVAL);
  parts.server = "https://rancher.example/k8s/clusters/c-1/";
  assert_int_equal(lf_kube_config_from_parts(&parts, &cfg, &err), LF_OK);
  assert_string_equal(cfg->server, "https://rancher.example/k8s/clusters/c-1");
  lf_kube_config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_context_with_token),
      cmocka_unit_test(test_named_context_with_client_cert_data),
      cmocka_unit_test(test_files_resolve_against_kubeconfig_dir),
      cmocka_unit_test(test_data_wins_over_file_and_token_file_over_token),
      cmocka_unit_test(test_insecure_and_anonymous),
      cmocka_unit_test(test_missing_pieces),
      cmocka_unit_test(test_unsupported_auth),
      cmocka_unit_test(test_malformed_and_oversized),
      cmocka_unit_test(test_yaml_anchors),
      cmocka_unit_test(test_kubeconfig_from_environment),
      cmocka_unit_test(test_in_cluster),
      cmocka_unit_test(test_from_parts),
  };
  return cmocka_run_group_tests_name("kubeconfig", tests, setup, teardown);
}
