/*
 * test_webhook_config.c: the command line (config.c) and the file Lease
 * source (lease_file.c).
 */
#include "testutil.h"

#include "config.h"
#include "lease_source.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(lfw_config *cfg, char *err, size_t err_size, ...) {
  char *argv[64];
  int argc = 0;
  va_list ap;
  char *a;
  FILE *out = fopen("/dev/null", "w");
  int rc;

  argv[argc++] = (char *)(uintptr_t) "leasefence-webhook";
  va_start(ap, err_size);
  while ((a = va_arg(ap, char *)) != NULL)
    argv[argc++] = a;
  va_end(ap);
  err[0] = '\0';
  rc = lfw_config_parse(argc, argv, cfg, out, err, err_size);
  fclose(out);
  return rc;
}

#define REQ "--tls-cert-file=c", "--tls-private-key-file", "k", "--lease-source=file:/x"

static void test_defaults(void **state) {
  lfw_config cfg;
  char err[256];

  (void)state;
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, NULL), LFW_CONFIG_RUN);
  assert_int_equal(cfg.port, 8443);
  assert_int_equal(cfg.health_port, 8081);
  assert_string_equal(cfg.bind_address, "0.0.0.0");
  assert_string_equal(cfg.path, "/validate");
  assert_int_equal(cfg.tls_min, 12);
  assert_int_equal(cfg.max_request_bytes, 7 * 1024 * 1024);
  assert_int_equal(cfg.idle_timeout_s, 120);
  assert_int_equal(cfg.shutdown_timeout_us, 10000000);
  assert_int_equal(cfg.mode, LFW_MODE_DENY);
  assert_int_equal(cfg.policy.identity, LF_IDENTITY_WHEN_PRESENT);
  assert_int_equal(cfg.policy.default_fencing, LF_FENCING_STAMP);
  assert_int_equal(cfg.policy.skew_us, 2000000);
  assert_false(cfg.policy.admit_when_unavailable);
  assert_true(cfg.policy.n_exempt_users > 0); /* The library's defaults. */
  assert_string_equal(cfg.cert_file, "c");
  assert_string_equal(cfg.key_file, "k");
  assert_string_equal(cfg.lease_source, "file:/x");
}

static void test_values(void **state) {
  lfw_config cfg;
  char err[256];

  (void)state;
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--port", "9443", "--mode=warn",
                         "--identity-binding=required", "--default-fencing=identity",
                         "--clock-skew-tolerance=1m30s", "--on-lease-unavailable=admit",
                         "--exempt-user", "alice", "--exempt-user=bob", "--exempt-group=ops",
                         "--max-request-bytes=1Mi", "--tls-min-version=1.3", "-v2",
                         "--shutdown-timeout=500ms", "--threads=3", NULL),
                   LFW_CONFIG_RUN);
  assert_int_equal(cfg.port, 9443);
  assert_int_equal(cfg.mode, LFW_MODE_WARN);
  assert_int_equal(cfg.policy.identity, LF_IDENTITY_REQUIRED);
  assert_int_equal(cfg.policy.default_fencing, LF_FENCING_IDENTITY);
  assert_int_equal(cfg.policy.skew_us, 90000000);
  assert_true(cfg.policy.admit_when_unavailable);
  /* Given exempt users add to the built-in ones (which come first). */
  assert_int_equal(cfg.policy.n_exempt_users, 48);
  assert_string_equal(cfg.policy.exempt_users[5],
                      "system:serviceaccount:kube-system:deployment-controller");
  assert_string_equal(cfg.policy.exempt_users[47], "bob");
  assert_false(cfg.policy.deny_unstamped);
  assert_int_equal(cfg.policy.n_exempt_groups, 1);
  assert_int_equal(cfg.max_request_bytes, 1024 * 1024);
  assert_int_equal(cfg.tls_min, 13);
  assert_int_equal(cfg.log_level, 2);
  assert_int_equal(cfg.shutdown_timeout_us, 500000);
  assert_int_equal(cfg.threads, 3);

  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--unstamped-writes=deny", NULL),
                   LFW_CONFIG_RUN);
  assert_true(cfg.policy.deny_unstamped);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--unstamped-writes=maybe", NULL),
                   LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--default-fencing=pod", NULL),
                   LFW_CONFIG_ERROR);
  assert_non_null(strstr(err, "not stamp or identity"));
  assert_int_equal(
      parse(&cfg, err, sizeof err, REQ, "--no-default-exempt", "--exempt-user=bob", NULL),
      LFW_CONFIG_RUN);
  assert_int_equal(cfg.policy.n_exempt_users, 1);
  assert_string_equal(cfg.policy.exempt_users[0], "bob");
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--no-default-exempt=yes", NULL),
                   LFW_CONFIG_ERROR);
  /* The Kubernetes sources' flags. */
  assert_int_equal(parse(&cfg, err, sizeof err, "--tls-cert-file=c", "--tls-private-key-file=k",
                         "--kubeconfig=/k", "--cache-max-staleness=5s", "--cache-namespace=ops",
                         "--cache-label-selector=a=b", NULL),
                   LFW_CONFIG_RUN);
  assert_string_equal(cfg.lease_source, "kube"); /* the default */
  assert_string_equal(cfg.kubeconfig, "/k");
  assert_int_equal(cfg.cache_max_staleness_us, 5000000);
  assert_string_equal(cfg.cache_namespace, "ops");
  assert_string_equal(cfg.cache_label_selector, "a=b");
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--cache-max-staleness=0", NULL),
                   LFW_CONFIG_ERROR);
}

static void test_errors(void **state) {
  lfw_config cfg;
  char err[256];

  (void)state;
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--bogus", NULL), LFW_CONFIG_ERROR);
  assert_true(lft_contains(err, "--bogus"));
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--port=0", NULL), LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--port=70000", NULL), LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--mode=maybe", NULL), LFW_CONFIG_ERROR);
  assert_true(lft_contains(err, "--mode"));
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--clock-skew-tolerance=2", NULL),
                   LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--tls-min-version=1.1", NULL),
                   LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--max-request-bytes=lots", NULL),
                   LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "--port", NULL), LFW_CONFIG_ERROR);
  assert_true(lft_contains(err, "needs a value"));
  assert_int_equal(parse(&cfg, err, sizeof err, "--tls-cert-file=c", NULL), LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, REQ, "stray", NULL), LFW_CONFIG_ERROR);
  assert_int_equal(parse(&cfg, err, sizeof err, "--help", NULL), LFW_CONFIG_EXIT);
  assert_int_equal(parse(&cfg, err, sizeof err, "--version", NULL), LFW_CONFIG_EXIT);
}

static void test_durations(void **state) {
  int64_t us = -1;

  (void)state;
  assert_int_equal(lfw_parse_duration("2s", &us), 0);
  assert_int_equal(us, 2000000);
  assert_int_equal(lfw_parse_duration("1m30s", &us), 0);
  assert_int_equal(us, 90000000);
  assert_int_equal(lfw_parse_duration("250ms", &us), 0);
  assert_int_equal(us, 250000);
  assert_int_equal(lfw_parse_duration("1.5h", &us), 0);
  assert_int_equal(us, 5400000000LL);
  assert_int_equal(lfw_parse_duration("0", &us), 0);
  /* Go durations have no hex or exponent forms, and the sum is bounded. */
  assert_int_equal(lfw_parse_duration("0x1p3s", &us), -1);
  assert_int_equal(lfw_parse_duration("1e3ms", &us), -1);
  {
    char many[4096] = "";
    for (int i = 0; i < 300; i++)
      strcat(many, "200000h");
    assert_int_equal(lfw_parse_duration(many, &us), -1);
  }
  assert_int_equal(us, 0);
  assert_int_equal(lfw_parse_duration("", &us), -1);
  assert_int_equal(lfw_parse_duration("10", &us), -1);
  assert_int_equal(lfw_parse_duration("-1s", &us), -1);
  assert_int_equal(lfw_parse_duration("1x", &us), -1);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");

  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_file_source(void **state) {
  char dir[] = "/tmp/lfw-leases-XXXXXX";
  char path[512];
  lfw_lease_source src;
  lf_lease_ref ref;
  lf_lease lease;
  lf_error err;
  char why[128];

  (void)state;
  assert_non_null(mkdtemp(dir));
  assert_int_equal(lfw_lease_source_open("nope:x", NULL, &src, &err), LF_EINVAL);
  snprintf(path, sizeof path, "file:%s/missing", dir);
  assert_int_equal(lfw_lease_source_open(path, NULL, &src, &err), LF_EINVAL);
  snprintf(path, sizeof path, "file:%s", dir);
  assert_int_equal(lfw_lease_source_open(path, NULL, &src, &err), LF_OK);
  assert_true(src.ready(src.ctx, why, sizeof why));

  memset(&ref, 0, sizeof ref);
  strcpy(ref.ns, "default");
  strcpy(ref.name, "ctrl");
  /* No namespace directory, then no file: not found. */
  assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_ENOTFOUND);
  snprintf(path, sizeof path, "%s/default", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_ENOTFOUND);

  snprintf(path, sizeof path, "%s/default/ctrl.json", dir);
  write_file(path, "{not json");
  assert_true(src.get(src.ctx, &ref, 0, 0, &lease, &err) < 0);
  assert_true(lft_contains(err.text, "malformed Lease"));

  write_file(path, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                   "\"metadata\":{\"name\":\"ctrl\",\"namespace\":\"default\",\"uid\":\"u-1\"},"
                   "\"spec\":{\"holderIdentity\":\"a_1\",\"leaseDurationSeconds\":15,"
                   "\"leaseTransitions\":4,\"renewTime\":\"2026-01-01T00:00:00.000000Z\"}}");
  assert_int_equal(src.get(src.ctx, &ref, LFW_LEASE_LIVE, 0, &lease, &err), LF_OK);
  assert_string_equal(lease.holder, "a_1");
  assert_int_equal(lease.transitions, 4);
  assert_string_equal(lease.uid, "u-1");

  /* A change (rename over with an old mtime, or a rewrite in place at the
   * same size) is seen on the very next lookup: a file changed in the last
   * few seconds (by ctime, which cannot be set back) is never served from
   * the cache. The cache itself serves the benchmark's long-lived Lease. */
  {
    static const char *const holders[] = {"b_2", "c_3", "d_4"};
    char tmp[600];
    char text[512];
    struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    int k;

    for (k = 0; k < 3; k++) {
      snprintf(text, sizeof text,
               "{\"metadata\":{\"name\":\"ctrl\",\"namespace\":\"default\",\"uid\":\"u-1\"},"
               "\"spec\":{\"holderIdentity\":\"%s\",\"leaseTransitions\":%d}}",
               holders[k], k + 5);
      if (k < 2) {
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        write_file(tmp, text);
        assert_int_equal(utimensat(AT_FDCWD, tmp, old, 0), 0);
        assert_int_equal(rename(tmp, path), 0);
      } else {
        write_file(path, text); /* In place, same size, fresh mtime. */
      }
      assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_OK);
      assert_string_equal(lease.holder, holders[k]);
      assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_OK);
      assert_string_equal(lease.holder, holders[k]);
      assert_int_equal(lease.transitions, k + 5);
    }
  }

  /* A Lease of another namespace, or of another name, in NS/NAME.json is
   * refused, not used as NS/NAME. */
  {
    static const struct {
      const char *meta;
      const char *says; /* NULL: accepted */
    } files[] = {
        {"{\"uid\":\"u\",\"name\":\"ctrl\",\"namespace\":\"other\"}",
         "holds Lease other/ctrl, not default/ctrl"},
        {"{\"uid\":\"u\",\"name\":\"ctrl2\",\"namespace\":\"default\"}",
         "holds Lease default/ctrl2, not default/ctrl"},
        {"{\"uid\":\"u\",\"name\":\"ctrl\",\"namespace\":\"default\"}", NULL},
    };
    char text[512];
    size_t k;

    for (k = 0; k < sizeof files / sizeof files[0]; k++) {
      snprintf(text, sizeof text,
               "{\"metadata\":%s,\"spec\":{\"holderIdentity\":\"e_5\",\"leaseTransitions\":9}}",
               files[k].meta);
      write_file(path, text);
      memset(&err, 0, sizeof err);
      if (files[k].says == NULL) {
        assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_OK);
        assert_string_equal(lease.ref.ns, "default");
        assert_string_equal(lease.ref.name, "ctrl");
      } else {
        assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_EINVAL);
        if (!lft_contains(err.text, files[k].says))
          fail_msg("%s: \"%s\"", files[k].meta, err.text);
      }
    }
  }

  /* A name that would leave the directory is refused, not looked up. */
  strcpy(ref.name, "../x");
  assert_int_equal(src.get(src.ctx, &ref, 0, 0, &lease, &err), LF_EINVAL);

  unlink(path);
  snprintf(path, sizeof path, "%s/default", dir);
  rmdir(path);
  rmdir(dir);
  assert_false(src.ready(src.ctx, why, sizeof why));
  assert_true(lft_contains(why, dir));
  lfw_lease_source_close(&src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),    cmocka_unit_test(test_values),
      cmocka_unit_test(test_errors),      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_file_source),
  };

  lfw_log_level = LFW_LOG_ERROR;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
