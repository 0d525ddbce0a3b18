/*
 * kube_events.c: splits a watch stream into events. The API server writes
 * one JSON object per line ({"type": ..., "object": ...}); the bytes arrive
 * in whatever pieces TCP, TLS and HTTP framing make, so a line is
 * assembled across pieces, each under a hard cap, before it is parsed.
 */
#include "kube_internal.h"

#include <stdlib.h>
#include <string.h>

void lf__kube_events_init(lf__kube_events *ev, size_t max, lf_kube_watch_cb cb, void *arg) {
  memset(ev, 0, sizeof(*ev));
  ev->line.max = max;
  ev->cb = cb;
  ev->arg = arg;
}

void lf__kube_events_free(lf__kube_events *ev) {
  free(ev->line.buf);
  ev->line.buf = NULL;
  ev->line.len = 0;
  ev->line.cap = 0;
}

/* Parses one line and hands the event to the callback. False to stop. */
static bool deliver(lf__kube_events *ev, const char *p, size_t n) {
  json_t *doc = NULL;
  json_error_t jerr;
  const char *type;
  json_t *object;
  bool go_on = false;
  size_t i = 0;

  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) {
    i++;
  }
  if (i == n) {
    return true; /* A blank line carries nothing. */
  }
  lf_json_watch_begin();
  /* JSON_ALLOW_NUL: "\u0000" is legal in any string of an object; what is
   * read from it refuses a NUL where it matters. */
  doc = json_loadb(p, n, JSON_ALLOW_NUL, &jerr);
  if (lf_json_watch_failed()) {
    /* The parse may have lost bytes without saying so (fencing.h). */
    ev->rc = lf__kube_fail(&ev->err, LF_ENOMEM, "out of memory parsing a watch event");
    goto out;
  }
  if (doc == NULL) {
    ev->rc = lf__kube_fail(&ev->err, LF_EINVAL, "watch event is not JSON: %s (line %d column %d)",
                           jerr.text, jerr.line, jerr.column);
    goto out;
  }
  type = json_string_value(json_object_get(doc, "type"));
  object = json_object_get(doc, "object");
  if (type == NULL || !json_is_object(object)) {
    ev->rc = lf__kube_fail(&ev->err, LF_EINVAL,
                           "watch event is not {\"type\": string, \"object\": object}");
    goto out;
  }
  if (ev->cb(type, object, ev->arg) != 0) {
    ev->stopped = true;
    goto out;
  }
  go_on = true;

out:
  json_decref(doc);
  return go_on;
}

bool lf__kube_events_feed(lf__kube_events *ev, const char *p, size_t n) {
  size_t done = 0;

  if (ev->stopped || ev->rc != LF_OK) {
    return false;
  }
  while (done < n) {
    const char *nl = memchr(p + done, '\n', n - done);
    size_t piece = nl != NULL ? (size_t)(nl - (p + done)) : n - done;
    if (!lf__kube_buf_append(&ev->line, p + done, piece)) {
      if (ev->line.too_big) {
        ev->rc = lf__kube_fail(&ev->err, LF_ETOOBIG,
                               "a watch event is larger than %zu bytes; the stream was abandoned "
                               "(re-list to catch up)",
                               ev->line.max);
      } else {
        ev->rc = lf__kube_fail(&ev->err, LF_ENOMEM, "out of memory reading a watch event");
      }
      return false;
    }
    done += piece;
    if (nl == NULL) {
      break;
    }
    done++; /* The newline. */
    if (!deliver(ev, ev->line.buf, ev->line.len)) {
      return false;
    }
    ev->line.len = 0;
  }
  return true;
}

bool lf__kube_events_finish(lf__kube_events *ev) {
  bool ok;
  if (ev->stopped || ev->rc != LF_OK) {
    return false;
  }
  if (ev->line.len == 0) {
    return true;
  }
  ok = deliver(ev, ev->line.buf, ev->line.len);
  ev->line.len = 0;
  return ok;
}
