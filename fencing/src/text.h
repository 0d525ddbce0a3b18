/*
 * text: small string utilities shared inside the fencing library — error
 * reporting, bounded string building, and the character classes the protocol
 * uses. Internal: prefix lf__, not installed.
 */
#ifndef LF_TEXT_H
#define LF_TEXT_H

#include <leasefence/fencing.h>
#include <stdarg.h>

/* Writes `code` and the formatted text into `err` (if not NULL) and returns
 * `code`, so callers can write `rc = lf__fail(err, LF_EINVAL, ...)`. */
int lf__fail(lf_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A bounded string builder over a caller's buffer. Text past the end is
 * dropped and `truncated` set; the buffer always stays NUL-terminated and is
 * cut at a UTF-8 character boundary, never inside a character. */
typedef struct lf__sbuf {
  char *p;
  size_t size; /* Capacity of p including the NUL; at least 1. */
  size_t len;
  bool truncated;
} lf__sbuf;

void lf__sbuf_init(lf__sbuf *b, char *p, size_t size);
void lf__sbuf_printf(lf__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as a double-quoted string, at most `max` bytes of it (then "...")
 * and with control characters shown as '?', so a message never carries
 * terminal escapes from a request into a log or a kubectl error. */
void lf__sbuf_quote(lf__sbuf *b, const char *s, size_t max);

/* Cuts `len` down so that p[0..len) does not end inside a UTF-8 sequence. */
size_t lf__utf8_floor(const char *p, size_t len);

/* True when none of the `len` bytes is a control character (< 0x20, 0x7f). */
bool lf__printable(const char *s, size_t len);
/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes. */
bool lf__dns_label(const char *s, size_t len);
/* DNS-1123 subdomain as Kubernetes checks it: parts of the label pattern
 * joined by '.', at most 253 bytes in all (no bound on each part). */
bool lf__dns_subdomain(const char *s, size_t len);

#endif /* LF_TEXT_H */
