/*
 * tlshello.h: which TLS versions a ClientHello offers, read before GnuTLS
 * negotiates, so that a client offering only versions the server refuses is
 * told so with a protocol_version alert (RFC 8446, section 4.2.1; RFC 5246,
 * appendix E.1) instead of a silent close. GnuTLS leaves sending that alert
 * to the application, and libmicrohttpd does not send it.
 *
 * Pure: no I/O. The input is outside input (any bytes a client sends).
 */
#ifndef LFW_TLSHELLO_H
#define LFW_TLSHELLO_H

#include <stddef.h>
#include <stdint.h>

enum {
  LFW_HELLO_OK = 0,         /* It offers a version the server accepts. */
  LFW_HELLO_TOO_OLD = 1,    /* It offers only older versions. */
  LFW_HELLO_MALFORMED = -1, /* Not a readable ClientHello: GnuTLS decides. */
};

/* Reads the ClientHello handshake message body `msg` (`len` bytes, after the
 * 4-byte handshake header). `min_version` is 12 (TLS 1.2 and 1.3 accepted)
 * or 13 (TLS 1.3 only). On LFW_HELLO_TOO_OLD, `*record_version` is the
 * version to put on the alert's record (the client's legacy version, at most
 * TLS 1.2's 0x0303, at least SSL 3's 0x0300). */
int lfw_tls_hello_check(const unsigned char *msg, size_t len, int min_version,
                        uint16_t *record_version);

/* The 7-byte plaintext alert record: fatal protocol_version. */
void lfw_tls_alert_protocol_version(uint16_t record_version, unsigned char out[7]);

#endif /* LFW_TLSHELLO_H */
