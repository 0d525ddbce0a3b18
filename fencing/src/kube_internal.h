/*
 * kube_internal.h: helpers shared by the Kubernetes client's modules
 * (kube.c, kubeconfig.c). Not installed; prefix lf__kube_.
 */
#ifndef LEASEFENCE_KUBE_INTERNAL_H
#define LEASEFENCE_KUBE_INTERNAL_H

#include <leasefence/kube.h>

#include <stddef.h>

/* Writes a formatted sentence into `err` (may be NULL) and returns `code`.
 * The Kubernetes client is a library of its own, installed beside the
 * fencing library and linked against its shared build, which exports only
 * the public header's symbols; so it cannot use the fencing library's
 * internal lf__fail and has this twin. */
int lf__kube_fail(lf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Reads the whole file at `path`, at most `max` bytes, into a new buffer
 * with a NUL appended (`*len` excludes it); the caller frees `*buf`.
 * `what` names the file in errors ("token file"). LF_EINVAL when the file
 * cannot be opened or read, LF_ETOOBIG over `max`, LF_ENOMEM.
 */
int lf__kube_read_file(const char *path, size_t max, const char *what, char **buf, size_t *len,
                       lf_error *err);

/* Decodes standard base64 (padding optional, whitespace ignored) of `len`
 * bytes into a new buffer the caller frees. LF_EINVAL on a bad character. */
int lf__kube_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                           lf_error *err);

/* Copies `len` bytes into a new NUL-terminated blob; LF_ENOMEM on failure. */
int lf__kube_blob_set(lf_kube_blob *blob, const void *data, size_t len);

/* Zeroes and frees a blob's bytes, leaving it empty. */
void lf__kube_blob_clear(lf_kube_blob *blob);

/*
 * The kubeconfig parser behind lf_kube_config_from_kubeconfig(), on `len`
 * bytes in memory (at most LF_KUBE_CONFIG_MAX); `path` names the file in
 * errors and its directory anchors relative paths. Exposed for the fuzz
 * harness; same ownership as the public function.
 */
int lf__kube_kubeconfig_parse(const char *buf, size_t len, const char *path, const char *context,
                              lf_kube_config **out, lf_error *err);

/* Frees `*s` after zeroing it (tokens), and sets it to NULL. */
void lf__kube_str_wipe(char **s);

/* A growable buffer with a hard cap set by its user before the first
 * append; zero-initialise it, then set `max`. Frees with free(buf). */
typedef struct lf__kube_buf {
  char *buf; /* NUL-terminated once anything was appended. */
  size_t len;
  size_t cap;
  size_t max;     /* Hard limit on `len`. */
  bool too_big;   /* An append was refused for the cap. */
  bool no_memory; /* An append was refused for memory. */
} lf__kube_buf;

/* Appends `n` bytes, keeping room for a NUL; false (and the flag set) when
 * the cap or memory refuses them. */
bool lf__kube_buf_append(lf__kube_buf *b, const char *p, size_t n);

/*
 * The event splitter of lf_kube_watch(), apart from curl so that tests and
 * the fuzz target can feed it bytes in any pieces. It assembles
 * newline-terminated lines of at most `max` bytes, parses each non-blank
 * one as {"type": string, "object": object} and calls `cb`.
 */
typedef struct lf__kube_events {
  lf_kube_watch_cb cb;
  void *arg;
  lf__kube_buf line; /* The event being received. */
  bool stopped;      /* The callback asked to stop. */
  int rc;            /* LF_OK, or why the stream was abandoned. */
  lf_error err;      /* The text for `rc`. */
} lf__kube_events;

void lf__kube_events_init(lf__kube_events *ev, size_t max, lf_kube_watch_cb cb, void *arg);
/* Feeds `n` stream bytes. False when the stream must end: the callback
 * stopped it (`stopped`) or it failed (`rc`, `err`). */
bool lf__kube_events_feed(lf__kube_events *ev, const char *p, size_t n);
/* At the end of the stream: delivers a last event that lacked its newline.
 * Same result as lf__kube_events_feed(). */
bool lf__kube_events_finish(lf__kube_events *ev);
void lf__kube_events_free(lf__kube_events *ev);

#endif /* LEASEFENCE_KUBE_INTERNAL_H */
