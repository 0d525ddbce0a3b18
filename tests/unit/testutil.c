#include "testutil.h"

#include <stdlib.h>
#include <string.h>

json_t *lft_load_vectors(const char *name) {
  char path[1024];
  json_error_t jerr;
  snprintf(path, sizeof(path), "%s/%s", LF_VECTORS_DIR, name);
  json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
  if (root == NULL) {
    fail_msg("cannot load %s: %s (line %d)", path, jerr.text, jerr.line);
  }
  return root;
}

static size_t strings(const json_t *arr, const char **dst, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < json_array_size(arr) && n < max; i++) {
    dst[n++] = json_string_value(json_array_get(arr, i));
  }
  return n;
}

void lft_policy_from_json(lft_policy *p, const json_t *policy) {
  const json_t *v;
  lf_policy_init(&p->policy);
  if (policy == NULL) {
    return;
  }
  v = json_object_get(policy, "identity");
  if (v != NULL) {
    const char *s = json_string_value(v);
    p->policy.identity = strcmp(s, "off") == 0        ? LF_IDENTITY_OFF
                         : strcmp(s, "required") == 0 ? LF_IDENTITY_REQUIRED
                                                      : LF_IDENTITY_WHEN_PRESENT;
  }
  v = json_object_get(policy, "default_fencing");
  if (v != NULL) {
    p->policy.default_fencing =
        strcmp(json_string_value(v), "identity") == 0 ? LF_FENCING_IDENTITY : LF_FENCING_STAMP;
  }
  v = json_object_get(policy, "skew_seconds");
  if (v != NULL) {
    p->policy.skew_us = (int64_t)(json_number_value(v) * 1e6);
  }
  p->policy.admit_when_unavailable =
      json_is_true(json_object_get(policy, "admit_when_unavailable"));
  v = json_object_get(policy, "unstamped_writes");
  p->policy.deny_unstamped = v != NULL && strcmp(json_string_value(v), "deny") == 0;
  v = json_object_get(policy, "exempt_users");
  if (v != NULL) {
    p->policy.n_exempt_users = strings(v, p->users, 16);
    p->policy.exempt_users = p->users;
  }
  v = json_object_get(policy, "exempt_groups");
  if (v != NULL) {
    p->policy.n_exempt_groups = strings(v, p->groups, 16);
    p->policy.exempt_groups = p->groups;
  }
}

int64_t lft_time(const char *rfc3339) {
  int64_t us = 0;
  lf_error err;
  if (lf_time_parse(rfc3339, strlen(rfc3339), &us, &err) != LF_OK) {
    fail_msg("bad time %s: %s", rfc3339, err.text);
  }
  return us;
}

json_t *lft_review(const json_t *request) {
  return json_pack("{s:s, s:s, s:O}", "apiVersion", "admission.k8s.io/v1", "kind",
                   "AdmissionReview", "request", request);
}

json_t *lft_unstamped_update(const char *name, const char *uid) {
  return json_pack("{s:s,s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:s,s:s,s:s,s:b,"
                   "s:{s:s,s:[s],s:{s:[s]}},s:{s:{s:s,s:s,s:{s:s}}},s:{s:{s:s,s:s,s:s,s:{s:s}}}}",
                   "uid", "req-1", "kind", "group", "", "version", "v1", "kind", "ConfigMap",
                   "resource", "group", "", "version", "v1", "resource", "configmaps", "name", name,
                   "namespace", "team", "operation", "UPDATE", "dryRun", 0, "userInfo", "username",
                   "system:serviceaccount:team:ctrl", "groups", "system:serviceaccounts", "extra",
                   LF_EXTRA_POD_NAME, "ctrl-7d9f", "object", "metadata", "name", name, "namespace",
                   "team", "annotations", LF_ANNOTATION_LEASE, "ctrl", "oldObject", "metadata",
                   "name", name, "namespace", "team", "uid", uid, "annotations",
                   LF_ANNOTATION_LEASE, "ctrl");
}

int lft_contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

char *lft_splice(const char *text, const char *placeholder, const char *raw) {
  const char *at = strstr(text, placeholder);
  size_t head;
  char *res;

  assert_non_null(at);
  head = (size_t)(at - text);
  res = malloc(strlen(text) - strlen(placeholder) + strlen(raw) + 1);
  assert_non_null(res);
  memcpy(res, text, head);
  strcpy(res + head, raw);
  strcat(res, at + strlen(placeholder));
  return res;
}
