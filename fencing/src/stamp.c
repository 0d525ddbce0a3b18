/*
 * stamp: the "lf1:<term>:<lease-uid>[:<holder>]" text of docs/protocol.md,
 * section 3. Parsing is strict — one spelling per stamp — so two parties
 * that agree on a stamp agree byte for byte.
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

static bool uid_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static bool valid_uid(const char *s, size_t len) {
  if (len == 0 || len > LF_UID_MAX) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    if (!uid_char(s[i])) {
      return false;
    }
  }
  return true;
}

/* "#" and LF_HOLDER_HASH_LEN lowercase hex digits: the short form's holder. */
static bool is_holder_hash(const char *h, size_t len) {
  if (len != LF_HOLDER_HASH_LEN + 1 || h[0] != '#') {
    return false;
  }
  for (size_t i = 1; i < len; i++) {
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

void lf_holder_hash(const char *holder, char out[LF_HOLDER_HASH_LEN + 1]) {
  /* 64-bit FNV-1a: trivial to implement alike in every helper (Go's
   * hash/fnv), and 64 bits tell honest holders apart. It is no secret and
   * needs none: the full stamp is on the object for anyone to copy. */
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (const unsigned char *p = (const unsigned char *)holder; *p != '\0'; p++) {
    h ^= *p;
    h *= UINT64_C(0x100000001b3);
  }
  snprintf(out, LF_HOLDER_HASH_LEN + 1, "%016llx", (unsigned long long)h);
}

bool lf_stamp_names_holder(const lf_stamp *stamp, const char *holder) {
  char hash[LF_HOLDER_HASH_LEN + 1];
  if (!stamp->holder_hashed) {
    return strcmp(stamp->holder, holder) == 0;
  }
  lf_holder_hash(holder, hash);
  return strcmp(stamp->holder + 1, hash) == 0;
}

bool lf_stamp_same_tenure(const lf_stamp *a, const lf_stamp *b) {
  if (a->term != b->term || strcmp(a->lease_uid, b->lease_uid) != 0) {
    return false;
  }
  if (a->holder_hashed && b->holder_hashed) {
    return strcmp(a->holder, b->holder) == 0;
  }
  return a->holder_hashed ? lf_stamp_names_holder(a, b->holder)
                          : lf_stamp_names_holder(b, a->holder);
}

int lf_stamp_parse(const char *text, size_t len, lf_stamp *out, lf_error *err) {
  const size_t plen = sizeof(LF_STAMP_PREFIX) - 1;
  if (text == NULL || len == 0) {
    return lf__fail(err, LF_EINVAL, "the stamp is empty");
  }
  if (len > LF_STAMP_MAX) {
    return lf__fail(err, LF_ETOOBIG, "the stamp is %zu bytes; at most %d are allowed", len,
                    LF_STAMP_MAX);
  }
  if (len < plen || memcmp(text, LF_STAMP_PREFIX, plen) != 0) {
    return lf__fail(err, LF_EINVAL,
                    "the stamp does not start with \"" LF_STAMP_PREFIX
                    "\" (an unknown version or not a stamp)");
  }

  /* Term: decimal, no sign, no leading zero, fits int32. */
  size_t i = plen;
  size_t start = i;
  int64_t term = 0;
  while (i < len && text[i] >= '0' && text[i] <= '9') {
    term = term * 10 + (text[i] - '0');
    if (term > INT32_MAX) {
      return lf__fail(err, LF_EINVAL, "the stamp's term is larger than 2147483647");
    }
    i++;
  }
  if (i == start || (i - start > 1 && text[start] == '0')) {
    return lf__fail(err, LF_EINVAL,
                    "the stamp's term must be a decimal number without sign or leading zeros");
  }
  if (i >= len || text[i] != ':') {
    return lf__fail(err, LF_EINVAL, "the stamp's term must be followed by ':' and the Lease uid");
  }
  i++;

  /* Lease uid, up to the next ':' or the end (short form). */
  start = i;
  while (i < len && text[i] != ':') {
    i++;
  }
  if (!valid_uid(text + start, i - start)) {
    return lf__fail(err, LF_EINVAL,
                    "the stamp's Lease uid must be 1 to %d characters of [0-9A-Za-z-]", LF_UID_MAX);
  }
  size_t uid_len = i - start;

  /* Holder: everything after the third colon; absent in the short form. */
  size_t holder_len = 0;
  const char *holder = NULL;
  if (i < len) {
    holder = text + i + 1;
    holder_len = len - i - 1;
    if (holder_len == 0) {
      return lf__fail(err, LF_EINVAL, "the stamp ends with ':' but names no holder");
    }
    if (holder_len > LF_HOLDER_MAX) {
      return lf__fail(err, LF_ETOOBIG, "the stamp's holder is %zu bytes; at most %d are allowed",
                      holder_len, LF_HOLDER_MAX);
    }
    if (!lf__printable(holder, holder_len)) {
      return lf__fail(err, LF_EINVAL, "the stamp's holder contains a control character");
    }
  }

  out->term = (int32_t)term;
  memcpy(out->lease_uid, text + start, uid_len);
  out->lease_uid[uid_len] = '\0';
  if (holder_len > 0) {
    memcpy(out->holder, holder, holder_len);
  }
  out->holder[holder_len] = '\0';
  out->holder_hashed = holder != NULL && is_holder_hash(holder, holder_len);
  return LF_OK;
}

static int validate(const lf_stamp *s, lf_error *err) {
  size_t hl = strnlen(s->holder, sizeof(s->holder));
  if (s->term < 0) {
    return lf__fail(err, LF_EINVAL, "a stamp's term cannot be negative");
  }
  if (!valid_uid(s->lease_uid, strnlen(s->lease_uid, sizeof(s->lease_uid)))) {
    return lf__fail(err, LF_EINVAL,
                    "a stamp's Lease uid must be 1 to %d characters of [0-9A-Za-z-]", LF_UID_MAX);
  }
  if (hl == 0 || hl > LF_HOLDER_MAX || !lf__printable(s->holder, hl)) {
    return lf__fail(err, LF_EINVAL, "a stamp's holder must be 1 to %d printable bytes",
                    LF_HOLDER_MAX);
  }
  if (is_holder_hash(s->holder, hl)) {
    /* It would read as the short form's holder hash, not as a holder. */
    return lf__fail(err, LF_EINVAL,
                    "a stamp's holder cannot be '#' and %d lowercase hex digits (the form of a "
                    "holder hash)",
                    LF_HOLDER_HASH_LEN);
  }
  return LF_OK;
}

int lf_stamp_format(const lf_stamp *stamp, char *buf, size_t size, lf_error *err) {
  int rc = validate(stamp, err);
  if (rc != LF_OK) {
    return rc;
  }
  int n = snprintf(buf, size, LF_STAMP_PREFIX "%d:%s:%s", (int)stamp->term, stamp->lease_uid,
                   stamp->holder);
  if (n < 0 || (size_t)n >= size) {
    return lf__fail(err, LF_ETOOBIG, "the buffer of %zu bytes cannot hold the stamp", size);
  }
  return LF_OK;
}

static bool printable_ascii(const char *s) {
  for (; *s != '\0'; s++) {
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
      return false;
    }
  }
  return true;
}

int lf_stamp_format_field_manager(const lf_stamp *stamp, char *buf, size_t size, lf_error *err) {
  char full[LF_STAMP_MAX + 1];
  int rc = lf_stamp_format(stamp, full, sizeof(full), err);
  if (rc != LF_OK) {
    return rc;
  }
  if (strlen(full) > LF_FIELD_MANAGER_MAX || !printable_ascii(full)) {
    /* The API server rejects a field manager over 128 bytes or with a rune
     * Go's unicode.IsPrint refuses (a no-break space, say). Printable ASCII
     * is a rule every helper applies byte for byte; the short form keeps the
     * whole tenure, the holder standing as its hash. */
    char hash[LF_HOLDER_HASH_LEN + 1];
    lf_holder_hash(stamp->holder, hash);
    snprintf(full, sizeof(full), LF_STAMP_PREFIX "%d:%s:#%s", (int)stamp->term, stamp->lease_uid,
             hash);
  }
  if (strlen(full) >= size) {
    return lf__fail(err, LF_ETOOBIG, "the buffer of %zu bytes cannot hold the field manager", size);
  }
  memcpy(buf, full, strlen(full) + 1);
  return LF_OK;
}
