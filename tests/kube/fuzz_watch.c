/* Fuzz target: the watch stream splitter. The first byte picks the piece
 * size, the rest is the stream. Fed whole and fed in pieces, the stream must
 * give the same events (count and types) and the same outcome: framing must
 * never change what a watcher sees. The event cap is small here (4 KiB) so
 * the oversize path is reached. */
#include "fuzz.h"

#include "kube_internal.h"

#include <string.h>

#define EVENT_MAX 4096
#define KEEP 64

typedef struct record {
  size_t n;
  char types[KEEP][16];
} record;

static int on_event(const char *type, json_t *object, void *arg) {
  record *r = arg;
  LF_FUZZ_CHECK(type != NULL && json_is_object(object));
  if (r->n < KEEP) {
    snprintf(r->types[r->n], sizeof(r->types[0]), "%s", type);
  }
  r->n++;
  /* Stop on a type named STOP, to cover the callback's way out. */
  return strcmp(type, "STOP") == 0;
}

static int run(const char *p, size_t n, size_t piece, record *r) {
  lf__kube_events ev;
  bool go_on = true;
  int outcome;
  lf__kube_events_init(&ev, EVENT_MAX, on_event, r);
  for (size_t off = 0; go_on && off < n; off += piece) {
    go_on = lf__kube_events_feed(&ev, p + off, n - off < piece ? n - off : piece);
  }
  if (go_on) {
    go_on = lf__kube_events_finish(&ev);
  }
  LF_FUZZ_CHECK(go_on == (!ev.stopped && ev.rc == LF_OK));
  LF_FUZZ_CHECK(ev.rc == LF_OK || (ev.rc < 0 && ev.err.code == ev.rc && ev.err.text[0] != '\0'));
  outcome = ev.stopped ? 1 : ev.rc;
  lf__kube_events_free(&ev);
  return outcome;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  record whole = {0};
  record pieces = {0};
  size_t piece;
  int a;
  int b;
  if (size == 0) {
    return 0;
  }
  piece = (size_t)data[0] % 17 + 1;
  a = run((const char *)data + 1, size - 1, size, &whole);
  b = run((const char *)data + 1, size - 1, piece, &pieces);
  LF_FUZZ_CHECK(a == b);
  LF_FUZZ_CHECK(whole.n == pieces.n);
  for (size_t i = 0; i < whole.n && i < KEEP; i++) {
    LF_FUZZ_CHECK(strcmp(whole.types[i], pieces.types[i]) == 0);
  }
  return 0;
}
