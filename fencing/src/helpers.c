/*
 * helpers: put a stamp where docs/protocol.md wants it — on an object, in a
 * merge patch, in a JSON patch — and build the DeleteOptions of a fenced
 * delete. For controllers written in C; the Go helper mirrors these.
 */
#include "text.h"

#include <string.h>

/* Returns a new JSON string holding the formatted stamp, or NULL. */
static json_t *stamp_string(const lf_stamp *stamp, lf_error *err) {
  char buf[LF_STAMP_MAX + 1];
  json_t *v;
  if (lf_stamp_format(stamp, buf, sizeof(buf), err) != LF_OK) {
    return NULL;
  }
  v = json_string(buf);
  if (v == NULL) {
    lf__fail(err, LF_ENOMEM, "out of memory");
  }
  return v;
}

/* Returns the object member `key` of `parent`, creating it when absent.
 * Borrowed reference; NULL (with err set) when `key` holds a non-object. */
static json_t *child_object(json_t *parent, const char *key, lf_error *err) {
  json_t *v = json_object_get(parent, key);
  if (v == NULL || json_is_null(v)) {
    v = json_object();
    if (v == NULL || json_object_set_new(parent, key, v) != 0) {
      lf__fail(err, LF_ENOMEM, "out of memory");
      return NULL;
    }
    return v;
  }
  if (!json_is_object(v)) {
    lf__fail(err, LF_EINVAL, "%s is not a JSON object", key);
    return NULL;
  }
  return v;
}

int lf_stamp_object(json_t *object, const lf_stamp *stamp, lf_error *err) {
  json_t *meta, *ann, *v;
  if (!json_is_object(object)) {
    return lf__fail(err, LF_EINVAL, "only a JSON object can be stamped");
  }
  meta = child_object(object, "metadata", err);
  ann = meta != NULL ? child_object(meta, "annotations", err) : NULL;
  if (ann == NULL) {
    return err != NULL ? err->code : LF_EINVAL;
  }
  v = stamp_string(stamp, err);
  if (v == NULL) {
    return err != NULL ? err->code : LF_EINVAL;
  }
  if (json_object_set_new(ann, LF_ANNOTATION_STAMP, v) != 0) {
    return lf__fail(err, LF_ENOMEM, "out of memory");
  }
  return LF_OK;
}

json_t *lf_stamp_merge_patch(const json_t *patch, const lf_stamp *stamp, lf_error *err) {
  json_t *out = NULL;
  if (patch != NULL && !json_is_object(patch)) {
    lf__fail(err, LF_EINVAL, "a merge patch must be a JSON object");
    return NULL;
  }
  /* In a merge patch, null (or any non-object) at metadata or annotations
   * deletes every annotation, the protection included. Stamping that patch
   * would silently turn it into "keep them all", so it is refused. */
  const json_t *meta = patch != NULL ? json_object_get(patch, "metadata") : NULL;
  const json_t *ann = json_object_get(meta, "annotations");
  if ((meta != NULL && !json_is_object(meta)) || (ann != NULL && !json_is_object(ann))) {
    lf__fail(err, LF_EINVAL,
             "the merge patch sets metadata or metadata.annotations to something other than an "
             "object (null deletes every annotation); it cannot also carry the stamp");
    return NULL;
  }
  out = patch != NULL ? json_deep_copy(patch) : json_object();
  if (out == NULL) {
    lf__fail(err, LF_ENOMEM, "out of memory");
    return NULL;
  }
  if (lf_stamp_object(out, stamp, err) != LF_OK) {
    json_decref(out);
    return NULL;
  }
  return out;
}

json_t *lf_stamp_json_patch(const json_t *ops, bool has_annotations, const lf_stamp *stamp,
                            lf_error *err) {
  json_t *out = NULL, *op = NULL, *value = NULL;

  if (ops != NULL && !json_is_array(ops)) {
    lf__fail(err, LF_EINVAL, "a JSON patch must be a JSON array");
    return NULL;
  }
  value = stamp_string(stamp, err);
  if (value == NULL) {
    goto out;
  }
  if (!has_annotations) {
    /* JSON patch cannot add a member under a parent that does not exist, so
     * the whole annotations map is added. */
    json_t *map = json_object();
    if (map == NULL) {
      goto oom;
    }
    /* json_object_set_new takes `value` even when it fails. */
    if (json_object_set_new(map, LF_ANNOTATION_STAMP, value) != 0) {
      json_decref(map);
      value = NULL;
      goto oom;
    }
    value = map;
  }
  /* "/" inside a key is written "~1" (RFC 6901). */
  op = json_pack("{s:s, s:s, s:O}", "op", "add", "path",
                 has_annotations ? "/metadata/annotations/leasefence.io~1stamp"
                                 : "/metadata/annotations",
                 "value", value);
  out = ops != NULL ? json_deep_copy(ops) : json_array();
  if (op == NULL || out == NULL || json_array_append(out, op) != 0) {
    json_decref(out);
    out = NULL;
    goto oom;
  }
  goto out;

oom:
  lf__fail(err, LF_ENOMEM, "out of memory");
out:
  json_decref(op);
  json_decref(value);
  return out;
}

json_t *lf_delete_options(const char *resource_version, lf_error *err) {
  json_t *out;
  if (resource_version == NULL || resource_version[0] == '\0' ||
      strlen(resource_version) > LF_RESOURCE_VERSION_MAX) {
    lf__fail(err, LF_EINVAL, "a fenced delete needs the resourceVersion the stamp was written at");
    return NULL;
  }
  out = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions",
                  "preconditions", "resourceVersion", resource_version);
  if (out == NULL) {
    lf__fail(err, LF_ENOMEM, "out of memory");
  }
  return out;
}

int lf_stamp_query(const lf_stamp *stamp, char *buf, size_t size, lf_error *err) {
  static const char hex[] = "0123456789ABCDEF";
  char fm[LF_FIELD_MANAGER_MAX + 1];
  lf__sbuf b;
  int rc = lf_stamp_format_field_manager(stamp, fm, sizeof(fm), err);
  if (rc != LF_OK) {
    return rc;
  }
  lf__sbuf_init(&b, buf, size);
  lf__sbuf_printf(&b, "fieldManager=");
  /* Percent-encoding as RFC 3986 wants for a query value: unreserved
   * characters as they are, every other byte as %XX (the ':' and '#' of a
   * stamp included: '#' would otherwise end the URL's query). */
  for (const char *p = fm; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      lf__sbuf_printf(&b, "%c", c);
    } else {
      lf__sbuf_printf(&b, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
  }
  if (b.truncated) {
    return lf__fail(err, LF_ETOOBIG, "the buffer of %zu bytes cannot hold the query", size);
  }
  return LF_OK;
}
