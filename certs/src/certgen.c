/*
 * certgen.c: keys, certificates and the files that hold them.
 *
 * Everything is built with libcrypto's X509 API rather than by driving the
 * openssl command: the subjectAltName list is assembled from typed values
 * (no string configuration that a name with a comma could subvert), and the
 * key files are created 0600 from their first byte.
 */
#include "certgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The three shapes of certificate this tool makes. */
typedef enum cert_kind { KIND_CA, KIND_SERVER, KIND_CLIENT } cert_kind;

/* Bound on the subjectAltName names we put on a certificate: the two
 * Service names plus every --dns. */
#define SAN_DNS_MAX (LFC_DNS_MAX + 2)

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static int set_error(lfc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(lfc_error *err, int code, const char *fmt, ...) {
  va_list ap;

  if (err != NULL) {
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

/* Like set_error with LFC_ECRYPTO, and appends the reason libcrypto queued.
 * The queue is cleared so that a later failure cannot report a stale
 * reason. */
static int set_crypto_error(lfc_error *err, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *reason = NULL;

  if (e != 0) {
    reason = ERR_reason_error_string(e);
  }
  if (reason == NULL) {
    reason = "unknown libcrypto error";
  }
  set_error(err, LFC_ECRYPTO, "%s: %s", what, reason);
  ERR_clear_error();
  return LFC_ECRYPTO;
}

/* ------------------------------------------------------------------------ */
/* Argument checks                                                           */

const char *lfc_key_type_name(lfc_key_type type) {
  if (type == LFC_KEY_RSA_2048) {
    return "rsa-2048";
  }
  return "ecdsa-p256";
}

int lfc_key_type_parse(const char *text, lfc_key_type *out, lfc_error *err) {
  if (text != NULL && strcmp(text, "ecdsa-p256") == 0) {
    *out = LFC_KEY_ECDSA_P256;
    return LFC_OK;
  }
  if (text != NULL && strcmp(text, "rsa-2048") == 0) {
    *out = LFC_KEY_RSA_2048;
    return LFC_OK;
  }
  return set_error(err, LFC_EINVAL, "unknown key type '%.64s' (want ecdsa-p256 or rsa-2048)",
                   text != NULL ? text : "");
}

static int check_key_type(lfc_key_type type, lfc_error *err) {
  if (type == LFC_KEY_DEFAULT || type == LFC_KEY_ECDSA_P256 || type == LFC_KEY_RSA_2048) {
    return LFC_OK;
  }
  return set_error(err, LFC_EINVAL, "unknown key type %d", (int)type);
}

/* Resolves 0 to the default and rejects the rest of the out-of-range values
 * here, so that ASN1_TIME_adj is never asked for a negative validity. */
static int check_days(int days, int dflt, int *out, lfc_error *err) {
  if (days == 0) {
    *out = dflt;
    return LFC_OK;
  }
  if (days < 0 || days > LFC_DAYS_MAX) {
    return set_error(err, LFC_EINVAL, "days must be 1..%d, not %d", LFC_DAYS_MAX, days);
  }
  *out = days;
  return LFC_OK;
}

static const char *dir_or_dot(const char *dir) {
  if (dir == NULL || dir[0] == '\0') {
    return ".";
  }
  return dir;
}

static int is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* A DNS-1123 label, what Kubernetes demands of Service and namespace names:
 * 1-63 of [a-z0-9-], starting and ending with a letter or digit. */
static int is_label(const char *s) {
  size_t n = strlen(s);

  if (n == 0 || n > LFC_LABEL_MAX) {
    return 0;
  }
  if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1])) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!is_lower_alnum(s[i]) && s[i] != '-') {
      return 0;
    }
  }
  return 1;
}

/* A DNS name for a subjectAltName: dot-separated labels of letters, digits
 * and hyphens, at most 253 bytes, optionally starting with the "*." of a
 * wildcard. No trailing dot: certificate names are never written that way. */
static int is_dns_name(const char *s) {
  size_t n = strlen(s);
  size_t label = 0;

  if (n == 0 || n > LFC_DNS_NAME_MAX) {
    return 0;
  }
  if (s[0] == '*' && s[1] == '.') {
    s += 2;
  }
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      if (label == 0 || label > LFC_LABEL_MAX || p[-1] == '-') {
        return 0;
      }
      if (*p == '\0') {
        return 1;
      }
      label = 0;
    } else if (is_alnum(*p) || (*p == '-' && label > 0)) {
      label++;
    } else {
      return 0;
    }
  }
}

static int check_subject(const char *cn, const char *const *orgs, size_t n_orgs, lfc_error *err) {
  size_t n;

  if (cn != NULL) {
    n = strlen(cn);
    if (n == 0 || n > LFC_CN_MAX) {
      return set_error(err, LFC_EINVAL, "common name must be 1..%d bytes, not %zu", LFC_CN_MAX, n);
    }
  }
  if (n_orgs > LFC_ORG_MAX) {
    return set_error(err, LFC_EINVAL, "at most %d organizations, not %zu", LFC_ORG_MAX, n_orgs);
  }
  for (size_t i = 0; i < n_orgs; i++) {
    n = strlen(orgs[i]);
    if (n == 0 || n > LFC_ORG_LEN_MAX) {
      return set_error(err, LFC_EINVAL, "organization must be 1..%d bytes, not %zu",
                       LFC_ORG_LEN_MAX, n);
    }
  }
  return LFC_OK;
}

/* ------------------------------------------------------------------------ */
/* Paths and files                                                           */

static int join_path(char out[LFC_PATH_MAX], const char *dir, const char *name, lfc_error *err) {
  int n = snprintf(out, LFC_PATH_MAX, "%s/%s", dir, name);

  if (n < 0 || n >= LFC_PATH_MAX) {
    return set_error(err, LFC_EINVAL, "path too long: %.64s.../%s", dir, name);
  }
  return LFC_OK;
}

/* Sets *present to whether path exists. Errors other than ENOENT (a
 * directory we may not search, say) are reported rather than read as
 * "absent", so that a CA is never recreated over one we merely cannot see. */
static int file_present(const char *path, int *present, lfc_error *err) {
  struct stat st;

  if (stat(path, &st) == 0) {
    *present = 1;
    return LFC_OK;
  }
  if (errno == ENOENT) {
    *present = 0;
    return LFC_OK;
  }
  return set_error(err, LFC_EINPUT, "cannot stat %s: %s", path, strerror(errno));
}

/* Writes data to a new temporary file in dir (the same directory as the
 * final name, so that rename(2) never crosses a filesystem) and fsyncs it.
 * The file is created by open(O_CREAT | O_EXCL) with `mode`, so a key file is
 * 0600 from its first byte and no existing file or symlink is followed. On
 * success tmp holds the file's path; on failure the file is gone and tmp is
 * empty. */
static int write_temp(const char *dir, const char *name, const char *data, size_t len, mode_t mode,
                      char tmp[LFC_PATH_MAX], lfc_error *err) {
  unsigned int nonce = 0;
  int fd = -1;
  int n;
  int rc;

  tmp[0] = '\0';
  if (RAND_bytes((unsigned char *)&nonce, sizeof nonce) != 1) {
    rc = set_crypto_error(err, "drawing a temporary file name");
    goto out;
  }
  n = snprintf(tmp, LFC_PATH_MAX, "%s/.%s.%ld.%08x.tmp", dir, name, (long)getpid(), nonce);
  if (n < 0 || n >= LFC_PATH_MAX) {
    tmp[0] = '\0';
    rc = set_error(err, LFC_EINVAL, "path too long in %.64s...", dir);
    goto out;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    rc = set_error(err, LFC_EIO, "cannot create %s: %s", tmp, strerror(errno));
    tmp[0] = '\0'; /* Not ours to unlink. */
    goto out;
  }
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      rc = set_error(err, LFC_EIO, "cannot write %s: %s", tmp,
                     w < 0 ? strerror(errno) : "wrote nothing");
      goto out;
    }
    data += w;
    len -= (size_t)w;
  }
  /* fsync before the rename: otherwise a crash can leave the final name
   * pointing at an empty file on filesystems that reorder the two. */
  if (fsync(fd) != 0) {
    rc = set_error(err, LFC_EIO, "cannot fsync %s: %s", tmp, strerror(errno));
    goto out;
  }
  n = close(fd);
  fd = -1;
  if (n != 0) {
    rc = set_error(err, LFC_EIO, "cannot close %s: %s", tmp, strerror(errno));
    goto out;
  }
  rc = LFC_OK;

out:
  if (fd >= 0) {
    close(fd);
  }
  if (rc != LFC_OK && tmp[0] != '\0') {
    unlink(tmp);
    tmp[0] = '\0';
  }
  return rc;
}

/* Opens dir and takes an exclusive flock(2) on it, held until the
 * descriptor is closed. Two runs publishing into one directory at once
 * would otherwise interleave their renames (A's key, B's key, B's cert,
 * A's cert) and leave a mismatched pair. */
static int lock_dir(const char *dir, int *fd_out, lfc_error *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  *fd_out = -1;
  if (fd < 0) {
    return set_error(err, LFC_EIO, "cannot open directory %s: %s", dir, strerror(errno));
  }
  while (flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int e = errno;
      close(fd);
      return set_error(err, LFC_EIO, "cannot lock directory %s: %s", dir, strerror(e));
    }
  }
  *fd_out = fd;
  return LFC_OK;
}

/* Makes the renames in dir durable. Filesystems that cannot fsync a
 * directory say EINVAL; there is nothing more to do on them. */
static int sync_dir(const char *dir, int fd, lfc_error *err) {
  if (fsync(fd) != 0 && errno != EINVAL) {
    return set_error(err, LFC_EIO, "cannot fsync directory %s: %s", dir, strerror(errno));
  }
  return LFC_OK;
}

static long bio_bytes(BIO *bio, char **data) {
  return BIO_get_mem_data(bio, data);
}

/*
 * Publishes a key and its certificate as dir/key_name and dir/cert_name.
 *
 * Each file is replaced by rename(2), so a reader opening either name gets
 * the whole old file or the whole new one. The pair, though, changes in two
 * steps, and in between one file is new and the other old. We rename the key
 * first and the certificate last, making tls.crt the commit point: a reader
 * that reloads when the certificate changes (the usual trigger, and the file
 * whose notAfter monitoring watches) always finds the matching key already in
 * place. The opposite order would hand that reader a new certificate with
 * the old key. No order helps a reader that reacts to the key file, and a
 * reader can always race a second rotation, so readers should still check
 * that the key matches the certificate and keep the old pair if not
 * (README.md).
 */
static int publish_pair(const char *dir, const char *cert_name, BIO *cert_pem, const char *key_name,
                        BIO *key_pem, lfc_error *err) {
  char cert_path[LFC_PATH_MAX];
  char key_path[LFC_PATH_MAX];
  char cert_tmp[LFC_PATH_MAX] = "";
  char key_tmp[LFC_PATH_MAX] = "";
  char *data = NULL;
  long len;
  int dir_fd = -1;
  int rc;

  rc = join_path(cert_path, dir, cert_name, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = join_path(key_path, dir, key_name, err);
  if (rc != LFC_OK) {
    goto out;
  }
  len = bio_bytes(key_pem, &data);
  rc = write_temp(dir, key_name, data, (size_t)len, 0600, key_tmp, err);
  if (rc != LFC_OK) {
    goto out;
  }
  len = bio_bytes(cert_pem, &data);
  rc = write_temp(dir, cert_name, data, (size_t)len, 0644, cert_tmp, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = lock_dir(dir, &dir_fd, err);
  if (rc != LFC_OK) {
    goto out;
  }
  if (rename(key_tmp, key_path) != 0) {
    rc = set_error(err, LFC_EIO, "cannot rename %s to %s: %s", key_tmp, key_path, strerror(errno));
    goto out;
  }
  key_tmp[0] = '\0';
  if (rename(cert_tmp, cert_path) != 0) {
    rc = set_error(err, LFC_EIO,
                   "cannot rename %s to %s: %s; %s now holds a new key that "
                   "does not match %s, run the command again",
                   cert_tmp, cert_path, strerror(errno), key_path, cert_path);
    goto out;
  }
  cert_tmp[0] = '\0';
  rc = sync_dir(dir, dir_fd, err);

out:
  if (dir_fd >= 0) {
    close(dir_fd); /* Releases the lock. */
  }
  if (key_tmp[0] != '\0') {
    unlink(key_tmp);
  }
  if (cert_tmp[0] != '\0') {
    unlink(cert_tmp);
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading PEM files                                                         */

/* Refuses to prompt for a passphrase: this is a batch tool, and our own keys
 * are never encrypted (the 0600 mode protects them). */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

/* Opens `path` for one PEM read; NULL with `err` set when it cannot. */
static BIO *open_pem(const char *path, lfc_error *err) {
  BIO *bio;
  errno = 0;
  bio = BIO_new_file(path, "r");
  if (bio == NULL) {
    set_error(err, LFC_EINPUT, "cannot read %s: %s", path,
              errno != 0 ? strerror(errno) : "open failed");
  }
  return bio;
}

static int load_cert(const char *path, X509 **out, lfc_error *err) {
  BIO *bio = open_pem(path, err);
  int rc = LFC_EINPUT;

  *out = NULL;
  if (bio == NULL) {
    goto out;
  }
  *out = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
  if (*out == NULL) {
    rc = set_error(err, LFC_EINPUT, "%s does not hold a PEM certificate", path);
    goto out;
  }
  rc = LFC_OK;

out:
  ERR_clear_error();
  BIO_free(bio);
  return rc;
}

static int load_key(const char *path, EVP_PKEY **out, lfc_error *err) {
  BIO *bio = open_pem(path, err);
  int rc = LFC_EINPUT;

  *out = NULL;
  if (bio == NULL) {
    goto out;
  }
  *out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  if (*out == NULL) {
    rc = set_error(err, LFC_EINPUT, "%s does not hold an unencrypted PEM private key", path);
    goto out;
  }
  rc = LFC_OK;

out:
  ERR_clear_error();
  BIO_free(bio);
  return rc;
}

/* Loads dir/ca.crt and dir/ca.key and checks that they are a CA and its key.
 * On success the caller owns *cert and *key; on failure both are NULL. */
static int load_ca(const char *dir, X509 **cert, EVP_PKEY **key, lfc_error *err) {
  char cert_path[LFC_PATH_MAX];
  char key_path[LFC_PATH_MAX];
  int rc;

  *cert = NULL;
  *key = NULL;
  rc = join_path(cert_path, dir, LFC_CA_CERT_FILE, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = join_path(key_path, dir, LFC_CA_KEY_FILE, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_cert(cert_path, cert, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_key(key_path, key, err);
  if (rc != LFC_OK) {
    goto out;
  }
  if (X509_check_ca(*cert) < 1) {
    rc = set_error(err, LFC_EINPUT, "%s is not a CA certificate", cert_path);
    goto out;
  }
  if (X509_check_private_key(*cert, *key) != 1) {
    rc = set_error(err, LFC_EINPUT, "%s is not the key of %s", key_path, cert_path);
    goto out;
  }
  rc = LFC_OK;

out:
  ERR_clear_error();
  if (rc != LFC_OK) {
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Building certificates                                                     */

static int make_key(lfc_key_type type, EVP_PKEY **out, lfc_error *err) {
  if (type == LFC_KEY_RSA_2048) {
    *out = EVP_RSA_gen(2048);
  } else {
    *out = EVP_EC_gen("P-256");
  }
  if (*out == NULL) {
    return set_crypto_error(err, "generating a key");
  }
  return LFC_OK;
}

/* The type of an existing key, for a rotation that keeps it. A key of some
 * other kind (Ed25519, another curve) becomes ECDSA P-256, the default. */
static lfc_key_type key_type_of(EVP_PKEY *key) {
  if (key != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    return LFC_KEY_RSA_2048;
  }
  return LFC_KEY_ECDSA_P256;
}

/* Sets a random positive 128-bit serial (RFC 5280 allows 20 octets; the CA/B
 * Forum asks for at least 64 random bits). A serial equal to `avoid` (the
 * certificate being rotated out) is drawn again. */
static int set_random_serial(X509 *x, const ASN1_INTEGER *avoid, lfc_error *err) {
  unsigned char buf[16];
  BIGNUM *bn = NULL;
  int rc;

  for (;;) {
    if (RAND_bytes(buf, sizeof buf) != 1) {
      rc = set_crypto_error(err, "drawing a serial number");
      goto out;
    }
    BN_free(bn);
    bn = BN_bin2bn(buf, sizeof buf, NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
      rc = set_crypto_error(err, "setting the serial number");
      goto out;
    }
    if (!BN_is_zero(bn) &&
        (avoid == NULL || ASN1_INTEGER_cmp(avoid, X509_get0_serialNumber(x)) != 0)) {
      break;
    }
  }
  rc = LFC_OK;

out:
  OPENSSL_cleanse(buf, sizeof buf);
  BN_free(bn);
  return rc;
}

/* Builds a subject of organizationName values then the commonName, the
 * order Kubernetes tooling writes them in. */
static int make_name(const char *cn, const char *const *orgs, size_t n_orgs, X509_NAME **out,
                     lfc_error *err) {
  X509_NAME *name = X509_NAME_new();
  int rc;

  if (name == NULL) {
    rc = set_crypto_error(err, "allocating a subject name");
    goto out;
  }
  for (size_t i = 0; i < n_orgs; i++) {
    if (X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                   (const unsigned char *)orgs[i], -1, -1, 0) != 1) {
      rc = set_crypto_error(err, "setting the organization");
      goto out;
    }
  }
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                 -1, 0) != 1) {
    rc = set_crypto_error(err, "setting the common name");
    goto out;
  }
  rc = LFC_OK;

out:
  if (rc != LFC_OK) {
    X509_NAME_free(name);
    name = NULL;
  }
  *out = name;
  return rc;
}

/* Adds a DNS name unless it is already there (DNS compares without case). */
static int san_add_dns(GENERAL_NAMES *gens, const char *name, lfc_error *err) {
  GENERAL_NAME *gn = NULL;
  ASN1_IA5STRING *s = NULL;
  size_t len = strlen(name);
  int rc;

  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *have = sk_GENERAL_NAME_value(gens, i);
    if (have->type == GEN_DNS && (size_t)ASN1_STRING_length(have->d.dNSName) == len &&
        strncasecmp((const char *)ASN1_STRING_get0_data(have->d.dNSName), name, len) == 0) {
      return LFC_OK;
    }
  }
  gn = GENERAL_NAME_new();
  s = ASN1_IA5STRING_new();
  if (gn == NULL || s == NULL || ASN1_STRING_set(s, name, (int)len) != 1) {
    rc = set_crypto_error(err, "building a DNS subjectAltName");
    goto out;
  }
  GENERAL_NAME_set0_value(gn, GEN_DNS, s);
  s = NULL;
  if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
    rc = set_crypto_error(err, "building a DNS subjectAltName");
    goto out;
  }
  gn = NULL;
  rc = LFC_OK;

out:
  ASN1_IA5STRING_free(s);
  GENERAL_NAME_free(gn);
  return rc;
}

/* Parses an IPv4 or IPv6 address (inet_pton's strict forms: no IPv4
 * shorthand such as "127.1", no zone suffix) and adds it unless present. */
static int san_add_ip(GENERAL_NAMES *gens, const char *text, lfc_error *err) {
  unsigned char addr[16];
  int len = 0;
  GENERAL_NAME *gn = NULL;
  ASN1_OCTET_STRING *s = NULL;
  int rc;

  if (inet_pton(AF_INET, text, addr) == 1) {
    len = 4;
  } else if (inet_pton(AF_INET6, text, addr) == 1) {
    len = 16;
  } else {
    return set_error(err, LFC_EINVAL, "'%.64s' is not an IPv4 or IPv6 address", text);
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *have = sk_GENERAL_NAME_value(gens, i);
    if (have->type == GEN_IPADD && ASN1_STRING_length(have->d.iPAddress) == len &&
        memcmp(ASN1_STRING_get0_data(have->d.iPAddress), addr, (size_t)len) == 0) {
      return LFC_OK;
    }
  }
  gn = GENERAL_NAME_new();
  s = ASN1_OCTET_STRING_new();
  if (gn == NULL || s == NULL || ASN1_OCTET_STRING_set(s, addr, len) != 1) {
    rc = set_crypto_error(err, "building an IP subjectAltName");
    goto out;
  }
  GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
  s = NULL;
  if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
    rc = set_crypto_error(err, "building an IP subjectAltName");
    goto out;
  }
  gn = NULL;
  rc = LFC_OK;

out:
  ASN1_OCTET_STRING_free(s);
  GENERAL_NAME_free(gn);
  return rc;
}

/* Checks the serving names and builds the subjectAltName list: the two
 * in-cluster names of the Service, then --dns, then --ip. */
static int make_serving_san(const lfc_serving_opts *o, GENERAL_NAMES **out, lfc_error *err) {
  GENERAL_NAMES *gens = NULL;
  /* Two labels of 63, the dots and ".svc.cluster.local" fit easily. */
  char svc[2 * LFC_LABEL_MAX + 32];
  int rc;

  if (o->n_dns > LFC_DNS_MAX || o->n_ips > LFC_IP_MAX) {
    rc = set_error(err, LFC_EINVAL, "at most %d DNS names and %d IPs", LFC_DNS_MAX, LFC_IP_MAX);
    goto out;
  }
  gens = sk_GENERAL_NAME_new_null();
  if (gens == NULL) {
    rc = set_crypto_error(err, "allocating the subjectAltName");
    goto out;
  }
  snprintf(svc, sizeof svc, "%s.%s.svc", o->service, o->namespace_);
  rc = san_add_dns(gens, svc, err);
  if (rc != LFC_OK) {
    goto out;
  }
  snprintf(svc, sizeof svc, "%s.%s.svc.cluster.local", o->service, o->namespace_);
  rc = san_add_dns(gens, svc, err);
  if (rc != LFC_OK) {
    goto out;
  }
  for (size_t i = 0; i < o->n_dns; i++) {
    if (!is_dns_name(o->dns[i])) {
      rc = set_error(err, LFC_EINVAL, "'%.64s' is not a valid DNS name", o->dns[i]);
      goto out;
    }
    rc = san_add_dns(gens, o->dns[i], err);
    if (rc != LFC_OK) {
      goto out;
    }
  }
  for (size_t i = 0; i < o->n_ips; i++) {
    rc = san_add_ip(gens, o->ips[i], err);
    if (rc != LFC_OK) {
      goto out;
    }
  }
  rc = LFC_OK;

out:
  if (rc != LFC_OK) {
    GENERAL_NAMES_free(gens);
    gens = NULL;
  }
  *out = gens;
  return rc;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, lfc_error *err) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  int ok;

  if (ext == NULL) {
    return set_crypto_error(err, "building a certificate extension");
  }
  ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) {
    return set_crypto_error(err, "adding a certificate extension");
  }
  return LFC_OK;
}

/*
 * Makes and signs one certificate for `key`. subject and san are copied (san
 * may be NULL). For KIND_CA, issuer and issuer_key are NULL and the
 * certificate signs itself. On success the caller owns *out.
 */
static int issue(cert_kind kind, EVP_PKEY *key, const X509_NAME *subject, GENERAL_NAMES *san,
                 X509 *issuer, EVP_PKEY *issuer_key, int days, time_t now,
                 const ASN1_INTEGER *avoid_serial, X509 **out, lfc_error *err) {
  X509 *x = X509_new();
  X509V3_CTX ctx;
  int rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
  int rc;

  if (x == NULL) {
    rc = set_crypto_error(err, "allocating a certificate");
    goto out;
  }
  if (X509_set_version(x, X509_VERSION_3) != 1) {
    rc = set_crypto_error(err, "setting the certificate version");
    goto out;
  }
  rc = set_random_serial(x, avoid_serial, err);
  if (rc != LFC_OK) {
    goto out;
  }
  if (ASN1_TIME_adj(X509_getm_notBefore(x), now, 0, -LFC_BACKDATE_SECONDS) == NULL ||
      ASN1_TIME_adj(X509_getm_notAfter(x), now, days, 0) == NULL) {
    rc = set_crypto_error(err, "setting the validity period");
    goto out;
  }
  if (X509_set_subject_name(x, subject) != 1 ||
      X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : subject) != 1 ||
      X509_set_pubkey(x, key) != 1) {
    rc = set_crypto_error(err, "setting the subject, issuer and public key");
    goto out;
  }

  /* The public key must be in place first: subjectKeyIdentifier hashes it. */
  X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
  if (kind == KIND_CA) {
    /* pathlen 0: this CA signs leaves only, never another CA. */
    rc = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err);
    if (rc == LFC_OK) {
      rc = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err);
    }
    if (rc == LFC_OK) {
      rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err);
    }
  } else {
    rc = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err);
    if (rc == LFC_OK) {
      /* RSA key exchange (TLS 1.2 without ECDHE) encrypts to the key. */
      rc = add_ext(x, &ctx, NID_key_usage,
                   rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature",
                   err);
    }
    if (rc == LFC_OK) {
      rc = add_ext(x, &ctx, NID_ext_key_usage, kind == KIND_SERVER ? "serverAuth" : "clientAuth",
                   err);
    }
    if (rc == LFC_OK) {
      rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err);
    }
    if (rc == LFC_OK) {
      rc = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err);
    }
  }
  if (rc != LFC_OK) {
    goto out;
  }
  if (san != NULL && X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, X509V3_ADD_DEFAULT) != 1) {
    rc = set_crypto_error(err, "adding the subjectAltName");
    goto out;
  }
  if (X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) <= 0) {
    rc = set_crypto_error(err, "signing the certificate");
    goto out;
  }
  rc = LFC_OK;

out:
  if (rc != LFC_OK) {
    X509_free(x);
    x = NULL;
  }
  *out = x;
  return rc;
}

/* PEM-encodes a certificate and its key into memory BIOs. The key goes into
 * a secure-memory BIO, which wipes its buffer when it grows and when it is
 * freed, so no copy of the key outlives the call. */
static int encode_pair(X509 *cert, EVP_PKEY *key, BIO **cert_pem, BIO **key_pem, lfc_error *err) {
  int rc;

  *cert_pem = BIO_new(BIO_s_mem());
  *key_pem = BIO_new(BIO_s_secmem());
  if (*cert_pem == NULL || *key_pem == NULL) {
    rc = set_crypto_error(err, "allocating PEM buffers");
    goto out;
  }
  if (PEM_write_bio_X509(*cert_pem, cert) != 1) {
    rc = set_crypto_error(err, "encoding the certificate");
    goto out;
  }
  /* PKCS#8, unencrypted: what Kubernetes, Go and GnuTLS all read. */
  if (PEM_write_bio_PrivateKey(*key_pem, key, NULL, NULL, 0, NULL, NULL) != 1) {
    rc = set_crypto_error(err, "encoding the private key");
    goto out;
  }
  rc = LFC_OK;

out:
  if (rc != LFC_OK) {
    BIO_free(*cert_pem);
    BIO_free(*key_pem);
    *cert_pem = NULL;
    *key_pem = NULL;
  }
  return rc;
}

/* Makes a key and a certificate for it and publishes both in dir. */
static int make_and_publish(const char *dir, cert_kind kind, lfc_key_type key_type,
                            const X509_NAME *subject, GENERAL_NAMES *san, X509 *ca,
                            EVP_PKEY *ca_key, int days, time_t now,
                            const ASN1_INTEGER *avoid_serial, const char *cert_name,
                            const char *key_name, lfc_error *err) {
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  BIO *cert_pem = NULL;
  BIO *key_pem = NULL;
  int rc;

  rc = make_key(key_type, &key, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = issue(kind, key, subject, san, ca, ca_key, days, now, avoid_serial, &cert, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = encode_pair(cert, key, &cert_pem, &key_pem, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = publish_pair(dir, cert_name, cert_pem, key_name, key_pem, err);

out:
  BIO_free(key_pem);
  BIO_free(cert_pem);
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The CA                                                                    */

static int count_ca_files(const char *dir, int *count, lfc_error *err) {
  char path[LFC_PATH_MAX];
  int present = 0;
  int rc;

  *count = 0;
  rc = join_path(path, dir, LFC_CA_CERT_FILE, err);
  if (rc == LFC_OK) {
    rc = file_present(path, &present, err);
  }
  if (rc != LFC_OK) {
    return rc;
  }
  *count += present;
  rc = join_path(path, dir, LFC_CA_KEY_FILE, err);
  if (rc == LFC_OK) {
    rc = file_present(path, &present, err);
  }
  if (rc != LFC_OK) {
    return rc;
  }
  *count += present;
  return LFC_OK;
}

int lfc_ca_exists(const char *dir, int *exists, lfc_error *err) {
  int count = 0;
  int rc;

  dir = dir_or_dot(dir);
  *exists = 0;
  rc = count_ca_files(dir, &count, err);
  if (rc != LFC_OK) {
    return rc;
  }
  if (count == 1) {
    return set_error(err, LFC_EINPUT,
                     "%s holds only one of %s and %s; restore the other or "
                     "remove it",
                     dir, LFC_CA_CERT_FILE, LFC_CA_KEY_FILE);
  }
  *exists = count == 2;
  return LFC_OK;
}

int lfc_ca_create(const lfc_ca_opts *o, lfc_error *err) {
  const char *dir = dir_or_dot(o->dir);
  const char *cn = o->cn != NULL ? o->cn : LFC_CA_CN_DEFAULT;
  X509_NAME *subject = NULL;
  int days = 0;
  int count = 0;
  int rc;

  rc = check_days(o->days, LFC_CA_DAYS_DEFAULT, &days, err);
  if (rc == LFC_OK) {
    rc = check_key_type(o->key_type, err);
  }
  if (rc == LFC_OK) {
    rc = check_subject(cn, o->orgs, o->n_orgs, err);
  }
  if (rc != LFC_OK) {
    goto out;
  }
  if (!o->force) {
    rc = count_ca_files(dir, &count, err);
    if (rc != LFC_OK) {
      goto out;
    }
    if (count > 0) {
      rc = set_error(err, LFC_EEXIST,
                     "%s already holds a CA (%s or %s); replacing it would "
                     "invalidate every certificate it issued (use --force)",
                     dir, LFC_CA_CERT_FILE, LFC_CA_KEY_FILE);
      goto out;
    }
  }
  rc = make_name(cn, o->orgs, o->n_orgs, &subject, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = make_and_publish(dir, KIND_CA, o->key_type, subject, NULL, NULL, NULL, days, o->now, NULL,
                        LFC_CA_CERT_FILE, LFC_CA_KEY_FILE, err);

out:
  X509_NAME_free(subject);
  return rc;
}

int lfc_ca_bundle(const char *dir, char **out, lfc_error *err) {
  char path[LFC_PATH_MAX];
  X509 *cert = NULL;
  BIO *pem = NULL;
  char *data = NULL;
  char *b64 = NULL;
  long len;
  int rc;

  *out = NULL;
  rc = join_path(path, dir_or_dot(dir), LFC_CA_CERT_FILE, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_cert(path, &cert, err);
  if (rc != LFC_OK) {
    goto out;
  }
  /* Re-encoding the parsed certificate gives the canonical PEM, without any
   * comments or other blocks someone left in the file. */
  pem = BIO_new(BIO_s_mem());
  if (pem == NULL || PEM_write_bio_X509(pem, cert) != 1) {
    rc = set_crypto_error(err, "encoding the CA certificate");
    goto out;
  }
  len = bio_bytes(pem, &data);
  /* 4 output bytes per 3 input bytes, rounded up, and the NUL. A
   * certificate is a few kilobytes, far from any overflow. */
  b64 = malloc(4 * (((size_t)len + 2) / 3) + 1);
  if (b64 == NULL) {
    rc = set_error(err, LFC_ENOMEM, "out of memory encoding %s", path);
    goto out;
  }
  EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);
  *out = b64;
  b64 = NULL;
  rc = LFC_OK;

out:
  free(b64);
  BIO_free(pem);
  X509_free(cert);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Serving and client certificates                                           */

static int check_serving(const lfc_serving_opts *o, int names_required, int *days, lfc_error *err) {
  int rc = check_days(o->days, LFC_LEAF_DAYS_DEFAULT, days, err);

  if (rc == LFC_OK) {
    rc = check_key_type(o->key_type, err);
  }
  if (rc == LFC_OK) {
    rc = check_subject(o->cn, o->orgs, o->n_orgs, err);
  }
  if (rc != LFC_OK) {
    return rc;
  }
  if ((o->service == NULL) != (o->namespace_ == NULL) || (names_required && o->service == NULL)) {
    return set_error(err, LFC_EINVAL,
                     "a serving certificate needs both a service and a "
                     "namespace");
  }
  if (o->service != NULL && !is_label(o->service)) {
    return set_error(err, LFC_EINVAL,
                     "service '%.64s' is not a DNS-1123 label (1-63 of "
                     "a-z, 0-9 and '-')",
                     o->service);
  }
  if (o->namespace_ != NULL && !is_label(o->namespace_)) {
    return set_error(err, LFC_EINVAL,
                     "namespace '%.64s' is not a DNS-1123 label (1-63 of "
                     "a-z, 0-9 and '-')",
                     o->namespace_);
  }
  return LFC_OK;
}

/* The default serving commonName. commonName is only informative for
 * serving certificates (clients match the subjectAltName), but must fit
 * 64 bytes. */
static int make_serving_subject(const lfc_serving_opts *o, X509_NAME **out, lfc_error *err) {
  char cn[2 * LFC_LABEL_MAX + 16];
  const char *use = o->cn;

  if (use == NULL) {
    snprintf(cn, sizeof cn, "%s.%s.svc", o->service, o->namespace_);
    use = strlen(cn) <= LFC_CN_MAX ? cn : o->service;
  }
  return make_name(use, o->orgs, o->n_orgs, out, err);
}

int lfc_serving_create(const lfc_serving_opts *o, lfc_error *err) {
  const char *dir = dir_or_dot(o->dir);
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  GENERAL_NAMES *san = NULL;
  X509_NAME *subject = NULL;
  int days = 0;
  int rc;

  rc = check_serving(o, 1, &days, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = make_serving_san(o, &san, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = make_serving_subject(o, &subject, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_ca(dir, &ca, &ca_key, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = make_and_publish(dir, KIND_SERVER, o->key_type, subject, san, ca, ca_key, days, o->now, NULL,
                        LFC_SERVING_CERT_FILE, LFC_SERVING_KEY_FILE, err);

out:
  X509_NAME_free(subject);
  GENERAL_NAMES_free(san);
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  return rc;
}

/* Copies the commonName of cert (read from path) into cn, for a rotation
 * that changes the organizations but keeps the name. */
static int current_cn(X509 *cert, const char *path, char cn[LFC_CN_MAX + 1], lfc_error *err) {
  const X509_NAME *name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  const ASN1_STRING *data;
  int len;

  if (idx < 0) {
    return set_error(err, LFC_EINPUT, "%s has no common name to keep", path);
  }
  data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  len = ASN1_STRING_length(data);
  if (len <= 0 || len > LFC_CN_MAX) {
    return set_error(err, LFC_EINPUT, "%s has an unusable common name", path);
  }
  memcpy(cn, ASN1_STRING_get0_data(data), (size_t)len);
  cn[len] = '\0';
  return LFC_OK;
}

int lfc_serving_rotate(const lfc_serving_opts *o, lfc_error *err) {
  const char *dir = dir_or_dot(o->dir);
  char path[LFC_PATH_MAX];
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  X509 *current = NULL;
  GENERAL_NAMES *san = NULL;
  X509_NAME *subject = NULL;
  lfc_key_type key_type = o->key_type;
  char cn[LFC_CN_MAX + 1];
  int days = 0;
  int rc;

  rc = check_serving(o, 0, &days, err);
  if (rc != LFC_OK) {
    goto out;
  }
  if (o->service == NULL && (o->n_dns > 0 || o->n_ips > 0)) {
    rc = set_error(err, LFC_EINVAL,
                   "extra DNS names or IPs need the service and namespace "
                   "too; without them the current names are kept");
    goto out;
  }
  rc = load_ca(dir, &ca, &ca_key, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = join_path(path, dir, LFC_SERVING_CERT_FILE, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_cert(path, &current, err);
  if (rc != LFC_OK) {
    goto out;
  }
  /* Same CA or nothing: a rotation must not silently move the webhook to a
   * CA that the caBundle does not name. The current certificate may have
   * expired; that is often why it is being rotated. */
  if (X509_check_issued(ca, current) != X509_V_OK ||
      X509_verify(current, X509_get0_pubkey(ca)) != 1) {
    ERR_clear_error();
    rc = set_error(err, LFC_EINPUT, "%s was not issued by %s/%s; use 'serving' to start over", path,
                   dir, LFC_CA_CERT_FILE);
    goto out;
  }
  if (o->service != NULL) {
    rc = make_serving_san(o, &san, err);
    if (rc == LFC_OK) {
      rc = make_serving_subject(o, &subject, err);
    }
    if (rc != LFC_OK) {
      goto out;
    }
  } else {
    san = X509_get_ext_d2i(current, NID_subject_alt_name, NULL, NULL);
    if (san == NULL) {
      ERR_clear_error();
      rc = set_error(err, LFC_EINPUT,
                     "%s has no subjectAltName to keep; give the service and "
                     "namespace",
                     path);
      goto out;
    }
    if (o->cn != NULL || o->n_orgs > 0) {
      rc = LFC_OK;
      if (o->cn == NULL) {
        rc = current_cn(current, path, cn, err);
      }
      if (rc == LFC_OK) {
        rc = make_name(o->cn != NULL ? o->cn : cn, o->orgs, o->n_orgs, &subject, err);
      }
      if (rc != LFC_OK) {
        goto out;
      }
    } else {
      subject = X509_NAME_dup(X509_get_subject_name(current));
      if (subject == NULL) {
        rc = set_crypto_error(err, "copying the current subject");
        goto out;
      }
    }
  }
  if (key_type == LFC_KEY_DEFAULT) {
    key_type = key_type_of(X509_get0_pubkey(current));
  }
  rc = make_and_publish(dir, KIND_SERVER, key_type, subject, san, ca, ca_key, days, o->now,
                        X509_get0_serialNumber(current), LFC_SERVING_CERT_FILE,
                        LFC_SERVING_KEY_FILE, err);

out:
  X509_NAME_free(subject);
  GENERAL_NAMES_free(san);
  X509_free(current);
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  return rc;
}

/* An --out-prefix is a file name stem, not a path: it must not climb out of
 * dir or hide the files as dot files. */
static int is_prefix(const char *s) {
  size_t n = strlen(s);

  if (n == 0 || n > LFC_PREFIX_MAX || s[0] == '.' || s[0] == '-') {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
      return 0;
    }
  }
  return 1;
}

int lfc_client_create(const lfc_client_opts *o, lfc_error *err) {
  const char *dir = dir_or_dot(o->dir);
  const char *prefix = o->out_prefix != NULL ? o->out_prefix : LFC_CLIENT_PREFIX_DEFAULT;
  char cert_name[LFC_PREFIX_MAX + 8];
  char key_name[LFC_PREFIX_MAX + 8];
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  X509_NAME *subject = NULL;
  int days = 0;
  int rc;

  rc = check_days(o->days, LFC_LEAF_DAYS_DEFAULT, &days, err);
  if (rc == LFC_OK) {
    rc = check_key_type(o->key_type, err);
  }
  if (rc != LFC_OK) {
    goto out;
  }
  if (o->cn == NULL) {
    rc = set_error(err, LFC_EINVAL,
                   "a client certificate needs a common name (the user "
                   "name)");
    goto out;
  }
  rc = check_subject(o->cn, o->orgs, o->n_orgs, err);
  if (rc != LFC_OK) {
    goto out;
  }
  if (!is_prefix(prefix)) {
    rc = set_error(err, LFC_EINVAL,
                   "output prefix '%.64s' must be 1..%d of letters, digits, "
                   "'-', '_' and '.', not starting with '.' or '-'",
                   prefix, LFC_PREFIX_MAX);
    goto out;
  }
  snprintf(cert_name, sizeof cert_name, "%s.crt", prefix);
  snprintf(key_name, sizeof key_name, "%s.key", prefix);
  rc = make_name(o->cn, o->orgs, o->n_orgs, &subject, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = load_ca(dir, &ca, &ca_key, err);
  if (rc != LFC_OK) {
    goto out;
  }
  rc = make_and_publish(dir, KIND_CLIENT, o->key_type, subject, NULL, ca, ca_key, days, o->now,
                        NULL, cert_name, key_name, err);

out:
  X509_NAME_free(subject);
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  return rc;
}
