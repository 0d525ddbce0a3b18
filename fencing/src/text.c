#include "text.h"

#include <stdio.h>
#include <string.h>

int lf__fail(lf_error *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    err->text[lf__utf8_floor(err->text, strlen(err->text))] = '\0';
  }
  return code;
}

size_t lf__utf8_floor(const char *p, size_t len) {
  size_t i = len;
  size_t back = 0;
  /* Walk back over continuation bytes (10xxxxxx) to the lead byte, at most 3. */
  while (i > 0 && back < 4 && ((unsigned char)p[i - 1] & 0xC0) == 0x80) {
    i--;
    back++;
  }
  if (i == 0) {
    return len == back ? 0 : len;
  }
  unsigned char lead = (unsigned char)p[i - 1];
  size_t need = 1;
  if (lead >= 0xF0) {
    need = 4;
  } else if (lead >= 0xE0) {
    need = 3;
  } else if (lead >= 0xC0) {
    need = 2;
  }
  if (lead < 0x80) {
    return len; /* ASCII before the continuation run: nothing open. */
  }
  /* The sequence starting at i-1 has back+1 bytes; complete only if need. */
  return (back + 1 == need) ? len : i - 1;
}

void lf__sbuf_init(lf__sbuf *b, char *p, size_t size) {
  b->p = p;
  b->size = size;
  b->len = 0;
  b->truncated = false;
  if (size > 0) {
    p[0] = '\0';
  }
}

static void sbuf_append(lf__sbuf *b, const char *s, size_t n) {
  if (b->size == 0 || b->truncated) {
    return;
  }
  size_t room = b->size - 1 - b->len;
  if (n > room) {
    n = lf__utf8_floor(s, room);
    b->truncated = true;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void lf__sbuf_printf(lf__sbuf *b, const char *fmt, ...) {
  char tmp[LF_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) {
    return;
  }
  size_t len = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
  sbuf_append(b, tmp, lf__utf8_floor(tmp, len));
  if ((size_t)n >= sizeof(tmp)) {
    b->truncated = true;
  }
}

void lf__sbuf_quote(lf__sbuf *b, const char *s, size_t max) {
  char tmp[LF_MESSAGE_MAX];
  size_t n = 0;
  size_t len = strlen(s);
  bool cut = false;
  if (len > max) {
    len = lf__utf8_floor(s, max);
    cut = true;
  }
  tmp[n++] = '"';
  for (size_t i = 0; i < len && n < sizeof(tmp) - 6; i++) {
    unsigned char c = (unsigned char)s[i];
    tmp[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (cut) {
    memcpy(tmp + n, "...", 3);
    n += 3;
  }
  tmp[n++] = '"';
  sbuf_append(b, tmp, n);
}

bool lf__printable(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

static bool alnum_lower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One dot-separated part: [a-z0-9]([-a-z0-9]*[a-z0-9])?, any length. */
static bool dns_part(const char *s, size_t len) {
  if (len == 0 || !alnum_lower(s[0]) || !alnum_lower(s[len - 1])) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    if (!alnum_lower(s[i]) && s[i] != '-') {
      return false;
    }
  }
  return true;
}

bool lf__dns_label(const char *s, size_t len) {
  return len <= 63 && dns_part(s, len);
}

bool lf__dns_subdomain(const char *s, size_t len) {
  /* As Kubernetes' IsDNS1123Subdomain: the whole name is bounded, its
   * dot-separated parts are not (each is a label's pattern of any length). */
  if (len == 0 || len > 253) {
    return false;
  }
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || s[i] == '.') {
      if (!dns_part(s + start, i - start)) {
        return false;
      }
      start = i + 1;
    }
  }
  return true;
}
