/*
 * test_certgen.c: unit tests of certs/src/certgen.c.
 *
 * Each test gets a fresh temporary directory, makes certificates in it
 * through the module, and checks them with OpenSSL's own verifier and
 * accessors rather than with certgen's code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certgen.h"

#define SVC "leasefence-webhook"
#define NS "leasefence"

typedef struct fixture {
  char dir[64];
  char path[LFC_PATH_MAX]; /* Scratch for path(). */
} fixture;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);

  assert_non_null(f);
  strcpy(f->dir, "/tmp/lfc-test-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  /* A known umask, so that the mode checks test our open(2) mode only. */
  umask(022);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  DIR *d = opendir(f->dir);
  struct dirent *e;
  char p[LFC_PATH_MAX];

  assert_non_null(d);
  for (e = readdir(d); e != NULL; e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
      unlink(p);
    }
  }
  closedir(d);
  rmdir(f->dir);
  free(f);
  return 0;
}

static const char *path(fixture *f, const char *name) {
  snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
  return f->path;
}

static X509 *read_cert(fixture *f, const char *name) {
  FILE *fp = fopen(path(f, name), "r");
  X509 *x;

  assert_non_null(fp);
  x = PEM_read_X509(fp, NULL, NULL, NULL);
  fclose(fp);
  assert_non_null(x);
  return x;
}

static EVP_PKEY *read_key(fixture *f, const char *name) {
  FILE *fp = fopen(path(f, name), "r");
  EVP_PKEY *k;

  assert_non_null(fp);
  k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
  fclose(fp);
  assert_non_null(k);
  return k;
}

static int exists(fixture *f, const char *name) {
  struct stat st;

  return stat(path(f, name), &st) == 0;
}

static void make_ca(fixture *f, lfc_key_type type) {
  lfc_ca_opts o;
  lfc_error err;

  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  o.key_type = type;
  o.now = time(NULL);
  assert_int_equal(lfc_ca_create(&o, &err), LFC_OK);
}

static void serving_opts(fixture *f, lfc_serving_opts *o) {
  memset(o, 0, sizeof *o);
  o->dir = f->dir;
  o->service = SVC;
  o->namespace_ = NS;
  o->now = time(NULL);
}

/* X509_verify_cert against the CA alone, for the given purpose. */
static void assert_verifies(X509 *ca, X509 *leaf, int purpose) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int ok;

  assert_non_null(store);
  assert_non_null(ctx);
  assert_int_equal(X509_STORE_add_cert(store, ca), 1);
  assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
  assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
  ok = X509_verify_cert(ctx);
  if (ok != 1) {
    print_error("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  }
  assert_int_equal(ok, 1);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
}

/* Renders a certificate's subjectAltName as "DNS:a,IP:1.2.3.4,..." with
 * IPs in inet_ntop's form. */
static void san_text(X509 *x, char *out, size_t size) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

  out[0] = '\0';
  assert_non_null(gens);
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
    size_t used = strlen(out);
    if (gn->type == GEN_DNS) {
      snprintf(out + used, size - used, "%sDNS:%.*s", i > 0 ? "," : "",
               ASN1_STRING_length(gn->d.dNSName),
               (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
    } else if (gn->type == GEN_IPADD) {
      char ip[INET6_ADDRSTRLEN];
      int len = ASN1_STRING_length(gn->d.iPAddress);
      assert_true(len == 4 || len == 16);
      assert_non_null(inet_ntop(len == 4 ? AF_INET : AF_INET6,
                                ASN1_STRING_get0_data(gn->d.iPAddress), ip, sizeof ip));
      snprintf(out + used, size - used, "%sIP:%s", i > 0 ? "," : "", ip);
    } else {
      fail_msg("unexpected subjectAltName type %d", gn->type);
    }
  }
  GENERAL_NAMES_free(gens);
}

static void assert_mode_0600(fixture *f, const char *name) {
  struct stat st;

  assert_int_equal(stat(path(f, name), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

/* No temporary file may survive a command, failed or not. */
static void assert_no_temp_files(fixture *f) {
  DIR *d = opendir(f->dir);
  struct dirent *e;

  assert_non_null(d);
  for (e = readdir(d); e != NULL; e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && e->d_name[0] == '.') {
      fail_msg("temporary file left behind: %s", e->d_name);
    }
  }
  closedir(d);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static void test_ca_is_a_ca(void **state) {
  fixture *f = *state;
  X509 *ca;
  EVP_PKEY *key;

  make_ca(f, LFC_KEY_DEFAULT);
  ca = read_cert(f, LFC_CA_CERT_FILE);
  key = read_key(f, LFC_CA_KEY_FILE);
  assert_int_equal(X509_check_ca(ca), 1);
  assert_true((X509_get_key_usage(ca) & KU_KEY_CERT_SIGN) != 0);
  assert_int_equal(X509_check_private_key(ca, key), 1);
  /* Self-signed: its own signature checks with its own key. */
  assert_int_equal(X509_verify(ca, key), 1);
  assert_mode_0600(f, LFC_CA_KEY_FILE);
  /* notBefore is a little in the past, for clock skew. */
  assert_true(X509_cmp_time(X509_get0_notBefore(ca), NULL) < 0);
  {
    time_t soon = time(NULL) + 60;
    assert_true(X509_cmp_time(X509_get0_notBefore(ca), &soon) < 0);
    time_t before = time(NULL) - 240;
    assert_true(X509_cmp_time(X509_get0_notBefore(ca), &before) < 0);
  }
  X509_free(ca);
  EVP_PKEY_free(key);
}

static void test_serving_verifies_and_names(void **state) {
  fixture *f = *state;
  const char *dns[] = {"webhook.example.com", SVC "." NS ".svc"};
  const char *ips[] = {"127.0.0.1", "::1", "127.0.0.1", "2001:db8::7"};
  lfc_serving_opts o;
  lfc_error err;
  X509 *ca;
  X509 *leaf;
  EVP_PKEY *key;
  char sans[1024];

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  o.dns = dns;
  o.n_dns = 2;
  o.ips = ips;
  o.n_ips = 4;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);

  ca = read_cert(f, LFC_CA_CERT_FILE);
  leaf = read_cert(f, LFC_SERVING_CERT_FILE);
  key = read_key(f, LFC_SERVING_KEY_FILE);
  assert_verifies(ca, leaf, X509_PURPOSE_SSL_SERVER);
  assert_int_equal(X509_check_private_key(leaf, key), 1);
  assert_int_equal(X509_check_ca(leaf), 0);

  /* Exactly these names, in this order; the duplicates were dropped. */
  san_text(leaf, sans, sizeof sans);
  assert_string_equal(sans, "DNS:" SVC "." NS ".svc,"
                            "DNS:" SVC "." NS ".svc.cluster.local,"
                            "DNS:webhook.example.com,"
                            "IP:127.0.0.1,IP:::1,IP:2001:db8::7");
  assert_int_equal(X509_check_host(leaf, SVC "." NS ".svc", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);

  /* serverAuth only. */
  assert_true((X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) != 0);
  assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
  assert_mode_0600(f, LFC_SERVING_KEY_FILE);
  assert_no_temp_files(f);

  X509_free(ca);
  X509_free(leaf);
  EVP_PKEY_free(key);
}

static void test_key_types(void **state) {
  fixture *f = *state;
  lfc_serving_opts o;
  lfc_error err;
  EVP_PKEY *key;
  X509 *leaf;
  X509 *ca;
  char group[64];
  size_t len = 0;

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  key = read_key(f, LFC_SERVING_KEY_FILE);
  assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
  assert_string_equal(group, "prime256v1");
  EVP_PKEY_free(key);
  key = read_key(f, LFC_CA_KEY_FILE);
  assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  EVP_PKEY_free(key);

  o.key_type = LFC_KEY_RSA_2048;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  key = read_key(f, LFC_SERVING_KEY_FILE);
  assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  assert_int_equal(EVP_PKEY_get_bits(key), 2048);
  leaf = read_cert(f, LFC_SERVING_CERT_FILE);
  ca = read_cert(f, LFC_CA_CERT_FILE);
  assert_int_equal(X509_check_private_key(leaf, key), 1);
  assert_verifies(ca, leaf, X509_PURPOSE_SSL_SERVER);
  /* RSA key exchange needs keyEncipherment. */
  assert_true((X509_get_key_usage(leaf) & KU_KEY_ENCIPHERMENT) != 0);
  EVP_PKEY_free(key);
  X509_free(leaf);
  X509_free(ca);
}

static void test_rsa_ca(void **state) {
  fixture *f = *state;
  lfc_serving_opts o;
  lfc_error err;
  EVP_PKEY *key;
  X509 *ca;
  X509 *leaf;

  make_ca(f, LFC_KEY_RSA_2048);
  key = read_key(f, LFC_CA_KEY_FILE);
  assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  assert_int_equal(EVP_PKEY_get_bits(key), 2048);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  ca = read_cert(f, LFC_CA_CERT_FILE);
  leaf = read_cert(f, LFC_SERVING_CERT_FILE);
  assert_verifies(ca, leaf, X509_PURPOSE_SSL_SERVER);
  EVP_PKEY_free(key);
  X509_free(ca);
  X509_free(leaf);
}

static void test_rotate(void **state) {
  fixture *f = *state;
  const char *ips[] = {"127.0.0.1"};
  lfc_serving_opts o;
  lfc_error err;
  X509 *ca;
  X509 *old_cert;
  X509 *new_cert;
  EVP_PKEY *old_key;
  EVP_PKEY *new_key;
  char old_sans[512];
  char new_sans[512];

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  o.ips = ips;
  o.n_ips = 1;
  o.key_type = LFC_KEY_RSA_2048;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  old_cert = read_cert(f, LFC_SERVING_CERT_FILE);
  old_key = read_key(f, LFC_SERVING_KEY_FILE);

  /* No names given: the current ones are kept, and so is the key type. */
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  o.now = time(NULL);
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_OK);
  new_cert = read_cert(f, LFC_SERVING_CERT_FILE);
  new_key = read_key(f, LFC_SERVING_KEY_FILE);
  ca = read_cert(f, LFC_CA_CERT_FILE);

  assert_int_not_equal(
      ASN1_INTEGER_cmp(X509_get0_serialNumber(old_cert), X509_get0_serialNumber(new_cert)), 0);
  assert_int_not_equal(EVP_PKEY_eq(old_key, new_key), 1);
  assert_int_equal(X509_check_private_key(new_cert, new_key), 1);
  assert_verifies(ca, new_cert, X509_PURPOSE_SSL_SERVER);
  san_text(old_cert, old_sans, sizeof old_sans);
  san_text(new_cert, new_sans, sizeof new_sans);
  assert_string_equal(old_sans, new_sans);
  assert_int_equal(X509_NAME_cmp(X509_get_subject_name(old_cert), X509_get_subject_name(new_cert)),
                   0);
  assert_int_equal(EVP_PKEY_get_base_id(new_key), EVP_PKEY_RSA);
  assert_mode_0600(f, LFC_SERVING_KEY_FILE);
  assert_no_temp_files(f);

  X509_free(ca);
  X509_free(old_cert);
  X509_free(new_cert);
  EVP_PKEY_free(old_key);
  EVP_PKEY_free(new_key);
}

static void test_rotate_with_new_names(void **state) {
  fixture *f = *state;
  const char *dns[] = {"new.example.com"};
  lfc_serving_opts o;
  lfc_error err;
  X509 *leaf;
  char sans[512];

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  serving_opts(f, &o);
  o.service = "other";
  o.dns = dns;
  o.n_dns = 1;
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_OK);
  leaf = read_cert(f, LFC_SERVING_CERT_FILE);
  san_text(leaf, sans, sizeof sans);
  assert_string_equal(sans, "DNS:other." NS ".svc,"
                            "DNS:other." NS ".svc.cluster.local,"
                            "DNS:new.example.com");
  X509_free(leaf);

  /* Extra names without the Service would mix kept and new names. */
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  o.dns = dns;
  o.n_dns = 1;
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_EINVAL);
}

static void test_rotate_new_org_keeps_cn(void **state) {
  fixture *f = *state;
  const char *orgs[] = {"leasefence"};
  lfc_serving_opts o;
  lfc_error err;
  X509 *leaf;
  char text[128];

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  o.orgs = orgs;
  o.n_orgs = 1;
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_OK);
  leaf = read_cert(f, LFC_SERVING_CERT_FILE);
  assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, text,
                                        sizeof text) > 0);
  assert_string_equal(text, SVC "." NS ".svc");
  assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_organizationName, text,
                                        sizeof text) > 0);
  assert_string_equal(text, "leasefence");
  X509_free(leaf);
}

static void test_rotate_needs_same_ca(void **state) {
  fixture *f = *state;
  lfc_serving_opts o;
  lfc_ca_opts ca;
  lfc_error err;
  X509 *before;
  X509 *after;

  make_ca(f, LFC_KEY_DEFAULT);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_OK);
  before = read_cert(f, LFC_SERVING_CERT_FILE);

  memset(&ca, 0, sizeof ca);
  ca.dir = f->dir;
  ca.force = 1;
  ca.now = time(NULL);
  assert_int_equal(lfc_ca_create(&ca, &err), LFC_OK);
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  memset(&err, 0, sizeof err);
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_EINPUT);
  assert_int_equal(err.code, LFC_EINPUT);
  assert_non_null(strstr(err.text, "was not issued by"));
  /* The refused rotation left the old pair alone. */
  after = read_cert(f, LFC_SERVING_CERT_FILE);
  assert_int_equal(X509_cmp(before, after), 0);
  X509_free(before);
  X509_free(after);
}

static void test_rotate_needs_current(void **state) {
  fixture *f = *state;
  lfc_serving_opts o;
  lfc_error err;

  make_ca(f, LFC_KEY_DEFAULT);
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  assert_int_equal(lfc_serving_rotate(&o, &err), LFC_EINPUT);
  assert_non_null(strstr(err.text, LFC_SERVING_CERT_FILE));
}

static void test_ca_bundle(void **state) {
  fixture *f = *state;
  lfc_error err;
  char *b64 = NULL;
  unsigned char decoded[8192];
  char file[8192];
  size_t n_b64;
  int n;
  size_t file_len;
  FILE *fp;

  make_ca(f, LFC_KEY_DEFAULT);
  assert_int_equal(lfc_ca_bundle(f->dir, &b64, &err), LFC_OK);
  n_b64 = strlen(b64);
  assert_null(strchr(b64, '\n'));
  assert_true(n_b64 % 4 == 0 && n_b64 < sizeof decoded);
  n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)n_b64);
  assert_true(n > 0);
  /* EVP_DecodeBlock counts the padding as zero bytes; take them off. */
  if (n_b64 >= 1 && b64[n_b64 - 1] == '=') {
    n--;
  }
  if (n_b64 >= 2 && b64[n_b64 - 2] == '=') {
    n--;
  }
  fp = fopen(path(f, LFC_CA_CERT_FILE), "rb");
  assert_non_null(fp);
  file_len = fread(file, 1, sizeof file, fp);
  fclose(fp);
  assert_int_equal((size_t)n, file_len);
  assert_memory_equal(decoded, file, file_len);
  assert_non_null(strstr(file, "-----BEGIN CERTIFICATE-----"));
  free(b64);
}

static void test_client(void **state) {
  fixture *f = *state;
  const char *orgs[] = {"system:masters"};
  lfc_client_opts o;
  lfc_error err;
  X509 *ca;
  X509 *leaf;
  char text[128];

  make_ca(f, LFC_KEY_DEFAULT);
  memset(&o, 0, sizeof o);
  o.dir = f->dir;
  o.cn = "admin";
  o.orgs = orgs;
  o.n_orgs = 1;
  o.now = time(NULL);
  assert_int_equal(lfc_client_create(&o, &err), LFC_OK);
  ca = read_cert(f, LFC_CA_CERT_FILE);
  leaf = read_cert(f, "client.crt");
  assert_verifies(ca, leaf, X509_PURPOSE_SSL_CLIENT);
  assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_CLIENT);
  assert_int_equal(
      X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, text, sizeof text), 5);
  assert_string_equal(text, "admin");
  assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_organizationName, text,
                                        sizeof text) > 0);
  assert_string_equal(text, "system:masters");
  assert_mode_0600(f, "client.key");
  X509_free(leaf);

  o.out_prefix = "kube-admin";
  assert_int_equal(lfc_client_create(&o, &err), LFC_OK);
  assert_true(exists(f, "kube-admin.crt"));
  assert_mode_0600(f, "kube-admin.key");

  o.out_prefix = "../escape";
  assert_int_equal(lfc_client_create(&o, &err), LFC_EINVAL);
  o.out_prefix = NULL;
  o.cn = NULL;
  assert_int_equal(lfc_client_create(&o, &err), LFC_EINVAL);
  X509_free(ca);
}

/* One bad input per row: the code, and a word the message must contain. */
static void test_bad_ips(void **state) {
  static const char *const bad[] = {
      "300.1.1.1", "127.1", "1.2.3.4.5", "fe80::1%eth0", "::g", "localhost", "", " 127.0.0.1",
  };
  fixture *f = *state;
  lfc_serving_opts o;
  lfc_error err;

  make_ca(f, LFC_KEY_DEFAULT);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    serving_opts(f, &o);
    o.ips = &bad[i];
    o.n_ips = 1;
    memset(&err, 0, sizeof err);
    assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
    assert_int_equal(err.code, LFC_EINVAL);
    assert_non_null(strstr(err.text, "not an IPv4 or IPv6 address"));
    assert_false(exists(f, LFC_SERVING_CERT_FILE));
  }
  assert_no_temp_files(f);
}

static void test_bad_inputs(void **state) {
  fixture *f = *state;
  const char *bad_dns[] = {"bad_name.example.com"};
  lfc_serving_opts o;
  lfc_ca_opts ca;
  lfc_key_type type = LFC_KEY_DEFAULT;
  lfc_error err;
  int present = -1;
  char ca_path[LFC_PATH_MAX];
  char old_path[LFC_PATH_MAX];

  assert_int_equal(lfc_key_type_parse("ed25519", &type, &err), LFC_EINVAL);
  assert_non_null(strstr(err.text, "unknown key type"));
  assert_int_equal(lfc_key_type_parse("rsa-2048", &type, &err), LFC_OK);
  assert_int_equal(type, LFC_KEY_RSA_2048);
  /* err may be NULL. */
  assert_int_equal(lfc_key_type_parse("rsa", &type, NULL), LFC_EINVAL);

  /* No CA yet. */
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINPUT);
  assert_non_null(strstr(err.text, LFC_CA_CERT_FILE));
  assert_int_equal(lfc_ca_exists(f->dir, &present, &err), LFC_OK);
  assert_int_equal(present, 0);

  make_ca(f, LFC_KEY_DEFAULT);
  assert_int_equal(lfc_ca_exists(f->dir, &present, &err), LFC_OK);
  assert_int_equal(present, 1);

  serving_opts(f, &o);
  o.service = "Bad_Service";
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
  assert_non_null(strstr(err.text, "Bad_Service"));
  serving_opts(f, &o);
  o.namespace_ = NULL;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
  serving_opts(f, &o);
  o.dns = bad_dns;
  o.n_dns = 1;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
  assert_non_null(strstr(err.text, "bad_name"));
  serving_opts(f, &o);
  o.days = -1;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
  serving_opts(f, &o);
  o.key_type = (lfc_key_type)7;
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINVAL);
  assert_false(exists(f, LFC_SERVING_CERT_FILE));

  /* A second CA is refused without force. */
  memset(&ca, 0, sizeof ca);
  ca.dir = f->dir;
  assert_int_equal(lfc_ca_create(&ca, &err), LFC_EEXIST);
  assert_non_null(strstr(err.text, "--force"));

  /* A CA key that belongs to another CA. */
  assert_int_equal(unlink(path(f, LFC_CA_KEY_FILE)), 0);
  assert_int_equal(lfc_ca_exists(f->dir, &present, &err), LFC_EINPUT);
  snprintf(ca_path, sizeof ca_path, "%s", path(f, LFC_CA_CERT_FILE));
  snprintf(old_path, sizeof old_path, "%s", path(f, "old.crt"));
  assert_int_equal(rename(ca_path, old_path), 0);
  make_ca(f, LFC_KEY_DEFAULT);
  assert_int_equal(rename(old_path, ca_path), 0);
  serving_opts(f, &o);
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINPUT);
  assert_non_null(strstr(err.text, "is not the key of"));

  /* A CA file that is not PEM. */
  {
    FILE *fp = fopen(path(f, LFC_CA_CERT_FILE), "w");
    assert_non_null(fp);
    fputs("not a certificate\n", fp);
    fclose(fp);
  }
  assert_int_equal(lfc_serving_create(&o, &err), LFC_EINPUT);
  assert_non_null(strstr(err.text, "does not hold a PEM certificate"));
  {
    char *b64 = (char *)1;
    assert_int_equal(lfc_ca_bundle(f->dir, &b64, &err), LFC_EINPUT);
    assert_null(b64);
  }
  assert_no_temp_files(f);
}

static void test_output_dir_missing(void **state) {
  fixture *f = *state;
  lfc_ca_opts ca;
  lfc_error err;
  char dir[LFC_PATH_MAX];

  snprintf(dir, sizeof dir, "%s/no/such/dir", f->dir);
  memset(&ca, 0, sizeof ca);
  ca.dir = dir;
  assert_int_equal(lfc_ca_create(&ca, &err), LFC_EIO);
  assert_non_null(strstr(err.text, "cannot create"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ca_is_a_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serving_verifies_and_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_types, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rsa_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_with_new_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_new_org_keeps_cn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_needs_same_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_needs_current, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ca_bundle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_ips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_output_dir_missing, setup, teardown),
  };

  return cmocka_run_group_tests_name("certgen", tests, NULL, NULL);
}
