/*
 * test_webhook_tlshello.c: the ClientHello version check (tlshello.c), on
 * hellos built field by field, and on every truncation of them.
 */
#include "testutil.h"

#include "tlshello.h"

#include <string.h>

/* Builds a ClientHello body with `legacy` as its version and, when
 * `n_versions` > 0, a supported_versions extension listing `versions`. */
static size_t hello(unsigned char *out, unsigned legacy, const unsigned *versions,
                    size_t n_versions) {
  size_t n = 0;
  size_t ext_start;
  size_t i;

  out[n++] = (unsigned char)(legacy >> 8);
  out[n++] = (unsigned char)legacy;
  memset(out + n, 0xab, 32); /* random */
  n += 32;
  out[n++] = 0; /* session_id */
  out[n++] = 0; /* cipher_suites: one */
  out[n++] = 2;
  out[n++] = 0xc0;
  out[n++] = 0x2f;
  out[n++] = 1; /* compression: null */
  out[n++] = 0;
  ext_start = n;
  out[n++] = 0; /* extensions length, filled below */
  out[n++] = 0;
  out[n++] = 0x00; /* server_name, empty: an extension before ours */
  out[n++] = 0x00;
  out[n++] = 0;
  out[n++] = 0;
  if (n_versions > 0) {
    out[n++] = 0x00;
    out[n++] = 0x2b;
    out[n++] = 0;
    out[n++] = (unsigned char)(1 + 2 * n_versions);
    out[n++] = (unsigned char)(2 * n_versions);
    for (i = 0; i < n_versions; i++) {
      out[n++] = (unsigned char)(versions[i] >> 8);
      out[n++] = (unsigned char)versions[i];
    }
  }
  out[ext_start] = (unsigned char)((n - ext_start - 2) >> 8);
  out[ext_start + 1] = (unsigned char)(n - ext_start - 2);
  return n;
}

static void test_versions(void **state) {
  static const unsigned v13[] = {0x0304};
  static const unsigned v13_12[] = {0x0a0a /* GREASE */, 0x0304, 0x0303};
  static const unsigned v12[] = {0x0303};
  static const unsigned v11[] = {0x0302, 0x0301};
  unsigned char m[256];
  uint16_t rv = 0;
  size_t n;

  (void)state;
  /* No extension: the legacy version is the highest offered. */
  n = hello(m, 0x0303, NULL, 0);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_OK);
  assert_int_equal(lfw_tls_hello_check(m, n, 13, &rv), LFW_HELLO_TOO_OLD);
  assert_int_equal(rv, 0x0303);
  n = hello(m, 0x0302, NULL, 0);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_TOO_OLD);
  assert_int_equal(rv, 0x0302);
  n = hello(m, 0x0301, NULL, 0);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_TOO_OLD);
  assert_int_equal(rv, 0x0301);
  /* With the extension, only its list counts. */
  n = hello(m, 0x0303, v13, 1);
  assert_int_equal(lfw_tls_hello_check(m, n, 13, &rv), LFW_HELLO_OK);
  n = hello(m, 0x0303, v13_12, 3);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_OK);
  assert_int_equal(lfw_tls_hello_check(m, n, 13, &rv), LFW_HELLO_OK);
  n = hello(m, 0x0303, v12, 1);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_OK);
  assert_int_equal(lfw_tls_hello_check(m, n, 13, &rv), LFW_HELLO_TOO_OLD);
  n = hello(m, 0x0303, v11, 2);
  assert_int_equal(lfw_tls_hello_check(m, n, 12, &rv), LFW_HELLO_TOO_OLD);
}

/* Every prefix of a good hello is malformed or, where it ends exactly after
 * a field that may close the message, read as such; never read past. */
static void test_truncated(void **state) {
  static const unsigned v13[] = {0x0304};
  unsigned char m[256];
  uint16_t rv;
  size_t n = hello(m, 0x0303, v13, 1);
  size_t i;

  (void)state;
  for (i = 0; i < n; i++) {
    unsigned char *copy = malloc(i + 1); /* Exact size, for ASan. */
    int rc;

    assert_non_null(copy);
    memcpy(copy, m, i);
    rc = lfw_tls_hello_check(copy, i, 13, &rv);
    /* Ending right after compression_methods is a hello without
     * extensions (too old for a 1.3-only server); else malformed. */
    if (i == 2 + 32 + 1 + 2 + 2 + 1 + 1)
      assert_int_equal(rc, LFW_HELLO_TOO_OLD);
    else
      assert_int_equal(rc, LFW_HELLO_MALFORMED);
    free(copy);
  }
  /* A supported_versions list whose length disagrees with its extension. */
  m[n - 3] = 4;
  assert_int_equal(lfw_tls_hello_check(m, n, 13, &rv), LFW_HELLO_MALFORMED);
}

static void test_alert(void **state) {
  unsigned char a[7];
  static const unsigned char want[7] = {21, 3, 2, 0, 2, 2, 70};

  (void)state;
  lfw_tls_alert_protocol_version(0x0302, a);
  assert_memory_equal(a, want, 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_alert),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
