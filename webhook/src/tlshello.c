/*
 * tlshello.c: the TLS versions a ClientHello offers.
 */
#include "tlshello.h"

#define TLS12 0x0303
#define TLS13 0x0304
#define EXT_SUPPORTED_VERSIONS 0x002b

/* A bounds-checked reader over the message. */
typedef struct rd {
  const unsigned char *p;
  size_t left;
} rd;

static int skip(rd *r, size_t n) {
  if (n > r->left)
    return -1;
  r->p += n;
  r->left -= n;
  return 0;
}

static int u8(rd *r, size_t *v) {
  if (r->left < 1)
    return -1;
  *v = r->p[0];
  return skip(r, 1);
}

static int u16(rd *r, size_t *v) {
  if (r->left < 2)
    return -1;
  *v = (size_t)r->p[0] << 8 | r->p[1];
  return skip(r, 2);
}

/* Whether the supported_versions list `r` names a version the server
 * accepts. -1 when the list is malformed. */
static int offers_accepted(rd r, int min_version) {
  size_t n;
  size_t v;
  int ok = 0;

  if (u8(&r, &n) != 0 || n != r.left || n % 2 != 0)
    return -1;
  while (r.left > 0) {
    if (u16(&r, &v) != 0)
      return -1;
    if (v == TLS13 || (v == TLS12 && min_version <= 12))
      ok = 1;
  }
  return ok;
}

int lfw_tls_hello_check(const unsigned char *msg, size_t len, int min_version,
                        uint16_t *record_version) {
  rd r = {msg, len};
  size_t legacy;
  size_t n;
  size_t type;
  int sv = -2; /* -2: no supported_versions extension. */

  if (u16(&r, &legacy) != 0 || skip(&r, 32) != 0)
    return LFW_HELLO_MALFORMED;
  if (u8(&r, &n) != 0 || skip(&r, n) != 0) /* session_id */
    return LFW_HELLO_MALFORMED;
  if (u16(&r, &n) != 0 || skip(&r, n) != 0) /* cipher_suites */
    return LFW_HELLO_MALFORMED;
  if (u8(&r, &n) != 0 || skip(&r, n) != 0) /* compression_methods */
    return LFW_HELLO_MALFORMED;
  if (r.left > 0) {
    if (u16(&r, &n) != 0 || n != r.left)
      return LFW_HELLO_MALFORMED;
    while (r.left > 0) {
      rd ext;

      if (u16(&r, &type) != 0 || u16(&r, &n) != 0 || n > r.left)
        return LFW_HELLO_MALFORMED;
      ext.p = r.p;
      ext.left = n;
      if (type == EXT_SUPPORTED_VERSIONS) {
        sv = offers_accepted(ext, min_version);
        if (sv < 0)
          return LFW_HELLO_MALFORMED;
      }
      (void)skip(&r, n);
    }
  }
  *record_version = (uint16_t)(legacy > TLS12 ? TLS12 : (legacy < 0x0300 ? 0x0300 : legacy));
  /* With the extension, only its list counts (RFC 8446, 4.2.1); without it,
   * the legacy version is the highest the client speaks. */
  if (sv == 1)
    return LFW_HELLO_OK;
  if (sv == 0)
    return LFW_HELLO_TOO_OLD;
  return (min_version <= 12 && legacy >= TLS12) ? LFW_HELLO_OK : LFW_HELLO_TOO_OLD;
}

void lfw_tls_alert_protocol_version(uint16_t record_version, unsigned char out[7]) {
  out[0] = 21; /* ContentType alert */
  out[1] = (unsigned char)(record_version >> 8);
  out[2] = (unsigned char)(record_version & 0xff);
  out[3] = 0;
  out[4] = 2;
  out[5] = 2;  /* fatal */
  out[6] = 70; /* protocol_version */
}
