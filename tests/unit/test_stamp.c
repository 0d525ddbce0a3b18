/* Stamp text format: the shared vectors (parse and format), then round trips. */
#include "testutil.h"

#include <string.h>

static void test_parse_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "parse"), i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *text = json_object_get(c, "text");
    lf_stamp s;
    lf_error err = {0};
    int rc = lf_stamp_parse(json_string_value(text), json_string_length(text), &s, &err);
    if (json_is_true(json_object_get(c, "ok"))) {
      if (rc != LF_OK) {
        fail_msg("%s: rejected: %s", name, err.text);
      }
      assert_int_equal(s.term, json_integer_value(json_object_get(c, "term")));
      assert_string_equal(s.lease_uid, json_string_value(json_object_get(c, "lease_uid")));
      assert_string_equal(s.holder, json_string_value(json_object_get(c, "holder")));
    } else {
      if (rc == LF_OK) {
        fail_msg("%s: accepted", name);
      }
      assert_true(strlen(err.text) > 10);
    }
  }
  json_decref(v);
}

/* The holder hash, as every helper must compute it; and a stamp whose
 * holder is a hash names exactly the holders with that hash. */
static void test_holder_hash_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  assert_true(json_array_size(json_object_get(v, "holder_hash")) >= 5);
  json_array_foreach(json_object_get(v, "holder_hash"), i, c) {
    const char *holder = json_string_value(json_object_get(c, "holder"));
    char hash[LF_HOLDER_HASH_LEN + 1], text[LF_STAMP_MAX + 1];
    lf_stamp s, full = {.term = 3};
    assert_true(strlen(holder) <= LF_HOLDER_MAX);
    lf_holder_hash(holder, hash);
    assert_string_equal(hash, json_string_value(json_object_get(c, "hash")));
    snprintf(text, sizeof(text), "lf1:3:u:#%s", hash);
    assert_int_equal(lf_stamp_parse(text, strlen(text), &s, NULL), LF_OK);
    assert_true(s.holder_hashed);
    if (holder[0] != '\0') {
      strcpy(full.lease_uid, "u");
      strcpy(full.holder, holder);
      assert_true(lf_stamp_names_holder(&s, holder));
      assert_true(lf_stamp_same_tenure(&s, &full));
      assert_true(lf_stamp_same_tenure(&full, &s));
      assert_false(lf_stamp_names_holder(&s, "someone-else"));
      full.term = 4;
      assert_false(lf_stamp_same_tenure(&s, &full));
    }
  }
  json_decref(v);
}

static void test_format_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "format"), i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    lf_stamp s = {.term = (int32_t)json_integer_value(json_object_get(c, "term"))};
    char buf[LF_STAMP_MAX + 1], fm[LF_FIELD_MANAGER_MAX + 1];
    lf_error err = {0};
    const char *uid = json_string_value(json_object_get(c, "lease_uid"));
    const char *holder = json_string_value(json_object_get(c, "holder"));
    int rc = LF_ETOOBIG, rc2 = LF_ETOOBIG;
    /* A value longer than lf_stamp's fields cannot even be handed to the
     * formatter: in C that is how it is refused. */
    if (strlen(uid) <= LF_UID_MAX && strlen(holder) <= LF_HOLDER_MAX) {
      snprintf(s.lease_uid, sizeof(s.lease_uid), "%s", uid);
      snprintf(s.holder, sizeof(s.holder), "%s", holder);
      rc = lf_stamp_format(&s, buf, sizeof(buf), &err);
      rc2 = lf_stamp_format_field_manager(&s, fm, sizeof(fm), &err);
    }
    if (json_is_true(json_object_get(c, "ok"))) {
      if (rc != LF_OK || rc2 != LF_OK) {
        fail_msg("%s: rejected: %s", name, err.text);
      }
      assert_string_equal(buf, json_string_value(json_object_get(c, "stamp")));
      assert_string_equal(fm, json_string_value(json_object_get(c, "field_manager")));
      assert_true(strlen(fm) <= LF_FIELD_MANAGER_MAX);
    } else {
      if (rc == LF_OK || rc2 == LF_OK) {
        fail_msg("%s: accepted", name);
      }
    }
  }
  json_decref(v);
}

/* Every stamp the formatter writes parses back to itself. */
static void test_round_trip(void **state) {
  (void)state;
  static const int32_t terms[] = {0, 1, 9, 10, 2147483647};
  for (size_t i = 0; i < sizeof(terms) / sizeof(terms[0]); i++) {
    lf_stamp s = {.term = terms[i]}, back;
    char buf[LF_STAMP_MAX + 1];
    strcpy(s.lease_uid, "abc-DEF-123");
    memset(s.holder, 'h', LF_HOLDER_MAX);
    s.holder[LF_HOLDER_MAX] = '\0';
    assert_int_equal(lf_stamp_format(&s, buf, sizeof(buf), NULL), LF_OK);
    assert_true(strlen(buf) <= LF_STAMP_MAX);
    assert_int_equal(lf_stamp_parse(buf, strlen(buf), &back, NULL), LF_OK);
    assert_int_equal(back.term, s.term);
    assert_string_equal(back.holder, s.holder);
  }
}

/* The length is what counts, not a NUL: bytes after `len` are never read and
 * an embedded NUL is a control character. */
static void test_length_not_nul(void **state) {
  (void)state;
  lf_stamp s;
  const char text[] = "lf1:1:u:ab\0cd";
  assert_int_equal(lf_stamp_parse(text, 10, &s, NULL), LF_OK);
  assert_string_equal(s.holder, "ab");
  assert_int_not_equal(lf_stamp_parse(text, sizeof(text) - 1, &s, NULL), LF_OK);
}

static void test_small_buffers(void **state) {
  (void)state;
  lf_stamp s = {.term = 1};
  char buf[8];
  lf_error err;
  strcpy(s.lease_uid, "uid");
  strcpy(s.holder, "holder");
  assert_int_equal(lf_stamp_format(&s, buf, sizeof(buf), &err), LF_ETOOBIG);
  assert_int_equal(lf_stamp_format_field_manager(&s, buf, sizeof(buf), &err), LF_ETOOBIG);
  assert_int_equal(lf_stamp_parse(NULL, 0, &s, &err), LF_EINVAL);
  char big[LF_STAMP_MAX + 2];
  memset(big, 'x', sizeof(big));
  assert_int_equal(lf_stamp_parse(big, sizeof(big), &s, &err), LF_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_vectors),       cmocka_unit_test(test_format_vectors),
      cmocka_unit_test(test_holder_hash_vectors), cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_length_not_nul),      cmocka_unit_test(test_small_buffers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
