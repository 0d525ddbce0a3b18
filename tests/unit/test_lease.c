/* Protection annotations (shared vectors) and Lease parsing. */
#include "testutil.h"

#include <string.h>

static void test_lease_ref_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  json_array_foreach(json_object_get(v, "lease_ref"), i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *text = json_object_get(c, "text");
    lf_lease_ref ref;
    lf_error err = {0};
    int rc = lf_lease_ref_parse(json_string_value(text), json_string_length(text),
                                json_string_value(json_object_get(c, "object_ns")), &ref, &err);
    if (json_is_true(json_object_get(c, "ok"))) {
      if (rc != LF_OK) {
        fail_msg("%s: rejected: %s", name, err.text);
      }
      assert_string_equal(ref.ns, json_string_value(json_object_get(c, "ns")));
      assert_string_equal(ref.name, json_string_value(json_object_get(c, "name_out")));
    } else if (rc == LF_OK) {
      fail_msg("%s: accepted", name);
    }
  }
  json_decref(v);
}

/* lf_protection_parse against the shared vectors, under both webhook
 * defaults: a value that names a mode gets that mode, one that names none
 * gets the default. */
static void test_protection_vectors(void **state) {
  (void)state;
  json_t *v = lft_load_vectors("stamps.json");
  const json_t *c;
  size_t i;
  size_t n = 0;
  static const lf_fencing defaults[] = {LF_FENCING_STAMP, LF_FENCING_IDENTITY};
  json_array_foreach(json_object_get(v, "protection"), i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *text = json_object_get(c, "text");
    const char *named = json_string_value(json_object_get(c, "fencing"));
    for (size_t d = 0; d < sizeof(defaults) / sizeof(defaults[0]); d++) {
      lf_lease_ref ref;
      lf_fencing mode;
      lf_error err = {0};
      int rc = lf_protection_parse(json_string_value(text), json_string_length(text),
                                   json_string_value(json_object_get(c, "object_ns")), defaults[d],
                                   &ref, &mode, &err);
      if (!json_is_true(json_object_get(c, "ok"))) {
        if (rc == LF_OK) {
          fail_msg("%s: accepted", name);
        }
        assert_non_null(strstr(err.text, LF_ANNOTATION_LEASE));
        continue;
      }
      if (rc != LF_OK) {
        fail_msg("%s: rejected: %s", name, err.text);
      }
      assert_string_equal(ref.ns, json_string_value(json_object_get(c, "ns")));
      assert_string_equal(ref.name, json_string_value(json_object_get(c, "name_out")));
      assert_string_equal(lf_fencing_name(mode),
                          named[0] != '\0' ? named : lf_fencing_name(defaults[d]));
    }
    n++;
  }
  assert_true(n > 0);
  json_decref(v);
}

static const char *const FULL =
    "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
    "\"metadata\":{\"name\":\"ctrl\",\"namespace\":\"default\",\"uid\":\"u-1\","
    "\"resourceVersion\":\"42\"},"
    "\"spec\":{\"holderIdentity\":\"pod_1\",\"leaseDurationSeconds\":15,"
    "\"acquireTime\":\"2026-01-01T00:00:00.000000Z\",\"renewTime\":\"2026-01-01T00:00:10.500000Z\","
    "\"leaseTransitions\":7}}";

static void test_parse_full(void **state) {
  (void)state;
  lf_lease l;
  lf_error err;
  assert_int_equal(lf_lease_parse(FULL, strlen(FULL), &l, &err), LF_OK);
  assert_string_equal(l.ref.ns, "default");
  assert_string_equal(l.ref.name, "ctrl");
  assert_string_equal(l.uid, "u-1");
  assert_string_equal(l.resource_version, "42");
  assert_string_equal(l.holder, "pod_1");
  assert_int_equal(l.duration_s, 15);
  assert_int_equal(l.transitions, 7);
  assert_int_equal(l.renew_us - l.acquire_us, 10500000);
}

/* A released Lease (client-go ReleaseOnCancel) and one never held. */
static void test_parse_released_and_empty(void **state) {
  (void)state;
  const char *released =
      "{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
      "\"spec\":{\"holderIdentity\":\"\",\"leaseDurationSeconds\":1,\"leaseTransitions\":3,"
      "\"renewTime\":null}}";
  const char *empty = "{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"}}";
  lf_lease l;
  assert_int_equal(lf_lease_parse(released, strlen(released), &l, NULL), LF_OK);
  assert_string_equal(l.holder, "");
  assert_int_equal(l.transitions, 3);
  assert_true(l.renew_us == LF_TIME_NONE);
  assert_int_equal(lf_lease_parse(empty, strlen(empty), &l, NULL), LF_OK);
  assert_int_equal(l.duration_s, 0);
  assert_true(l.acquire_us == LF_TIME_NONE);
}

/* "\u0000" is legal in any string the API server keeps: in a field the
 * Lease's reading ignores it changes nothing; in one it reads (the holder)
 * the Lease is refused, naming the field. */
static void test_parse_nul(void **state) {
  (void)state;
  const char *in_annotation =
      "{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\","
      "\"annotations\":{\"example.com/note\":\"a\\u0000b\"}},"
      "\"spec\":{\"holderIdentity\":\"pod_1\",\"leaseDurationSeconds\":15}}";
  const char *in_holder = "{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
                          "\"spec\":{\"holderIdentity\":\"pod\\u0000_1\"}}";
  lf_lease l;
  lf_error err = {0};
  assert_int_equal(lf_lease_parse(in_annotation, strlen(in_annotation), &l, &err), LF_OK);
  assert_string_equal(l.holder, "pod_1");
  assert_int_equal(lf_lease_parse(in_holder, strlen(in_holder), &l, &err), LF_EINVAL);
  assert_non_null(strstr(err.text, "holderIdentity"));
}

static void test_parse_errors(void **state) {
  (void)state;
  static const struct {
    const char *json;
    int rc;
    const char *needle;
  } cases[] = {
      {"", LF_EINVAL, "not valid JSON"},
      {"[]", LF_EINVAL, "JSON object"},
      {"{\"kind\":\"Pod\",\"metadata\":{}}", LF_EINVAL, "kind"},
      {"{\"apiVersion\":\"v1\"}", LF_EINVAL, "apiVersion"},
      {"{}", LF_EINVAL, "metadata"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\"}}", LF_EINVAL, "uid"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"\"}}", LF_EINVAL, "uid"},
      {"{\"metadata\":{\"name\":1,\"namespace\":\"d\",\"uid\":\"u\"}}", LF_EINVAL, "metadata.name"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},\"spec\":[]}", LF_EINVAL,
       "spec"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
       "\"spec\":{\"leaseTransitions\":-1}}",
       LF_EINVAL, "leaseTransitions"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
       "\"spec\":{\"leaseTransitions\":2147483648}}",
       LF_EINVAL, "leaseTransitions"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
       "\"spec\":{\"leaseDurationSeconds\":\"15\"}}",
       LF_EINVAL, "leaseDurationSeconds"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
       "\"spec\":{\"renewTime\":\"yesterday\"}}",
       LF_EINVAL, "renewTime"},
      {"{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
       "\"spec\":{\"holderIdentity\":\"a\\u0001b\"}}",
       LF_EINVAL, "control"},
      {"{\"metadata\":{\"name\":\"c\",\"name\":\"e\",\"namespace\":\"d\",\"uid\":\"u\"}}",
       LF_EINVAL, "duplicate"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    lf_lease l;
    lf_error err = {0};
    int rc = lf_lease_parse(cases[i].json, strlen(cases[i].json), &l, &err);
    if (rc != cases[i].rc || strstr(err.text, cases[i].needle) == NULL) {
      fail_msg("case %zu: rc %d, \"%s\" (want \"%s\")", i, rc, err.text, cases[i].needle);
    }
  }
}

static void test_oversized(void **state) {
  (void)state;
  char holder[LF_HOLDER_MAX + 2];
  char json[1024];
  lf_lease l;
  lf_error err;
  memset(holder, 'h', sizeof(holder) - 1);
  holder[sizeof(holder) - 1] = '\0';
  snprintf(json, sizeof(json),
           "{\"metadata\":{\"name\":\"c\",\"namespace\":\"d\",\"uid\":\"u\"},"
           "\"spec\":{\"holderIdentity\":\"%s\"}}",
           holder);
  assert_int_equal(lf_lease_parse(json, strlen(json), &l, &err), LF_ETOOBIG);
  assert_non_null(strstr(err.text, "holderIdentity"));
  assert_int_equal(lf_lease_parse(json, LF_LEASE_JSON_MAX + 1, &l, &err), LF_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lease_ref_vectors), cmocka_unit_test(test_protection_vectors),
      cmocka_unit_test(test_parse_full),        cmocka_unit_test(test_parse_released_and_empty),
      cmocka_unit_test(test_parse_nul),         cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_oversized),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
