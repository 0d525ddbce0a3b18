/*
 * buf.c: bounded growable buffers and JSON string output.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growth past this size adds this much at a time instead of doubling. */
#define GROW_STEP ((size_t)1024 * 1024)

void lfw_budget_init(lfw_budget *g, size_t limit, size_t reserve, size_t small) {
  atomic_init(&g->used, 0);
  atomic_init(&g->peak, 0);
  atomic_init(&g->refusals, 0);
  g->limit = limit;
  g->reserve = reserve < limit ? reserve : limit;
  g->small = small;
}

int lfw_budget_take(lfw_budget *g, size_t n, size_t max) {
  size_t bound = max <= g->small ? g->limit : g->limit - g->reserve;
  size_t used = atomic_load(&g->used);
  size_t peak;

  do {
    if (n > bound || used > bound - n) {
      atomic_fetch_add(&g->refusals, 1);
      return -1;
    }
  } while (!atomic_compare_exchange_weak(&g->used, &used, used + n));
  used += n;
  peak = atomic_load(&g->peak);
  while (used > peak && !atomic_compare_exchange_weak(&g->peak, &peak, used))
    ;
  return 0;
}

void lfw_budget_give(lfw_budget *g, size_t n) {
  atomic_fetch_sub(&g->used, n);
}

size_t lfw_budget_used(const lfw_budget *g) {
  return atomic_load(&g->used);
}

void lfw_buf_init(lfw_buf *b, size_t max) {
  lfw_buf_init_budget(b, max, NULL, 0);
}

void lfw_buf_init_budget(lfw_buf *b, size_t max, lfw_budget *g, size_t allowance) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->overflow = false;
  b->budget = g;
  b->allowance = allowance;
  b->charged = 0;
  b->refused = false;
}

void lfw_buf_reset(lfw_buf *b) {
  b->len = 0;
  b->overflow = false;
  if (b->data != NULL)
    b->data[0] = '\0';
}

void lfw_buf_free(lfw_buf *b) {
  free(b->data);
  if (b->budget != NULL && b->charged > 0)
    lfw_budget_give(b->budget, b->charged);
  b->charged = 0;
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->overflow = false;
  b->refused = false;
}

int lfw_buf_reserve(lfw_buf *b, size_t n) {
  size_t need;
  size_t cap;
  size_t charge = 0;
  size_t extra = 0;
  char *p;

  if (n > b->max || b->len > b->max - n) {
    b->overflow = true;
    return -1;
  }
  need = b->len + n + 1;
  if (need <= b->cap)
    return 0;
  cap = b->cap < 256 ? 256 : b->cap;
  while (cap < need)
    cap = cap < GROW_STEP ? cap * 2 : (cap > SIZE_MAX - GROW_STEP ? need : cap + GROW_STEP);
  /* Never allocate much beyond the limit: the last byte is for the NUL. */
  if (cap > b->max + 1)
    cap = b->max + 1;
  if (cap < need)
    cap = need;
  if (b->budget != NULL) {
    charge = cap > b->allowance ? cap - b->allowance : 0;
    extra = charge > b->charged ? charge - b->charged : 0;
    if (extra > 0 && lfw_budget_take(b->budget, extra, b->max) != 0) {
      b->overflow = true;
      b->refused = true;
      return -1;
    }
  }
  p = realloc(b->data, cap);
  if (p == NULL) {
    if (extra > 0)
      lfw_budget_give(b->budget, extra);
    b->overflow = true;
    return -1;
  }
  b->charged += extra;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lfw_buf_append(lfw_buf *b, const void *p, size_t n) {
  if (lfw_buf_reserve(b, n) != 0)
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int lfw_buf_puts(lfw_buf *b, const char *s) {
  return lfw_buf_append(b, s, strlen(s));
}

int lfw_buf_printf(lfw_buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->overflow = true;
    return -1;
  }
  if ((size_t)n < sizeof small)
    return lfw_buf_append(b, small, (size_t)n);
  if (lfw_buf_reserve(b, (size_t)n) != 0)
    return -1;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int lfw_json_string(lfw_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  size_t run = 0; /* Start of the pending run of bytes that need no escape. */
  int rc = 0;

  /* Worst case every byte becomes \u00XX; reserving the common case (no
   * escapes) up front keeps this to one growth at most. */
  if (lfw_buf_reserve(b, n + 2) != 0)
    return -1;
  rc |= lfw_buf_append(b, "\"", 1);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[6];
    size_t elen = 0;

    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      elen = 2;
    } else if (c < 0x20 || c == 0x7f) {
      esc[0] = '\\';
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      elen = 6;
    } else {
      continue;
    }
    rc |= lfw_buf_append(b, s + run, i - run);
    rc |= lfw_buf_append(b, esc, elen);
    run = i + 1;
  }
  rc |= lfw_buf_append(b, s + run, n - run);
  rc |= lfw_buf_append(b, "\"", 1);
  return rc == 0 ? 0 : -1;
}

int lfw_json_cstring(lfw_buf *b, const char *s) {
  return lfw_json_string(b, s, strlen(s));
}

size_t lfw_utf8_prefix(const char *s, size_t n, size_t max_runes, size_t max_bytes) {
  size_t i = 0;
  size_t runes = 0;

  while (i < n && runes < max_runes) {
    unsigned char c = (unsigned char)s[i];
    size_t clen = 1;

    if (c >= 0xf0)
      clen = 4;
    else if (c >= 0xe0)
      clen = 3;
    else if (c >= 0xc0)
      clen = 2;
    /* A truncated sequence at the end counts as the end of the string. */
    if (i + clen > n || i + clen > max_bytes)
      break;
    i += clen;
    runes++;
  }
  return i;
}
