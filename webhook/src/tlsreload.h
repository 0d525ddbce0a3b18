/*
 * tlsreload.h: the serving certificate and key, reloaded when they change.
 *
 * The current pair sits behind a pointer that a mutex guards only for the
 * instant of taking a reference; each TLS session holds a reference to the
 * pair it was handshaken with until its connection closes, so replacing the
 * pair never disturbs a connection in use (RCU-style: readers keep the old
 * version alive, the last one out frees it).
 *
 * A watcher thread polls the two files' device, inode, size and mtime (stat
 * follows symlinks, which is what a Secret volume's atomic swap changes) and
 * loads the pair when any of them moved. A pair that does not load, whose
 * key does not match its certificate, or whose certificate has expired or is
 * not valid yet, is refused: the old pair stays, and the failure is logged
 * and counted. One failed attempt is retried on the next poll before it
 * counts, because tools replace the two files one after the other and the
 * first poll may see a new certificate with the old key. A certificate that
 * is only not valid yet (issued by a clock a little ahead of ours) is tried
 * again on every poll and taken once it is valid.
 */
#ifndef LFW_TLSRELOAD_H
#define LFW_TLSRELOAD_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lfw_tls lfw_tls;
typedef struct lfw_tls_pair lfw_tls_pair;

/* Loads the pair from the two PEM files (the certificate file may hold the
 * chain, leaf first). A certificate that has expired or is not valid yet is
 * refused. On failure returns -1 with a sentence in `err`, and `*out` stays
 * NULL. The paths are copied. */
int lfw_tls_open(const char *cert_file, const char *key_file, lfw_tls **out, char *err,
                 size_t err_size);

/* Whether the current certificate is valid now; when not (it expired while
 * served, nothing valid replaced it), false with a sentence in `why`. */
bool lfw_tls_ready(lfw_tls *tls, char *why, size_t why_size);

/* Starts the watcher thread, polling every `interval_us`. 0 or -1. */
int lfw_tls_watch(lfw_tls *tls, int64_t interval_us);

/* Stops the watcher and drops the current pair; pairs still referenced by
 * sessions are freed by their last lfw_tls_pair_release(). Accepts NULL and
 * clears the caller's pointer. */
void lfw_tls_close(lfw_tls **tls);

/* A new reference to the current pair; never NULL after lfw_tls_open. */
lfw_tls_pair *lfw_tls_acquire(lfw_tls *tls);

/* Drops a reference; accepts NULL. */
void lfw_tls_pair_release(lfw_tls_pair *pair);

/* The pair's certificate chain and key, in the form gnutls's certificate
 * retrieve callback returns them. Valid while the reference is held. */
void lfw_tls_pair_get(lfw_tls_pair *pair, gnutls_pcert_st **pcert, unsigned *n_pcert,
                      gnutls_privkey_t *key);

/* The leaf's serial number in hex, for logs and tests. */
const char *lfw_tls_pair_serial(const lfw_tls_pair *pair);

#endif /* LFW_TLSRELOAD_H */
