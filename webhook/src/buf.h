/*
 * buf.h: a growable byte buffer with a hard size limit, and the few JSON
 * writing helpers the webhook needs to build its responses without a DOM.
 *
 * Every lfw_buf has a maximum set when it is created (STYLE: every buffer that
 * grows from outside input has a hard limit). An append that would pass the
 * limit fails, leaves the contents as they were, and sets `overflow`, so a
 * caller may append many pieces and check once at the end.
 */
#ifndef LFW_BUF_H
#define LFW_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct lfw_buf {
  char *data; /* NUL-terminated after every successful append. */
  size_t len;
  size_t cap;    /* Allocated bytes (len + 1 <= cap when data != NULL). */
  size_t max;    /* Hard limit on len. */
  bool overflow; /* An append hit `max` (or memory ran out). */
} lfw_buf;

/* Sets up an empty buffer whose length will never pass `max`. Allocates
 * nothing until the first append. */
void lfw_buf_init(lfw_buf *b, size_t max);

/* Empties the buffer, keeping its memory for the next use. */
void lfw_buf_reset(lfw_buf *b);

/* Makes room for `n` more bytes. 0, or -1 when that passes `max` or memory
 * runs out (then `overflow` is set). */
int lfw_buf_reserve(lfw_buf *b, size_t n);

/* Appends `n` bytes. 0, or -1 as lfw_buf_reserve. */
int lfw_buf_append(lfw_buf *b, const void *p, size_t n);
int lfw_buf_puts(lfw_buf *b, const char *s);
int lfw_buf_printf(lfw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the memory; the buffer is then empty and may be used again. */
void lfw_buf_free(lfw_buf *b);

/* Appends `s` (`n` bytes) as a quoted JSON string. Control characters are
 * escaped; bytes >= 0x80 pass through (callers hand in UTF-8). */
int lfw_json_string(lfw_buf *b, const char *s, size_t n);
int lfw_json_cstring(lfw_buf *b, const char *s);

/* The length of the longest prefix of `s` (`n` bytes) that holds at most
 * `max_runes` UTF-8 characters and at most `max_bytes` bytes, cut at a
 * character boundary. */
size_t lfw_utf8_prefix(const char *s, size_t n, size_t max_runes, size_t max_bytes);

/* Clocks in microseconds. Wall time for the fencing decision, monotonic time
 * for deadlines and durations. */
static inline int64_t lfw_realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t lfw_monotonic_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif /* LFW_BUF_H */
