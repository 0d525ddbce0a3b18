/* Reading AdmissionReviews: the fields fencing uses, and every way a review
 * can be wrong. (Decision vectors cover more invalid requests.) */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const char *const GOOD =
    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
    "\"uid\":\"abc\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":\"Deployment\"},"
    "\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"deployments\"},"
    "\"subResource\":\"status\",\"namespace\":\"ns\",\"name\":\"web\",\"operation\":\"UPDATE\","
    "\"dryRun\":true,\"options\":{\"fieldManager\":\"lf1:1:u:h\"},"
    "\"userInfo\":{\"username\":\"sa\",\"groups\":[\"g1\",\"g2\"],"
    "\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"web-1\"]}},"
    "\"object\":{\"metadata\":{\"namespace\":\"ns\",\"annotations\":{\"leasefence.io/lease\":\"l\","
    "\"leasefence.io/stamp\":\"s\",\"other\":\"x\"}}},"
    "\"oldObject\":{\"metadata\":{\"annotations\":{\"leasefence.io/stamp\":\"old\"}}}}}";

static json_t *load(const char *text) {
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (j == NULL) {
    fail_msg("bad test JSON: %s", jerr.text);
  }
  return j;
}

static void test_reads_fields(void **state) {
  (void)state;
  json_t *j = load(GOOD);
  lf_request r;
  lf_error err;
  assert_int_equal(lf_request_from_review(j, &r, &err), LF_OK);
  assert_string_equal(r.uid, "abc");
  assert_int_equal(r.op, LF_OP_UPDATE);
  assert_string_equal(r.group, "apps");
  assert_string_equal(r.version, "v1");
  assert_string_equal(r.resource, "deployments");
  assert_string_equal(r.subresource, "status");
  assert_string_equal(r.kind, "Deployment");
  assert_string_equal(r.ns, "ns");
  assert_string_equal(r.name, "web");
  assert_true(r.dry_run);
  assert_string_equal(r.field_manager, "lf1:1:u:h");
  assert_string_equal(r.username, "sa");
  assert_int_equal(r.n_groups, 2);
  assert_string_equal(r.groups[1], "g2");
  assert_string_equal(r.pod_name, "web-1");
  assert_true(r.object.present);
  assert_string_equal(r.object.lease_annotation, "l");
  assert_string_equal(r.object.stamp_annotation, "s");
  assert_true(r.old_object.present);
  assert_null(r.old_object.lease_annotation);
  assert_string_equal(r.old_object.stamp_annotation, "old");
  json_decref(j);
}

/* Each mutation of GOOD is applied through a JSON pointer-ish path and must
 * be refused with a message naming the field. */
static void test_wrong_types(void **state) {
  (void)state;
  static const struct {
    const char *parent; /* dotted path below the review, "" for the root */
    const char *key;
    const char *value; /* JSON */
    const char *needle;
  } cases[] = {
      {"", "apiVersion", "\"admission.k8s.io/v1beta1\"", "only v1"},
      {"", "apiVersion", "1", "apiVersion"},
      {"", "kind", "\"Review\"", "AdmissionReview"},
      {"", "request", "[]", "request"},
      {"request", "uid", "5", "request.uid"},
      {"request", "uid", "\"\"", "request.uid"},
      {"request", "operation", "null", "operation"},
      {"request", "kind", "\"x\"", "request.kind"},
      {"request", "resource", "[]", "request.resource"},
      {"request", "subResource", "{}", "subResource"},
      {"request", "namespace", "1", "request.namespace"},
      {"request", "name", "true", "request.name"},
      {"request", "dryRun", "\"true\"", "dryRun"},
      {"request", "options", "\"x\"", "request.options"},
      {"request.options", "fieldManager", "1", "fieldManager"},
      {"request", "userInfo", "[]", "userInfo"},
      {"request.userInfo", "username", "{}", "username"},
      {"request.userInfo", "groups", "\"g\"", "groups"},
      {"request.userInfo", "groups", "[1]", "groups[0]"},
      {"request.userInfo", "extra", "[]", "extra"},
      {"request.userInfo.extra", "authentication.kubernetes.io/pod-name", "\"p\"", "pod-name"},
      {"request.userInfo.extra", "authentication.kubernetes.io/pod-name", "[\"Bad Pod\"]",
       "pod name"},
      {"request", "object", "7", "request.object"},
      {"request.object", "metadata", "[]", "request.object.metadata"},
      {"request.object.metadata", "namespace", "1", "metadata.namespace"},
      {"request.object.metadata", "annotations", "\"a\"", "annotations"},
      {"request.object.metadata.annotations", "leasefence.io/lease", "null", NULL},
      {"request.object.metadata.annotations", "leasefence.io/lease", "[]", "leasefence.io/lease"},
      {"request", "oldObject", "\"o\"", "request.oldObject"},
      /* A NUL in a string read whole; a C comparison would stop at it. */
      {"", "apiVersion", "\"admission.k8s.io/v1\\u0000\"", "only v1"},
      {"", "kind", "\"AdmissionReview\\u0000x\"", "AdmissionReview"},
      {"request", "operation", "\"UPDATE\\u0000\"", "operation"},
      {"request.userInfo", "username", "\"system:kube-scheduler\\u0000x\"", "NUL"},
      {"request.options", "fieldManager", "\"lf1:1:u:h\\u0000\"", "NUL"},
      /* An object of another namespace than the request's. */
      {"request.object.metadata", "namespace", "\"other\"",
       "request.object.metadata.namespace is \"other\" but request.namespace is \"ns\""},
      {"request.oldObject.metadata", "namespace", "\"other\"",
       "request.oldObject.metadata.namespace is \"other\""},
      {"request", "namespace", "\"\"", "request.object.metadata.namespace is \"ns\" but"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *j = load(GOOD);
    json_t *parent = j;
    char path[128];
    snprintf(path, sizeof(path), "%s", cases[i].parent);
    /* Walk the dotted path; keys in it never contain dots except the
     * annotation names, which only appear as the last `key`. */
    for (char *tok = strtok(path, "."); tok != NULL; tok = strtok(NULL, ".")) {
      parent = json_object_get(parent, tok);
    }
    assert_non_null(parent);
    json_object_set_new(parent, cases[i].key, load(cases[i].value));
    lf_request r;
    lf_error err = {0};
    int rc = lf_request_from_review(j, &r, &err);
    if (cases[i].needle == NULL) {
      assert_int_equal(rc, LF_OK); /* null is as good as absent */
    } else if (rc == LF_OK || strstr(err.text, cases[i].needle) == NULL) {
      fail_msg("case %zu (%s.%s = %s): rc %d \"%s\"", i, cases[i].parent, cases[i].key,
               cases[i].value, rc, err.text);
    }
    json_decref(j);
  }
}

/* A group with a NUL exempts nobody and is left out; the others stay. An
 * object without a namespace takes the request's. */
static void test_odd_but_legal(void **state) {
  (void)state;
  json_t *j = load(GOOD);
  json_t *user = json_object_get(json_object_get(j, "request"), "userInfo");
  lf_request r;
  lf_error err = {0};
  json_array_insert_new(json_object_get(user, "groups"), 0, load("\"g1\\u0000x\""));
  json_object_set_new(json_object_get(user, "extra"), "example.com/x", load("[\"a\\u0000b\"]"));
  json_object_del(
      json_object_get(json_object_get(json_object_get(j, "request"), "object"), "metadata"),
      "namespace");
  assert_int_equal(lf_request_from_review(j, &r, &err), LF_OK);
  assert_int_equal(r.n_groups, 2);
  assert_string_equal(r.groups[0], "g1");
  assert_string_equal(r.groups[1], "g2");
  assert_null(r.object.ns);
  json_decref(j);
}

static void test_not_an_object(void **state) {
  (void)state;
  lf_request r;
  lf_error err;
  json_t *j = json_array();
  assert_int_equal(lf_request_from_review(j, &r, &err), LF_EINVAL);
  json_decref(j);
  assert_int_equal(lf_request_from_review(NULL, &r, &err), LF_EINVAL);
}

/* A DELETE has no object, only oldObject; CREATE has no oldObject. */
static void test_missing_objects(void **state) {
  (void)state;
  const char *del = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                    "\"request\":{\"uid\":\"u\",\"operation\":\"DELETE\",\"object\":null,"
                    "\"oldObject\":{\"metadata\":{}}}}";
  json_t *j = load(del);
  lf_request r;
  assert_int_equal(lf_request_from_review(j, &r, NULL), LF_OK);
  assert_int_equal(r.op, LF_OP_DELETE);
  assert_false(r.object.present);
  assert_true(r.old_object.present);
  assert_string_equal(r.subresource, "");
  assert_string_equal(r.username, "");
  assert_null(r.pod_name);
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_fields),    cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_odd_but_legal),   cmocka_unit_test(test_not_an_object),
      cmocka_unit_test(test_missing_objects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
