/* Controller helpers: the shared merge-patch and JSON-patch vectors, stamping
 * objects in place, and the DeleteOptions of a fenced delete. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static lf_stamp stamp_of(const json_t *j) {
  lf_stamp s = {.term = (int32_t)json_integer_value(json_object_get(j, "term"))};
  snprintf(s.lease_uid, sizeof(s.lease_uid), "%s",
           json_string_value(json_object_get(j, "lease_uid")));
  snprintf(s.holder, sizeof(s.holder), "%s", json_string_value(json_object_get(j, "holder")));
  return s;
}

static void expect_json(const json_t *got, const json_t *want, const char *name) {
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
    print_error("%s:\n got  %s\n want %s\n", name, g, w);
    free(g);
    free(w);
    fail();
  }
}

static void test_merge_patch_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "merge_patch"), i, c) {
    lf_stamp s = stamp_of(json_object_get(c, "stamp"));
    const json_t *in = json_object_get(c, "in");
    json_t *in_copy = json_deep_copy(in);
    lf_error err = {0};
    json_t *out = lf_stamp_merge_patch(json_is_null(in) ? NULL : in, &s, &err);
    if (json_is_false(json_object_get(c, "ok"))) {
      if (out != NULL) {
        fail_msg("%s: accepted", json_string_value(json_object_get(c, "name")));
      }
      assert_true(strlen(err.text) > 10);
      json_decref(in_copy);
      continue;
    }
    if (out == NULL) {
      fail_msg("%s: refused: %s", json_string_value(json_object_get(c, "name")), err.text);
    }
    expect_json(out, json_object_get(c, "out"), json_string_value(json_object_get(c, "name")));
    assert_true(json_equal(in, in_copy)); /* the input patch is not modified */
    json_decref(out);
    json_decref(in_copy);
  }
  json_decref(v);
}

static void test_json_patch_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "json_patch"), i, c) {
    lf_stamp s = stamp_of(json_object_get(c, "stamp"));
    const json_t *in = json_object_get(c, "in");
    json_t *out =
        lf_stamp_json_patch(json_is_null(in) ? NULL : in,
                            json_is_true(json_object_get(c, "has_annotations")), &s, NULL);
    if (json_is_false(json_object_get(c, "ok"))) {
      if (out != NULL) {
        fail_msg("%s: accepted", json_string_value(json_object_get(c, "name")));
      }
      continue;
    }
    if (out == NULL) {
      fail_msg("%s: refused", json_string_value(json_object_get(c, "name")));
    }
    expect_json(out, json_object_get(c, "out"), json_string_value(json_object_get(c, "name")));
    json_decref(out);
  }
  json_decref(v);
}

static void test_stamp_object(void **state) {
  (void)state;
  lf_stamp s = {.term = 2};
  lf_error err;
  strcpy(s.lease_uid, "u");
  strcpy(s.holder, "h");
  json_t *o = json_pack("{s:s}", "kind", "ConfigMap");
  assert_int_equal(lf_stamp_object(o, &s, &err), LF_OK);
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_object_get(o, "metadata"), "annotations"), LF_ANNOTATION_STAMP)),
      "lf1:2:u:h");
  json_decref(o);

  o = json_pack("{s:s}", "metadata", "oops");
  assert_int_equal(lf_stamp_object(o, &s, &err), LF_EINVAL);
  json_decref(o);
  o = json_array();
  assert_int_equal(lf_stamp_object(o, &s, &err), LF_EINVAL);
  json_decref(o);

  lf_stamp bad = {.term = -1};
  o = json_object();
  assert_int_not_equal(lf_stamp_object(o, &bad, &err), LF_OK);
  json_decref(o);
  assert_null(lf_stamp_merge_patch(NULL, &bad, &err));
  assert_null(lf_stamp_json_patch(NULL, true, &bad, &err));
  json_t *arr = json_array();
  assert_null(lf_stamp_merge_patch(arr, &s, &err));
  json_decref(arr);
  json_t *objp = json_object();
  assert_null(lf_stamp_json_patch(objp, true, &s, &err));
  json_decref(objp);
}

static void test_delete_options(void **state) {
  (void)state;
  lf_error err;
  json_t *o = lf_delete_options("123", &err);
  assert_non_null(o);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(o, "preconditions"), "resourceVersion")),
      "123");
  assert_string_equal(json_string_value(json_object_get(o, "kind")), "DeleteOptions");
  json_decref(o);
  assert_null(lf_delete_options("", &err));
  assert_null(lf_delete_options(NULL, &err));
}

/* The per-request stamp as a query parameter: the fieldManager form of each
 * format vector, percent-encoded, decoding back to exactly that value. */
static void test_stamp_query(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "format"), i, c) {
    const char *uid = json_string_value(json_object_get(c, "lease_uid"));
    const char *holder = json_string_value(json_object_get(c, "holder"));
    char q[3 * LF_FIELD_MANAGER_MAX + 16], decoded[LF_FIELD_MANAGER_MAX + 1];
    lf_stamp s = {.term = (int32_t)json_integer_value(json_object_get(c, "term"))};
    lf_error err = {0};
    size_t n = 0;
    if (!json_is_true(json_object_get(c, "ok"))) {
      continue;
    }
    snprintf(s.lease_uid, sizeof(s.lease_uid), "%s", uid);
    snprintf(s.holder, sizeof(s.holder), "%s", holder);
    assert_int_equal(lf_stamp_query(&s, q, sizeof(q), &err), LF_OK);
    assert_int_equal(strncmp(q, "fieldManager=", 13), 0);
    assert_null(strpbrk(q + 13, ":#&=+ "));
    for (const char *p = q + 13; *p != '\0'; p++) {
      unsigned int byte;
      if (*p == '%') {
        assert_int_equal(sscanf(p + 1, "%2X", &byte), 1);
        decoded[n++] = (char)byte;
        p += 2;
      } else {
        decoded[n++] = *p;
      }
    }
    decoded[n] = '\0';
    assert_string_equal(decoded, json_string_value(json_object_get(c, "field_manager")));
  }
  lf_stamp s = {.term = 1};
  char small[20];
  strcpy(s.lease_uid, "u");
  strcpy(s.holder, "h");
  assert_int_equal(lf_stamp_query(&s, small, sizeof(small), NULL), LF_ETOOBIG);
  json_decref(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merge_patch_vectors), cmocka_unit_test(test_json_patch_vectors),
      cmocka_unit_test(test_stamp_object),        cmocka_unit_test(test_delete_options),
      cmocka_unit_test(test_stamp_query),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
