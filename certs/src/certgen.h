/*
 * certgen.h: the X.509 half of leasefence-certs.
 *
 * It makes a private CA, a serving certificate for the webhook's Service, and
 * client certificates, all on OpenSSL's libcrypto, and writes them as PEM
 * files with fixed names into one directory. The command-line tool
 * (main.c) is a thin layer over these functions, and the unit tests call them
 * directly.
 *
 * Conventions for every function here (the same as the fencing library's):
 *  - Functions return 0 (LFC_OK) on success and a negative LFC_E* code on
 *    failure; when `err` is not NULL it then holds the code and one sentence
 *    naming the file or operation that failed. Nothing is printed.
 *  - Input strings and arrays are borrowed for the duration of the call.
 *  - Private keys never leave this module except as the 0600 key files; the
 *    in-memory PEM copies are wiped before they are freed.
 *  - Every list that comes from the command line has a bound, LFC_*_MAX.
 */
#ifndef LEASEFENCE_CERTGEN_H
#define LEASEFENCE_CERTGEN_H

#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

enum {
  LFC_OK = 0,
  LFC_EINVAL = -1,  /* An argument is unacceptable: bad IP, key type, name, days. */
  LFC_EINPUT = -2,  /* An input file (CA, current serving cert) is missing,
                     * unreadable, or not what it must be. */
  LFC_EEXIST = -3,  /* Refused to replace something that exists (the CA). */
  LFC_EIO = -4,     /* Writing an output file failed. */
  LFC_ECRYPTO = -5, /* libcrypto failed (key generation, signing, encoding). */
  LFC_ENOMEM = -6,  /* Out of memory. */
};

#define LFC_ERROR_TEXT_MAX 512

/* Detail of a failure. Owned by the caller, usually on the stack; functions
 * write into it only when they fail. */
typedef struct lfc_error {
  int code;
  char text[LFC_ERROR_TEXT_MAX];
} lfc_error;

/* ------------------------------------------------------------------------ */
/* Names, defaults and bounds                                                */

/* The file names are fixed so that a kubernetes.io/tls Secret (tls.crt,
 * tls.key) and the API server's flags can point at them without options. */
#define LFC_CA_CERT_FILE "ca.crt"
#define LFC_CA_KEY_FILE "ca.key"
#define LFC_SERVING_CERT_FILE "tls.crt"
#define LFC_SERVING_KEY_FILE "tls.key"
#define LFC_CLIENT_PREFIX_DEFAULT "client" /* client.crt, client.key */

#define LFC_CA_CN_DEFAULT "leasefence-ca"
#define LFC_CA_DAYS_DEFAULT 3650
#define LFC_LEAF_DAYS_DEFAULT 365
#define LFC_DAYS_MAX 36500 /* A hundred years; anything above is a typo. */

/* notBefore is set this far in the past so that a peer whose clock is a few
 * minutes behind ours still accepts a certificate made just now. */
#define LFC_BACKDATE_SECONDS 300

#define LFC_DNS_MAX 32       /* --dns names on one certificate. */
#define LFC_IP_MAX 32        /* --ip addresses on one certificate. */
#define LFC_ORG_MAX 16       /* --org values (Kubernetes groups) on one cert. */
#define LFC_DNS_NAME_MAX 253 /* RFC 1035 bound on a DNS name. */
#define LFC_LABEL_MAX 63     /* --service and --namespace are DNS-1123 labels. */
#define LFC_CN_MAX 64        /* X.509 upper bound on commonName. */
#define LFC_ORG_LEN_MAX 64   /* X.509 upper bound on organizationName. */
#define LFC_PREFIX_MAX 64    /* --out-prefix. */
#define LFC_PATH_MAX 4096    /* Any path we build, NUL included. */

typedef enum lfc_key_type {
  LFC_KEY_DEFAULT = 0, /* ECDSA P-256; for a rotation: the current key's type. */
  LFC_KEY_ECDSA_P256 = 1,
  LFC_KEY_RSA_2048 = 2,
} lfc_key_type;

/* Parses "ecdsa-p256" or "rsa-2048" into *out. LFC_EINVAL otherwise. */
int lfc_key_type_parse(const char *text, lfc_key_type *out, lfc_error *err);

/* The command-line spelling of a key type; "ecdsa-p256" for LFC_KEY_DEFAULT. */
const char *lfc_key_type_name(lfc_key_type type);

/* ------------------------------------------------------------------------ */
/* The CA                                                                    */

typedef struct lfc_ca_opts {
  const char *dir;         /* Output directory; NULL means ".". */
  const char *cn;          /* NULL means LFC_CA_CN_DEFAULT. */
  const char *const *orgs; /* organizationName values, n_orgs of them. */
  size_t n_orgs;
  int days; /* 0 means LFC_CA_DAYS_DEFAULT. */
  lfc_key_type key_type;
  int force;  /* Non-zero: replace an existing CA. */
  time_t now; /* Start of validity (minus the backdate). */
} lfc_ca_opts;

/* Makes a new self-signed CA (basicConstraints CA:TRUE, pathlen 0; keyUsage
 * keyCertSign and cRLSign) and writes dir/ca.key (0600) then dir/ca.crt.
 * Without `force` it refuses with LFC_EEXIST when either file exists, because
 * replacing a CA invalidates every certificate it issued and every caBundle
 * that names it. */
int lfc_ca_create(const lfc_ca_opts *opts, lfc_error *err);

/* Sets *exists to 1 when dir holds both ca.crt and ca.key, 0 when it holds
 * neither. One without the other is LFC_EINPUT: a half CA must be looked at
 * by a person, not silently replaced. */
int lfc_ca_exists(const char *dir, int *exists, lfc_error *err);

/* Reads dir/ca.crt and sets *out to the base64 of its PEM on one line, the
 * form a webhook configuration's caBundle takes. *out is a NUL-terminated
 * string the caller frees with free(); it is NULL on failure. */
int lfc_ca_bundle(const char *dir, char **out, lfc_error *err);

/* ------------------------------------------------------------------------ */
/* Serving and client certificates                                           */

typedef struct lfc_serving_opts {
  const char *dir;        /* Holds the CA; gets tls.crt and tls.key. NULL: ".". */
  const char *service;    /* The webhook's Service name. */
  const char *namespace_; /* Its namespace. */
  const char *const *dns; /* Extra DNS names, n_dns of them. */
  size_t n_dns;
  const char *const *ips; /* Extra IPv4/IPv6 addresses as text, n_ips of them. */
  size_t n_ips;
  const char *cn; /* NULL: "<service>.<namespace>.svc" (or the
                              * service alone when that is over 64 bytes). */
  const char *const *orgs;
  size_t n_orgs;
  int days; /* 0 means LFC_LEAF_DAYS_DEFAULT. */
  lfc_key_type key_type;
  time_t now;
} lfc_serving_opts;

/* Makes a new serving key and certificate signed by the CA in dir: keyUsage
 * digitalSignature (plus keyEncipherment for RSA), extendedKeyUsage
 * serverAuth, and subjectAltName DNS:<service>.<namespace>.svc,
 * DNS:<service>.<namespace>.svc.cluster.local, then every --dns and --ip in
 * order, duplicates dropped. service and namespace are required. Replaces
 * dir/tls.crt and dir/tls.key if present, atomically (see lfc_serving_rotate
 * for the order). */
int lfc_serving_create(const lfc_serving_opts *opts, lfc_error *err);

/* Replaces dir/tls.crt and dir/tls.key with a new key and a certificate with
 * a new serial, signed by the same CA. The current tls.crt must exist and
 * must have been issued by dir/ca.crt (LFC_EINPUT otherwise); it may have
 * expired. When service and namespace are NULL, the new certificate keeps the
 * current subject and subjectAltName, and dns/ips must be empty; when they
 * are given, the names are made as for lfc_serving_create. key_type
 * LFC_KEY_DEFAULT keeps the current key's type.
 *
 * Write order: both files are written in full to temporary files in dir and
 * fsynced; then, under an exclusive flock(2) on dir, tls.key is renamed
 * into place, then tls.crt, then dir is fsynced. tls.crt is the commit point: a reader that reloads when tls.crt
 * changes finds the matching key already in place. README.md explains why
 * no order of two renames protects a reader that reacts to tls.key. */
int lfc_serving_rotate(const lfc_serving_opts *opts, lfc_error *err);

typedef struct lfc_client_opts {
  const char *dir;         /* Holds the CA; gets <prefix>.crt and .key. */
  const char *out_prefix;  /* NULL means LFC_CLIENT_PREFIX_DEFAULT. */
  const char *cn;          /* Required: the Kubernetes user name. */
  const char *const *orgs; /* The Kubernetes groups, e.g. system:masters. */
  size_t n_orgs;
  int days; /* 0 means LFC_LEAF_DAYS_DEFAULT. */
  lfc_key_type key_type;
  time_t now;
} lfc_client_opts;

/* Makes a client key and certificate (extendedKeyUsage clientAuth, no
 * subjectAltName) signed by the CA in dir, written like a serving pair. */
int lfc_client_create(const lfc_client_opts *opts, lfc_error *err);

#ifdef __cplusplus
}
#endif

#endif
