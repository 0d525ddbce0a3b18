/*
 * prune.h: the part of an AdmissionReview the fencing decision reads.
 *
 * A review carries the whole object twice (object and oldObject), and real
 * objects are mostly spec, status and managedFields, none of which fencing
 * looks at. jansson builds a node for every value at about 20 ns a byte, so
 * on a typical review most of the webhook's time went into parsing data it
 * then ignored. lfw_prune_review() scans the body once, checks all of it
 * (JSON syntax, UTF-8, escapes, nesting depth), and writes a smaller JSON
 * text that keeps, byte for byte:
 *   - apiVersion, kind and request at the top;
 *   - every member of request except object and oldObject, which are cut
 *     down to metadata.namespace, metadata.uid and the two leasefence.io
 *     annotations (values of any type, so type errors are still reported),
 *     and userInfo.extra, cut down to the API server's own
 *     "authentication.kubernetes.io/" keys;
 *   - any value that is not an object where an object was expected, as is.
 * The result is then parsed with json_loadb(JSON_REJECT_DUPLICATES |
 * JSON_ALLOW_NUL) as the whole body was before, so duplicate keys among the
 * members kept are still refused. The dropped parts are checked for syntax,
 * UTF-8 and escapes, but hold what any legal object may hold and jansson
 * would refuse: "\u0000" in keys, numbers of any size, nesting up to
 * LFW_PRUNE_MAX_DEPTH; duplicate keys there are not looked for (the API
 * server's encoder never writes them).
 */
#ifndef LFW_PRUNE_H
#define LFW_PRUNE_H

#include "buf.h"

#include <stddef.h>

/* Nesting limit of the whole review: above the 10 000 levels Go's JSON
 * decoder (and so the API server) lets into an object, plus the review's
 * own levels around it. jansson stops at 2048, which the parts kept never
 * come near. */
#define LFW_PRUNE_MAX_DEPTH 10240

enum {
  LFW_PRUNE_OK = 0,        /* `out` holds the projection. */
  LFW_PRUNE_INVALID = -1,  /* Not valid JSON: parse the original for the error. */
  LFW_PRUNE_AS_IS = -2,    /* Not an object at the top: use the original. */
  LFW_PRUNE_OVERFLOW = -3, /* `out` is too small (it never is at len + 64). */
};

/* Scans `in` (`len` bytes) and writes the projection into `out` (reset
 * first). Returns one of LFW_PRUNE_*. */
int lfw_prune_review(const char *in, size_t len, lfw_buf *out);

#endif /* LFW_PRUNE_H */
