/* RFC 3339 timestamps. */
#include "testutil.h"

#include <string.h>

static void test_parse(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t us;
  } ok[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:01.5Z", 1500000},
      {"1970-01-01T00:00:00.123456789Z", 123456},
      {"1970-01-01T01:00:00+01:00", 0},
      {"1969-12-31T23:00:00-01:00", 0},
      {"1969-12-31T23:59:59.999999Z", -1},
      {"2000-02-29T00:00:00Z", 951782400000000LL},
      {"2026-01-01T00:00:00.000000Z", 1767225600000000LL},
      {"9999-12-31T23:59:59Z", 253402300799000000LL},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    int64_t us = 42;
    lf_error err;
    if (lf_time_parse(ok[i].text, strlen(ok[i].text), &us, &err) != LF_OK) {
      fail_msg("%s: %s", ok[i].text, err.text);
    }
    assert_int_equal(us, ok[i].us);
  }
}

static void test_parse_bad(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "2026",
      "2026-01-01",
      "2026-01-01T00:00:00",
      "2026-01-01 00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-02-29T00:00:00Z",
      "2026-01-32T00:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T00:60:00Z",
      "2026-01-01T00:00:60Z",
      "2026-01-01T00:00:00.Z",
      "2026-01-01T00:00:00.1234567890Z",
      "2026-01-01T00:00:00+1:00",
      "2026-01-01T00:00:00Zjunk",
      "0000-01-01T00:00:00Z",
      "+2026-01-01T00:00:00Z",
      "2026-01-01T00:00:00+24:00",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t us;
    if (lf_time_parse(bad[i], strlen(bad[i]), &us, NULL) == LF_OK) {
      fail_msg("accepted %s", bad[i]);
    }
  }
  int64_t us;
  assert_int_equal(lf_time_parse(NULL, 0, &us, NULL), LF_EINVAL);
}

static void test_format_round_trip(void **state) {
  (void)state;
  static const int64_t values[] = {
      0, -1, 1, 1767225600123456LL, 253402300799999999LL, -62135596800000000LL};
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char buf[32];
    int64_t back;
    assert_int_equal(lf_time_format(values[i], buf, sizeof(buf)), LF_OK);
    assert_int_equal(strlen(buf), 27);
    assert_int_equal(lf_time_parse(buf, strlen(buf), &back, NULL), LF_OK);
    assert_int_equal(back, values[i]);
  }
  char buf[32];
  assert_int_equal(lf_time_format(LF_TIME_NONE, buf, sizeof(buf)), LF_EINVAL);
  assert_int_equal(lf_time_format(0, buf, 10), LF_EINVAL);
  assert_int_equal(lf_time_format(253402300800000000LL, buf, sizeof(buf)), LF_EINVAL);
  assert_int_equal(lf_time_format(1767225600000000LL, buf, sizeof(buf)), LF_OK);
  assert_string_equal(buf, "2026-01-01T00:00:00.000000Z");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
