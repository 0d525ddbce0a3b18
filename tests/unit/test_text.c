/* Internal text utilities: UTF-8-safe truncation and the name classes. */
#include "testutil.h"
#include "text.h"

#include <string.h>

static void test_utf8_floor(void **state) {
  (void)state;
  const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀 */
  assert_int_equal(lf__utf8_floor(s, 0), 0);
  assert_int_equal(lf__utf8_floor(s, 1), 1);
  assert_int_equal(lf__utf8_floor(s, 2), 1); /* inside é */
  assert_int_equal(lf__utf8_floor(s, 3), 3);
  assert_int_equal(lf__utf8_floor(s, 4), 3); /* inside € */
  assert_int_equal(lf__utf8_floor(s, 5), 3);
  assert_int_equal(lf__utf8_floor(s, 6), 6);
  assert_int_equal(lf__utf8_floor(s, 9), 6); /* inside 😀 */
  assert_int_equal(lf__utf8_floor(s, 10), 10);
}

static void test_sbuf_truncates_at_boundary(void **state) {
  (void)state;
  char buf[5];
  lf__sbuf b;
  lf__sbuf_init(&b, buf, sizeof(buf));
  lf__sbuf_printf(&b, "ab\xe2\x82\xac"); /* 5 bytes into room for 4 */
  assert_true(b.truncated);
  assert_string_equal(buf, "ab");
  lf__sbuf_printf(&b, "more");
  assert_string_equal(buf, "ab");
}

static void test_quote_hides_controls(void **state) {
  (void)state;
  char buf[64];
  lf__sbuf b;
  lf__sbuf_init(&b, buf, sizeof(buf));
  lf__sbuf_quote(&b, "a\x1b[31mb", 100);
  assert_string_equal(buf, "\"a?[31mb\"");
  lf__sbuf_init(&b, buf, sizeof(buf));
  lf__sbuf_quote(&b, "abcdef", 3);
  assert_string_equal(buf, "\"abc...\"");
}

static void test_names(void **state) {
  (void)state;
  assert_true(lf__dns_label("a", 1));
  assert_true(lf__dns_label("a-1", 3));
  assert_false(lf__dns_label("-a", 2));
  assert_false(lf__dns_label("a-", 2));
  assert_false(lf__dns_label("A", 1));
  assert_false(lf__dns_label("a.b", 3));
  assert_false(
      lf__dns_label("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 64));
  assert_true(
      lf__dns_subdomain("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", 66));
  assert_false(lf__dns_label("", 0));
  assert_true(lf__dns_subdomain("a.b-c.d", 7));
  assert_false(lf__dns_subdomain("a..b", 4));
  assert_false(lf__dns_subdomain(".a", 2));
  assert_false(lf__dns_subdomain("a.", 2));
  assert_true(lf__printable("abc ~", 5));
  assert_false(lf__printable("a\x7f", 2));
  assert_false(lf__printable("a\0", 2));
}

static void test_fail(void **state) {
  (void)state;
  lf_error err;
  assert_int_equal(lf__fail(&err, LF_EINVAL, "n=%d", 5), LF_EINVAL);
  assert_int_equal(err.code, LF_EINVAL);
  assert_string_equal(err.text, "n=5");
  assert_int_equal(lf__fail(NULL, LF_ENOMEM, "x"), LF_ENOMEM);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8_floor),
      cmocka_unit_test(test_sbuf_truncates_at_boundary),
      cmocka_unit_test(test_quote_hides_controls),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_fail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
