/*
 * kube_internal.h: helpers shared by the Kubernetes client's modules
 * (kube.c, kubeconfig.c). Not installed; prefix lf__kube_.
 */
#ifndef LEASEFENCE_KUBE_INTERNAL_H
#define LEASEFENCE_KUBE_INTERNAL_H

#include <leasefence/kube.h>

#include <stddef.h>

/* Writes a formatted sentence into `err` (may be NULL) and returns `code`. */
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

#endif /* LEASEFENCE_KUBE_INTERNAL_H */
