/*
 * lease: the protection annotation (which Lease guards an object) and the
 * parts of a coordination.k8s.io/v1 Lease that fencing uses.
 */
#include "text.h"

#include <string.h>

int lf_lease_ref_parse(const char *text, size_t len, const char *object_ns, lf_lease_ref *out,
                       lf_error *err) {
  if (text == NULL || len == 0) {
    return lf__fail(err, LF_EINVAL, "the " LF_ANNOTATION_LEASE " annotation is empty");
  }
  if (len > LF_ANNOTATION_MAX) {
    return lf__fail(err, LF_ETOOBIG,
                    "the " LF_ANNOTATION_LEASE " annotation is %zu bytes; at most %d", len,
                    LF_ANNOTATION_MAX);
  }
  const char *slash = memchr(text, '/', len);
  const char *name = text;
  size_t name_len = len;
  const char *ns = object_ns;
  size_t ns_len = object_ns != NULL ? strlen(object_ns) : 0;

  if (slash != NULL) {
    ns = text;
    ns_len = (size_t)(slash - text);
    name = slash + 1;
    name_len = len - ns_len - 1;
  } else if (ns_len == 0) {
    return lf__fail(err, LF_EINVAL,
                    "the " LF_ANNOTATION_LEASE " annotation of a cluster-scoped object must name "
                    "the Lease as <namespace>/<name>");
  }
  if (!lf__dns_label(ns, ns_len)) {
    return lf__fail(
        err, LF_EINVAL,
        "the " LF_ANNOTATION_LEASE " annotation must be <name> or <namespace>/<name>; "
        "the namespace is not a valid name (lowercase letters, digits and '-', at most 63)");
  }
  if (!lf__dns_subdomain(name, name_len)) {
    return lf__fail(
        err, LF_EINVAL,
        "the " LF_ANNOTATION_LEASE " annotation must be <name> or <namespace>/<name>; "
        "the Lease name is not a valid name (lowercase letters, digits, '-' and '.', at "
        "most 253)");
  }
  memcpy(out->ns, ns, ns_len);
  out->ns[ns_len] = '\0';
  memcpy(out->name, name, name_len);
  out->name[name_len] = '\0';
  return LF_OK;
}

const char *lf_fencing_name(lf_fencing fencing) {
  return fencing == LF_FENCING_IDENTITY ? "identity" : "stamp";
}

/* No Lease namespace or name holds a ':', so one in the annotation ends a
 * mode prefix. */
int lf_protection_parse(const char *text, size_t len, const char *object_ns,
                        lf_fencing default_fencing, lf_lease_ref *ref, lf_fencing *fencing,
                        lf_error *err) {
  static const char stamp_prefix[] = "stamp:";
  static const char identity_prefix[] = "identity:";
  lf_fencing mode = default_fencing;
  const char *colon = NULL;
  lf_lease_ref parsed;
  int rc;

  if (text != NULL && len <= LF_ANNOTATION_MAX) {
    colon = memchr(text, ':', len);
  }
  if (colon != NULL) {
    size_t n = (size_t)(colon - text) + 1;
    if (n == sizeof(stamp_prefix) - 1 && memcmp(text, stamp_prefix, n) == 0) {
      mode = LF_FENCING_STAMP;
    } else if (n == sizeof(identity_prefix) - 1 && memcmp(text, identity_prefix, n) == 0) {
      mode = LF_FENCING_IDENTITY;
    } else {
      return lf__fail(err, LF_EINVAL,
                      "the " LF_ANNOTATION_LEASE " annotation must be [stamp:|identity:]<name> "
                      "or [stamp:|identity:]<namespace>/<name>; what precedes its ':' is not a "
                      "fencing mode");
    }
    text += n;
    len -= n;
  }
  rc = lf_lease_ref_parse(text, len, object_ns, &parsed, err);
  if (rc == LF_OK) {
    *ref = parsed;
    *fencing = mode;
  }
  return rc;
}

/* Copies the string member `key` of `obj` into dst[size]. Absent or null
 * gives "" when `required` is false. */
static int get_string(const json_t *obj, const char *key, bool required, char *dst, size_t size,
                      const char *path, lf_error *err) {
  const json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) {
    if (required) {
      return lf__fail(err, LF_EINVAL, "the Lease has no %s", path);
    }
    dst[0] = '\0';
    return LF_OK;
  }
  if (!json_is_string(v)) {
    return lf__fail(err, LF_EINVAL, "the Lease's %s must be a string", path);
  }
  size_t len = json_string_length(v);
  if (len >= size) {
    return lf__fail(err, LF_ETOOBIG, "the Lease's %s is %zu bytes; at most %zu are supported", path,
                    len, size - 1);
  }
  if (memchr(json_string_value(v), '\0', len) != NULL ||
      !lf__printable(json_string_value(v), len)) {
    return lf__fail(err, LF_EINVAL, "the Lease's %s contains a control character", path);
  }
  memcpy(dst, json_string_value(v), len + 1);
  return LF_OK;
}

static int get_int32(const json_t *obj, const char *key, int32_t *dst, const char *path,
                     lf_error *err) {
  const json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) {
    *dst = 0;
    return LF_OK;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
    return lf__fail(err, LF_EINVAL, "the Lease's %s must be an integer from 0 to 2147483647", path);
  }
  *dst = (int32_t)json_integer_value(v);
  return LF_OK;
}

static int get_time(const json_t *obj, const char *key, int64_t *dst, const char *path,
                    lf_error *err) {
  const json_t *v = json_object_get(obj, key);
  lf_error terr;
  if (v == NULL || json_is_null(v)) {
    *dst = LF_TIME_NONE;
    return LF_OK;
  }
  if (!json_is_string(v) ||
      lf_time_parse(json_string_value(v), json_string_length(v), dst, &terr) != LF_OK) {
    return lf__fail(err, LF_EINVAL, "the Lease's %s must be an RFC 3339 timestamp", path);
  }
  return LF_OK;
}

int lf_lease_from_json(const json_t *lease, lf_lease *out, lf_error *err) {
  int rc = LF_OK;
  const json_t *meta, *spec, *v;

  if (!json_is_object(lease)) {
    return lf__fail(err, LF_EINVAL, "a Lease must be a JSON object");
  }
  /* apiVersion and kind are optional (some list items omit them) but must be
   * right when present: anything else is not a Lease. */
  v = json_object_get(lease, "apiVersion");
  if (v != NULL &&
      (!json_is_string(v) || strcmp(json_string_value(v), "coordination.k8s.io/v1") != 0)) {
    return lf__fail(err, LF_EINVAL, "not a Lease: apiVersion is not coordination.k8s.io/v1");
  }
  v = json_object_get(lease, "kind");
  if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), "Lease") != 0)) {
    return lf__fail(err, LF_EINVAL, "not a Lease: kind is not Lease");
  }
  meta = json_object_get(lease, "metadata");
  if (!json_is_object(meta)) {
    return lf__fail(err, LF_EINVAL, "the Lease has no metadata object");
  }
  memset(out, 0, sizeof(*out));
  rc = get_string(meta, "namespace", true, out->ref.ns, sizeof(out->ref.ns), "metadata.namespace",
                  err);
  if (rc == LF_OK) {
    rc = get_string(meta, "name", true, out->ref.name, sizeof(out->ref.name), "metadata.name", err);
  }
  if (rc == LF_OK) {
    rc = get_string(meta, "uid", true, out->uid, sizeof(out->uid), "metadata.uid", err);
  }
  if (rc == LF_OK) {
    rc = get_string(meta, "resourceVersion", false, out->resource_version,
                    sizeof(out->resource_version), "metadata.resourceVersion", err);
  }
  if (rc != LF_OK) {
    return rc;
  }
  if (out->uid[0] == '\0') {
    return lf__fail(err, LF_EINVAL, "the Lease's metadata.uid is empty");
  }

  out->acquire_us = LF_TIME_NONE;
  out->renew_us = LF_TIME_NONE;
  spec = json_object_get(lease, "spec");
  if (spec == NULL || json_is_null(spec)) {
    return LF_OK; /* A Lease nobody has held yet. */
  }
  if (!json_is_object(spec)) {
    return lf__fail(err, LF_EINVAL, "the Lease's spec must be an object");
  }
  rc = get_string(spec, "holderIdentity", false, out->holder, sizeof(out->holder),
                  "spec.holderIdentity", err);
  if (rc == LF_OK) {
    rc =
        get_int32(spec, "leaseDurationSeconds", &out->duration_s, "spec.leaseDurationSeconds", err);
  }
  if (rc == LF_OK) {
    rc = get_int32(spec, "leaseTransitions", &out->transitions, "spec.leaseTransitions", err);
  }
  if (rc == LF_OK) {
    rc = get_time(spec, "acquireTime", &out->acquire_us, "spec.acquireTime", err);
  }
  if (rc == LF_OK) {
    rc = get_time(spec, "renewTime", &out->renew_us, "spec.renewTime", err);
  }
  return rc;
}

int lf_lease_parse(const char *buf, size_t len, lf_lease *out, lf_error *err) {
  json_error_t jerr;
  json_t *root = NULL;
  int rc;

  if (buf == NULL) {
    return lf__fail(err, LF_EINVAL, "no Lease JSON given");
  }
  if (len > LF_LEASE_JSON_MAX) {
    return lf__fail(err, LF_ETOOBIG, "the Lease JSON is %zu bytes; at most %d", len,
                    LF_LEASE_JSON_MAX);
  }
  lf_json_watch_begin();
  /* JSON_ALLOW_NUL: "\u0000" is legal in any string the API server keeps (an
   * annotation of the Lease, say); the fields read here refuse it themselves. */
  root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (lf_json_watch_failed()) {
    /* The parse may have lost bytes without saying so (fencing.h). */
    json_decref(root);
    return lf__fail(err, LF_ENOMEM, "out of memory parsing the Lease");
  }
  if (root == NULL) {
    return lf__fail(err, LF_EINVAL, "the Lease is not valid JSON: %s (line %d, column %d)",
                    jerr.text, jerr.line, jerr.column);
  }
  rc = lf_lease_from_json(root, out, err);
  json_decref(root);
  return rc;
}
