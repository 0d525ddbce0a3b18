/*
 * prune.c: a validating JSON scanner that keeps only what fencing reads.
 *
 * The grammar is RFC 8259 with jansson's rules for strings: no raw control
 * characters, no lone or reversed surrogates, and only well-formed UTF-8 (no
 * overlong forms, no encoded surrogates, nothing above U+10FFFF); numbers
 * have no leading zeros or bare dots; nothing but whitespace follows the
 * top-level value. It accepts what Go's encoder, and so the API server,
 * can send and jansson cannot take: "\u0000" in any string (jansson takes
 * it only in values, with JSON_ALLOW_NUL, and never in keys), numbers of any
 * size, and nesting as deep as LFW_PRUNE_MAX_DEPTH. Only the parts kept are
 * handed to jansson, so those limits apply to them alone.
 *
 * Output never outgrows input (it is input minus dropped members and
 * whitespace), so one reservation of the input's length covers it.
 */
#include "prune.h"

#include <stdbool.h>
#include <string.h>

typedef enum level { L_TOP, L_REQUEST, L_USER, L_EXTRA, L_OBJECT, L_META, L_ANNOTATIONS } level;

typedef enum action { A_DROP, A_KEEP, A_DESCEND } action;

typedef struct scan {
  const unsigned char *p;
  const unsigned char *end;
  char *out; /* Reserved for the whole input. */
  size_t out_len;
  int depth;
} scan;

/* A decoded key, for comparison with our ASCII member names only. */
typedef struct key {
  char text[64];
  size_t len;
  bool usable; /* False when longer than `text` or not ASCII. */
} key;

static void emit(scan *s, const unsigned char *from, size_t n) {
  memcpy(s->out + s->out_len, from, n);
  s->out_len += n;
}

static void emit_char(scan *s, char c) {
  s->out[s->out_len++] = c;
}

static void skip_ws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int hex4(scan *s, unsigned *cp) {
  unsigned v = 0;
  int i;

  if (s->end - s->p < 4)
    return -1;
  for (i = 0; i < 4; i++) {
    unsigned c = s->p[i];

    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return -1;
  }
  s->p += 4;
  *cp = v;
  return 0;
}

static void key_put(key *k, unsigned c) {
  if (c >= 0x80 || k->len + 1 >= sizeof k->text) {
    k->usable = false;
    return;
  }
  k->text[k->len++] = (char)c;
}

/* One well-formed UTF-8 sequence of two to four bytes at s->p. */
static int utf8_seq(scan *s) {
  const unsigned char *p = s->p;
  unsigned c = p[0];
  size_t n;
  unsigned lo = 0x80;
  unsigned hi = 0xbf;
  size_t i;

  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef)
    n = 3;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 4;
  else
    return -1;
  if ((size_t)(s->end - p) < n)
    return -1;
  /* The second byte's range rules out overlong forms, surrogates and code
   * points above U+10FFFF. */
  if (c == 0xe0)
    lo = 0xa0;
  else if (c == 0xed)
    hi = 0x9f;
  else if (c == 0xf0)
    lo = 0x90;
  else if (c == 0xf4)
    hi = 0x8f;
  if (p[1] < lo || p[1] > hi)
    return -1;
  for (i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xbf)
      return -1;
  s->p += n;
  return 0;
}

/* A string at s->p (which is '"'). With `k`, also decodes it for comparing. */
static int string(scan *s, key *k) {
  if (k != NULL) {
    k->len = 0;
    k->usable = true;
  }
  s->p++;
  while (s->p < s->end) {
    unsigned c = *s->p;

    if (c == '"') {
      s->p++;
      if (k != NULL)
        k->text[k->len] = '\0';
      return 0;
    }
    if (c < 0x20)
      return -1;
    if (c >= 0x80) {
      if (utf8_seq(s) != 0)
        return -1;
      if (k != NULL)
        k->usable = false;
      continue;
    }
    s->p++;
    if (c != '\\') {
      if (k != NULL)
        key_put(k, c);
      continue;
    }
    if (s->p >= s->end)
      return -1;
    c = *s->p++;
    switch (c) {
    case '"':
    case '\\':
    case '/':
      break;
    case 'b':
      c = '\b';
      break;
    case 'f':
      c = '\f';
      break;
    case 'n':
      c = '\n';
      break;
    case 'r':
      c = '\r';
      break;
    case 't':
      c = '\t';
      break;
    case 'u': {
      unsigned cp;
      unsigned lo;

      /* "\u0000" is legal JSON and Go sends it for a NUL in any string. */
      if (hex4(s, &cp) != 0)
        return -1;
      if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
          return -1;
        s->p += 2;
        if (hex4(s, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
          return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      c = cp;
      break;
    }
    default:
      return -1;
    }
    if (k != NULL)
      key_put(k, c);
  }
  return -1;
}

static bool is_digit(const scan *s) {
  return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int number(scan *s) {
  if (*s->p == '-')
    s->p++;
  if (s->p >= s->end)
    return -1;
  if (*s->p == '0') {
    s->p++;
  } else if (is_digit(s)) {
    while (is_digit(s))
      s->p++;
  } else {
    return -1;
  }
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!is_digit(s))
      return -1;
    while (is_digit(s))
      s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (!is_digit(s))
      return -1;
    while (is_digit(s))
      s->p++;
  }
  return 0;
}

static int literal(scan *s, const char *word) {
  size_t n = strlen(word);

  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return -1;
  s->p += n;
  return 0;
}

/* A member's key and colon, at s->p after optional whitespace. */
static int member_key(scan *s) {
  skip_ws(s);
  if (s->p >= s->end || *s->p != '"' || string(s, NULL) != 0)
    return -1;
  skip_ws(s);
  if (s->p >= s->end || *s->p != ':')
    return -1;
  s->p++;
  return 0;
}

/* A value that is not an object or array. */
static int scalar(scan *s) {
  switch (*s->p) {
  case '"':
    return string(s, NULL);
  case 't':
    return literal(s, "true");
  case 'f':
    return literal(s, "false");
  case 'n':
    return literal(s, "null");
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
      return number(s);
    return -1;
  }
}

/* Any value, checked and skipped. Iterative, with one bit per open level
 * saying object or array: a dropped part may nest as deep as the API
 * server's decoder allows, deeper than a recursive descent should take a
 * thread's stack. */
static int value(scan *s) {
  unsigned char is_obj[LFW_PRUNE_MAX_DEPTH / 8 + 1];
  const int base = s->depth;
  int rel;

  for (;;) {
    /* A value is expected at s->p. */
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    if (*s->p == '{' || *s->p == '[') {
      const bool obj = *s->p == '{';

      if (s->depth >= LFW_PRUNE_MAX_DEPTH)
        return -1;
      rel = s->depth - base;
      if (obj)
        is_obj[rel / 8] |= (unsigned char)(1u << (rel % 8));
      else
        is_obj[rel / 8] &= (unsigned char)~(1u << (rel % 8));
      s->depth++;
      s->p++;
      skip_ws(s);
      if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
        s->p++;
        s->depth--;
      } else {
        if (obj && member_key(s) != 0)
          return -1;
        continue;
      }
    } else if (scalar(s) != 0) {
      return -1;
    }
    /* A value ended: close levels until one continues, or the first value
     * is done. */
    for (;;) {
      bool obj;

      if (s->depth == base)
        return 0;
      skip_ws(s);
      if (s->p >= s->end)
        return -1;
      rel = s->depth - base - 1;
      obj = (is_obj[rel / 8] >> (rel % 8)) & 1u;
      if (*s->p == ',') {
        s->p++;
        if (obj && member_key(s) != 0)
          return -1;
        break;
      }
      if (*s->p != (obj ? '}' : ']'))
        return -1;
      s->p++;
      s->depth--;
    }
  }
}

static bool key_is(const key *k, const char *name) {
  return k->usable && strcmp(k->text, name) == 0;
}

/* The API server's own keys of userInfo.extra; the library reads no others. */
#define EXTRA_PREFIX "authentication.kubernetes.io/"

static bool key_has_prefix(const key *k, const char *prefix) {
  return k->usable && strncmp(k->text, prefix, strlen(prefix)) == 0;
}

/* What to do with member `k` of an object at `lv`; `*next` is the level to
 * descend to. */
static action decide(level lv, const key *k, level *next) {
  switch (lv) {
  case L_TOP:
    if (key_is(k, "request")) {
      *next = L_REQUEST;
      return A_DESCEND;
    }
    return key_is(k, "apiVersion") || key_is(k, "kind") ? A_KEEP : A_DROP;
  case L_REQUEST:
    if (key_is(k, "object") || key_is(k, "oldObject")) {
      *next = L_OBJECT;
      return A_DESCEND;
    }
    if (key_is(k, "userInfo")) {
      *next = L_USER;
      return A_DESCEND;
    }
    return A_KEEP;
  case L_USER:
    if (key_is(k, "extra")) {
      *next = L_EXTRA;
      return A_DESCEND;
    }
    return A_KEEP;
  case L_EXTRA:
    /* Other authenticators' keys may be any string, "\u0000" included,
     * which jansson refuses in a key. */
    return key_has_prefix(k, EXTRA_PREFIX) ? A_KEEP : A_DROP;
  case L_OBJECT:
    if (key_is(k, "metadata")) {
      *next = L_META;
      return A_DESCEND;
    }
    return A_DROP;
  case L_META:
    if (key_is(k, "annotations")) {
      *next = L_ANNOTATIONS;
      return A_DESCEND;
    }
    /* The uid names the object in a denial's Event (events.h);
     * deletionTimestamp: a write to an object being deleted (its finalizer
     * removal) is judged apart while nobody leads. */
    return key_is(k, "namespace") || key_is(k, "uid") || key_is(k, "deletionTimestamp") ? A_KEEP
                                                                                        : A_DROP;
  case L_ANNOTATIONS:
    return key_is(k, "leasefence.io/lease") || key_is(k, "leasefence.io/stamp") ? A_KEEP : A_DROP;
  }
  return A_DROP;
}

/* An object at s->p (which is '{') at level `lv`, written out pruned. */
static int object_pruned(scan *s, level lv) {
  bool first = true;

  if (++s->depth > LFW_PRUNE_MAX_DEPTH)
    return -1;
  s->p++;
  emit_char(s, '{');
  skip_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    emit_char(s, '}');
    s->depth--;
    return 0;
  }
  for (;;) {
    const unsigned char *kstart;
    const unsigned char *kend;
    const unsigned char *vstart;
    key k;
    level next = lv;
    action a;
    int rc;

    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
      return -1;
    kstart = s->p;
    if (string(s, &k) != 0)
      return -1;
    kend = s->p;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
      return -1;
    s->p++;
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    a = decide(lv, &k, &next);
    /* Where an object was expected and something else is there, it is kept
     * as it is, so the library reports the wrong type. */
    if (a == A_DESCEND && *s->p != '{')
      a = A_KEEP;
    if (a != A_DROP) {
      if (!first)
        emit_char(s, ',');
      first = false;
      emit(s, kstart, (size_t)(kend - kstart));
      emit_char(s, ':');
    }
    vstart = s->p;
    if (a == A_DESCEND)
      rc = object_pruned(s, next);
    else
      rc = value(s);
    if (rc != 0)
      return -1;
    if (a == A_KEEP)
      emit(s, vstart, (size_t)(s->p - vstart));
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != '}')
      return -1;
    s->p++;
    emit_char(s, '}');
    s->depth--;
    return 0;
  }
}

int lfw_prune_review(const char *in, size_t len, lfw_buf *out) {
  scan s;

  lfw_buf_reset(out);
  if (lfw_buf_reserve(out, len) != 0)
    return LFW_PRUNE_OVERFLOW;
  s.p = (const unsigned char *)in;
  s.end = s.p + len;
  s.out = out->data;
  s.out_len = 0;
  s.depth = 0;
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{')
    return LFW_PRUNE_AS_IS;
  if (object_pruned(&s, L_TOP) != 0)
    return LFW_PRUNE_INVALID;
  skip_ws(&s);
  if (s.p != s.end)
    return LFW_PRUNE_INVALID;
  out->len = s.out_len;
  out->data[out->len] = '\0';
  return LFW_PRUNE_OK;
}
