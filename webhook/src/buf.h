/*
 * buf.h: a growable byte buffer with a hard size limit, and the few JSON
 * writing helpers the webhook needs to build its responses without a DOM.
 *
 * Every lfw_buf has a maximum set when it is created (STYLE: every buffer that
 * grows from outside input has a hard limit). An append that would pass the
 * limit fails, leaves the contents as they were, and sets `overflow`, so a
 * caller may append many pieces and check once at the end.
 *
 * A buffer may also draw on an lfw_budget shared with other buffers: a hard
 * bound on the memory they hold together (request bodies across all
 * connections). Its capacity is charged as it grows, beyond a first
 * allowance of its own, and given back when it is freed.
 */
#ifndef LFW_BUF_H
#define LFW_BUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Memory shared by many buffers. `limit` bounds the bytes charged to it at
 * any time. The last `reserve` bytes of it go only to buffers that can never
 * pass `small` (their `max` is at most that), so large bodies, even while
 * they are still small, cannot starve ordinary ones. */
typedef struct lfw_budget {
  atomic_size_t used; /* Bytes charged now. */
  size_t limit;
  size_t reserve;
  size_t small;
  atomic_size_t peak;    /* Highest `used` seen. */
  atomic_ulong refusals; /* Charges refused. */
} lfw_budget;

void lfw_budget_init(lfw_budget *g, size_t limit, size_t reserve, size_t small);

/* Charges `n` bytes for a buffer that may grow to `max` bytes. 0, or -1
 * when that would pass the limit (or the reserve, for a large buffer); then
 * nothing is charged. */
int lfw_budget_take(lfw_budget *g, size_t n, size_t max);

/* Gives back `n` bytes charged before. */
void lfw_budget_give(lfw_budget *g, size_t n);

size_t lfw_budget_used(const lfw_budget *g);

typedef struct lfw_buf {
  char *data; /* NUL-terminated after every successful append. */
  size_t len;
  size_t cap;    /* Allocated bytes (len + 1 <= cap when data != NULL). */
  size_t max;    /* Hard limit on len. */
  bool overflow; /* An append hit `max` (or memory ran out). */
  /* Shared budget (NULL: none), the capacity not charged to it, and the
   * bytes charged now. */
  lfw_budget *budget;
  size_t allowance;
  size_t charged;
  bool refused; /* The last growth that failed was refused by the budget. */
} lfw_buf;

/* Sets up an empty buffer whose length will never pass `max`. Allocates
 * nothing until the first append. */
void lfw_buf_init(lfw_buf *b, size_t max);

/* The same, drawing on `g` (borrowed; it must outlive the buffer) for the
 * capacity beyond `allowance` bytes. */
void lfw_buf_init_budget(lfw_buf *b, size_t max, lfw_budget *g, size_t allowance);

/* Empties the buffer, keeping its memory for the next use. */
void lfw_buf_reset(lfw_buf *b);

/* Makes room for `n` more bytes. 0, or -1 when that passes `max`, the budget
 * refuses (then `refused` is set too) or memory runs out (then `overflow` is
 * set). Capacity doubles up to 1 MiB, then grows by 1 MiB at a time, and
 * never passes max + 1, so what is charged follows what arrived. */
int lfw_buf_reserve(lfw_buf *b, size_t n);

/* Appends `n` bytes. 0, or -1 as lfw_buf_reserve. */
int lfw_buf_append(lfw_buf *b, const void *p, size_t n);
int lfw_buf_puts(lfw_buf *b, const char *s);
int lfw_buf_printf(lfw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the memory and gives back its charge; the buffer is then empty and
 * may be used again. */
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
