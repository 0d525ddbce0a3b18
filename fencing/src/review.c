/*
 * review: reads an admission.k8s.io/v1 AdmissionReview into an lf_request.
 * Every field is type-checked and every error names the field, because the
 * message goes back to whoever sent the review. Nothing is copied: the
 * request points into the JSON.
 */
#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Reads the optional string member `key`; absent or null leaves *dst as
 * `dflt`. Strings with an embedded NUL are refused: the rest of the program
 * treats them as C strings. */
static int opt_string(const json_t *obj, const char *key, const char *dflt, size_t max,
                      const char **dst, const char *path, lf_error *err) {
  const json_t *v = json_object_get(obj, key);
  *dst = dflt;
  if (v == NULL || json_is_null(v)) {
    return LF_OK;
  }
  if (!json_is_string(v)) {
    return lf__fail(err, LF_EINVAL, "%s must be a string", path);
  }
  size_t len = json_string_length(v);
  if (len > max) {
    return lf__fail(err, LF_ETOOBIG, "%s is %zu bytes; at most %zu are accepted", path, len, max);
  }
  if (strlen(json_string_value(v)) != len) {
    return lf__fail(err, LF_EINVAL, "%s contains a NUL character", path);
  }
  *dst = json_string_value(v);
  return LF_OK;
}

/* Is `v` a string equal to `want`, all of it? (A C comparison would stop at
 * an embedded NUL.) */
static bool string_is(const json_t *v, const char *want) {
  size_t n = strlen(want);
  return json_is_string(v) && json_string_length(v) == n &&
         memcmp(json_string_value(v), want, n) == 0;
}

/* The object must be absent, null or a JSON object. */
static int opt_object(const json_t *obj, const char *key, const json_t **dst, const char *path,
                      lf_error *err) {
  const json_t *v = json_object_get(obj, key);
  *dst = NULL;
  if (v == NULL || json_is_null(v)) {
    return LF_OK;
  }
  if (!json_is_object(v)) {
    return lf__fail(err, LF_EINVAL, "%s must be an object", path);
  }
  *dst = v;
  return LF_OK;
}

/* Reads one of fencing's annotations: absent or null leaves *dst NULL. Any
 * string is taken, with its length: a NUL in it (legal in Kubernetes) makes
 * the value malformed where the decision reads it, not the review. Exempt
 * writers, such as the namespace controller deleting the object, never have
 * it read (docs/protocol.md, section 5.1). */
static int annotation(const json_t *ann, const char *key, const char **dst, size_t *len,
                      const char *path, lf_error *err) {
  const json_t *v = json_object_get(ann, key);
  *dst = NULL;
  *len = 0;
  if (v == NULL || json_is_null(v)) {
    return LF_OK;
  }
  if (!json_is_string(v)) {
    return lf__fail(err, LF_EINVAL, "%s must be a string", path);
  }
  *dst = json_string_value(v);
  *len = json_string_length(v);
  return LF_OK;
}

/* Names and values are far below this; it only stops absurd inputs early. */
#define FIELD_MAX 4096

static int read_object_meta(const json_t *request, const char *key, lf_object_meta *out,
                            lf_error *err) {
  const json_t *obj, *meta, *ann, *v;
  char path[64];
  int rc;

  memset(out, 0, sizeof(*out));
  snprintf(path, sizeof(path), "request.%s", key);
  rc = opt_object(request, key, &obj, path, err);
  if (rc != LF_OK || obj == NULL) {
    return rc;
  }
  out->present = true;
  snprintf(path, sizeof(path), "request.%s.metadata", key);
  rc = opt_object(obj, "metadata", &meta, path, err);
  if (rc != LF_OK || meta == NULL) {
    return rc;
  }
  snprintf(path, sizeof(path), "request.%s.metadata.namespace", key);
  rc = opt_string(meta, "namespace", NULL, FIELD_MAX, &out->ns, path, err);
  if (rc != LF_OK) {
    return rc;
  }
  v = json_object_get(meta, "deletionTimestamp");
  out->deleting = v != NULL && !json_is_null(v);
  snprintf(path, sizeof(path), "request.%s.metadata.annotations", key);
  rc = opt_object(meta, "annotations", &ann, path, err);
  if (rc != LF_OK || ann == NULL) {
    return rc;
  }
  /* No length bound here: an over-long value is malformed, and the decision
   * says so, but only to writers that are not exempt (docs/protocol.md,
   * section 5.1). The review's own bound limits it. */
  snprintf(path, sizeof(path), "request.%s annotation " LF_ANNOTATION_LEASE, key);
  rc = annotation(ann, LF_ANNOTATION_LEASE, &out->lease_annotation, &out->lease_annotation_len,
                  path, err);
  if (rc != LF_OK) {
    return rc;
  }
  snprintf(path, sizeof(path), "request.%s annotation " LF_ANNOTATION_STAMP, key);
  return annotation(ann, LF_ANNOTATION_STAMP, &out->stamp_annotation, &out->stamp_annotation_len,
                    path, err);
}

/* Reads userInfo.extra[key]: absent, or an array of at most one DNS-1123
 * subdomain (pod and node names are). */
static int extra_name(const json_t *extra, const char *key, const char *what, const char **dst,
                      lf_error *err) {
  const json_t *arr = json_object_get(extra, key);
  const json_t *p;
  if (arr == NULL || json_is_null(arr)) {
    return LF_OK;
  }
  if (!json_is_array(arr) || json_array_size(arr) > 1) {
    return lf__fail(err, LF_EINVAL,
                    "request.userInfo.extra[\"%s\"] must be an array of at most one %s name", key,
                    what);
  }
  if (json_array_size(arr) == 0) {
    return LF_OK;
  }
  p = json_array_get(arr, 0);
  if (!json_is_string(p) || json_string_length(p) == 0 ||
      !lf__dns_subdomain(json_string_value(p), json_string_length(p))) {
    return lf__fail(err, LF_EINVAL, "request.userInfo.extra[\"%s\"][0] must be a %s name", key,
                    what);
  }
  *dst = json_string_value(p);
  return LF_OK;
}

/* An object's namespace, when it names one, must be the request's: a bare
 * Lease name in the protection annotation is resolved against it, and the
 * API server makes the two equal before admission (a cluster-scoped
 * request's objects have none). A review where they differ did not come
 * from the API server as it is, so it is refused rather than decided on
 * either namespace. */
static int check_namespace(const lf_request *req, const lf_object_meta *meta, const char *key,
                           lf_error *err) {
  if (meta->ns == NULL || meta->ns[0] == '\0' || strcmp(meta->ns, req->ns) == 0) {
    return LF_OK;
  }
  return lf__fail(err, LF_EINVAL,
                  "request.%s.metadata.namespace is \"%.63s\" but request.namespace is \"%.63s\"; "
                  "they must be the same",
                  key, meta->ns, req->ns);
}

static int read_user(const json_t *request, lf_request *out, lf_error *err) {
  const json_t *user, *groups, *extra;
  int rc;

  out->username = ""; /* Requests without userInfo come only from tests and fuzzers. */
  rc = opt_object(request, "userInfo", &user, "request.userInfo", err);
  if (rc != LF_OK || user == NULL) {
    return rc;
  }
  rc =
      opt_string(user, "username", "", FIELD_MAX, &out->username, "request.userInfo.username", err);
  if (rc != LF_OK) {
    return rc;
  }
  groups = json_object_get(user, "groups");
  if (groups != NULL && !json_is_null(groups)) {
    if (!json_is_array(groups)) {
      return lf__fail(err, LF_EINVAL, "request.userInfo.groups must be an array of strings");
    }
    if (json_array_size(groups) > LF_GROUPS_MAX) {
      return lf__fail(err, LF_ETOOBIG, "request.userInfo.groups has %zu entries; at most %d",
                      json_array_size(groups), LF_GROUPS_MAX);
    }
    for (size_t i = 0; i < json_array_size(groups); i++) {
      const json_t *g = json_array_get(groups, i);
      if (!json_is_string(g)) {
        return lf__fail(err, LF_EINVAL, "request.userInfo.groups[%zu] must be a string", i);
      }
      /* Groups are only compared with --exempt-group values, which cannot
       * hold a NUL: a group that does (an authenticator may send any string)
       * exempts nobody, and is left out rather than refused. */
      if (strlen(json_string_value(g)) == json_string_length(g)) {
        out->groups[out->n_groups++] = json_string_value(g);
      }
    }
  }
  rc = opt_object(user, "extra", &extra, "request.userInfo.extra", err);
  if (rc != LF_OK || extra == NULL) {
    return rc;
  }
  rc = extra_name(extra, LF_EXTRA_POD_NAME, "pod", &out->pod_name, err);
  if (rc == LF_OK) {
    rc = extra_name(extra, LF_EXTRA_NODE_NAME, "node", &out->node_name, err);
  }
  return rc;
}

static int read_operation(const json_t *request, lf_request *out, lf_error *err) {
  static const struct {
    const char *name;
    lf_operation op;
  } ops[] = {{"CREATE", LF_OP_CREATE},
             {"UPDATE", LF_OP_UPDATE},
             {"DELETE", LF_OP_DELETE},
             {"CONNECT", LF_OP_CONNECT}};
  const json_t *v = json_object_get(request, "operation");
  if (!json_is_string(v)) {
    return lf__fail(err, LF_EINVAL, "request.operation must be a string");
  }
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    if (string_is(v, ops[i].name)) {
      out->op = ops[i].op;
      return LF_OK;
    }
  }
  return lf__fail(err, LF_EINVAL, "request.operation must be CREATE, UPDATE, DELETE or CONNECT");
}

const char *lf_operation_name(lf_operation op) {
  switch (op) {
  case LF_OP_CREATE:
    return "CREATE";
  case LF_OP_UPDATE:
    return "UPDATE";
  case LF_OP_DELETE:
    return "DELETE";
  case LF_OP_CONNECT:
    return "CONNECT";
  }
  return "unknown";
}

int lf_request_from_review(const json_t *review, lf_request *out, lf_error *err) {
  const json_t *v, *request, *kind, *resource, *options;
  int rc;

  memset(out, 0, sizeof(*out));
  if (!json_is_object(review)) {
    return lf__fail(err, LF_EINVAL, "an AdmissionReview must be a JSON object");
  }
  v = json_object_get(review, "apiVersion");
  if (!string_is(v, "admission.k8s.io/v1")) {
    return lf__fail(err, LF_EINVAL,
                    "apiVersion must be admission.k8s.io/v1 (only v1 is served; list v1 in the "
                    "webhook's admissionReviewVersions)");
  }
  v = json_object_get(review, "kind");
  if (!string_is(v, "AdmissionReview")) {
    return lf__fail(err, LF_EINVAL, "kind must be AdmissionReview");
  }
  request = json_object_get(review, "request");
  if (!json_is_object(request)) {
    return lf__fail(err, LF_EINVAL, "the AdmissionReview has no request object");
  }
  rc = opt_string(request, "uid", NULL, LF_UID_MAX, &out->uid, "request.uid", err);
  if (rc != LF_OK) {
    return rc;
  }
  if (out->uid == NULL || out->uid[0] == '\0') {
    return lf__fail(err, LF_EINVAL, "request.uid is missing");
  }
  rc = read_operation(request, out, err);
  if (rc != LF_OK) {
    return rc;
  }

  rc = opt_object(request, "kind", &kind, "request.kind", err);
  if (rc == LF_OK) {
    rc = opt_string(kind, "kind", "", FIELD_MAX, &out->kind, "request.kind.kind", err);
  }
  if (rc == LF_OK) {
    rc = opt_object(request, "resource", &resource, "request.resource", err);
  }
  if (rc == LF_OK) {
    rc = opt_string(resource, "group", "", FIELD_MAX, &out->group, "request.resource.group", err);
  }
  if (rc == LF_OK) {
    rc = opt_string(resource, "version", "", FIELD_MAX, &out->version, "request.resource.version",
                    err);
  }
  if (rc == LF_OK) {
    rc = opt_string(resource, "resource", "", FIELD_MAX, &out->resource,
                    "request.resource.resource", err);
  }
  if (rc == LF_OK) {
    rc = opt_string(request, "subResource", "", FIELD_MAX, &out->subresource, "request.subResource",
                    err);
  }
  if (rc == LF_OK) {
    rc = opt_string(request, "namespace", "", FIELD_MAX, &out->ns, "request.namespace", err);
  }
  if (rc == LF_OK) {
    rc = opt_string(request, "name", "", FIELD_MAX, &out->name, "request.name", err);
  }
  if (rc != LF_OK) {
    return rc;
  }

  v = json_object_get(request, "dryRun");
  if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
    return lf__fail(err, LF_EINVAL, "request.dryRun must be a boolean");
  }
  out->dry_run = json_is_true(v);

  rc = opt_object(request, "options", &options, "request.options", err);
  if (rc == LF_OK && options != NULL) {
    rc = opt_string(options, "fieldManager", NULL, LF_FIELD_MANAGER_MAX, &out->field_manager,
                    "request.options.fieldManager", err);
  }
  if (rc == LF_OK) {
    rc = read_user(request, out, err);
  }
  if (rc == LF_OK) {
    rc = read_object_meta(request, "object", &out->object, err);
  }
  if (rc == LF_OK) {
    rc = read_object_meta(request, "oldObject", &out->old_object, err);
  }
  if (rc == LF_OK) {
    rc = check_namespace(out, &out->object, "object", err);
  }
  if (rc == LF_OK) {
    rc = check_namespace(out, &out->old_object, "oldObject", err);
  }
  return rc;
}
