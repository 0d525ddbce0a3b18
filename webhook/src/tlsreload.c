/*
 * tlsreload.c: certificate hot reload.
 */
#include "tlsreload.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CHAIN_MAX 16               /* Certificates in one chain file. */
#define PEM_FILE_MAX (1024 * 1024) /* Bound on a certificate or key file. */

struct lfw_tls_pair {
  atomic_int refs;
  gnutls_pcert_st pcert[CHAIN_MAX];
  unsigned n_pcert;
  gnutls_privkey_t key;
  char serial[2 * 64 + 1];
  time_t not_before; /* The leaf's validity, for readiness and the metric. */
  time_t not_after;
};

/* What stat says about the two files; any change means "try a reload". */
typedef struct file_sig {
  dev_t dev[2];
  ino_t ino[2];
  off_t size[2];
  struct timespec mtime[2];
  bool ok; /* Both files could be stat'ed. */
} file_sig;

struct lfw_tls {
  char *cert_file;
  char *key_file;
  bool sync_ready;      /* The mutexes and condition below are initialised. */
  pthread_mutex_t lock; /* Guards `current` while a reference is taken. */
  lfw_tls_pair *current;
  /* Watcher. */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t stop_lock;
  pthread_cond_t stop_cond;
  bool stop;
  int64_t interval_us;
  file_sig loaded;    /* Signature of the files the current pair came from. */
  file_sig attempted; /* Signature last tried and refused. */
  int attempts;       /* Failed attempts at `attempted`. */
  bool retry;         /* `attempted` is only not valid yet: try it on every poll. */
};

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;

  if (err == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

static void pair_free(lfw_tls_pair *p) {
  unsigned i;

  if (p == NULL)
    return;
  for (i = 0; i < p->n_pcert; i++)
    gnutls_pcert_deinit(&p->pcert[i]);
  if (p->key != NULL)
    gnutls_privkey_deinit(p->key);
  free(p);
}

void lfw_tls_pair_release(lfw_tls_pair *pair) {
  if (pair == NULL)
    return;
  if (atomic_fetch_sub_explicit(&pair->refs, 1, memory_order_acq_rel) == 1)
    pair_free(pair);
}

void lfw_tls_pair_get(lfw_tls_pair *pair, gnutls_pcert_st **pcert, unsigned *n_pcert,
                      gnutls_privkey_t *key) {
  *pcert = pair->pcert;
  *n_pcert = pair->n_pcert;
  *key = pair->key;
}

const char *lfw_tls_pair_serial(const lfw_tls_pair *pair) {
  return pair->serial;
}

lfw_tls_pair *lfw_tls_acquire(lfw_tls *tls) {
  lfw_tls_pair *p;

  pthread_mutex_lock(&tls->lock);
  p = tls->current;
  atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&tls->lock);
  return p;
}

/* Reads a whole file of at most PEM_FILE_MAX bytes. */
static int read_file(const char *path, gnutls_datum_t *out, char *err, size_t err_size) {
  FILE *f = NULL;
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = -1;

  f = fopen(path, "rb");
  if (f == NULL) {
    set_err(err, err_size, "cannot open %s: %s", path, strerror(errno));
    goto out;
  }
  data = malloc(PEM_FILE_MAX + 1);
  if (data == NULL) {
    set_err(err, err_size, "out of memory reading %s", path);
    goto out;
  }
  len = fread(data, 1, PEM_FILE_MAX + 1, f);
  if (ferror(f)) {
    set_err(err, err_size, "cannot read %s: %s", path, strerror(errno));
    goto out;
  }
  if (len > PEM_FILE_MAX) {
    set_err(err, err_size, "%s is larger than %d bytes", path, PEM_FILE_MAX);
    goto out;
  }
  out->data = data;
  out->size = (unsigned)len;
  data = NULL;
  rc = 0;
out:
  if (f != NULL)
    fclose(f);
  free(data);
  return rc;
}

static void wipe_free(gnutls_datum_t *d) {
  if (d->data != NULL) {
    explicit_bzero(d->data, d->size);
    free(d->data);
  }
  d->data = NULL;
  d->size = 0;
}

/* Proves that the key belongs to the leaf certificate by signing a few bytes
 * with one and verifying with the other. */
static int check_match(lfw_tls_pair *p, char *err, size_t err_size) {
  static unsigned char probe[] = "leasefence key check";
  const gnutls_datum_t data = {probe, sizeof probe};
  gnutls_datum_t sig = {NULL, 0};
  gnutls_sign_algorithm_t algo;
  int pk;
  int rc = -1;

  pk = gnutls_privkey_get_pk_algorithm(p->key, NULL);
  algo = gnutls_pk_to_sign((gnutls_pk_algorithm_t)pk, GNUTLS_DIG_SHA256);
  if (pk == GNUTLS_PK_EDDSA_ED25519)
    algo = GNUTLS_SIGN_EDDSA_ED25519;
  if (gnutls_privkey_sign_data2(p->key, algo, 0, &data, &sig) < 0 ||
      gnutls_pubkey_verify_data2(p->pcert[0].pubkey, algo, 0, &data, &sig) < 0) {
    set_err(err, err_size, "the private key does not match the certificate");
    goto out;
  }
  rc = 0;
out:
  gnutls_free(sig.data);
  return rc;
}

/* RFC 3339 in UTC, for messages. */
static void utc_text(time_t t, char *buf, size_t size) {
  struct tm tm;

  if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, size, "%lld", (long long)t);
}

/* Is the leaf valid at `now`? A certificate the API server would refuse is
 * refused here too: serving it would fail every call. */
static int check_validity(const lfw_tls_pair *p, const char *cert_file, time_t now, bool *not_yet,
                          char *err, size_t err_size) {
  char when[64];

  *not_yet = false;
  if (now >= p->not_after) {
    utc_text(p->not_after, when, sizeof when);
    set_err(err, err_size, "%s: the certificate (serial %s) expired at %s", cert_file, p->serial,
            when);
    return -1;
  }
  if (now < p->not_before) {
    utc_text(p->not_before, when, sizeof when);
    set_err(err, err_size, "%s: the certificate (serial %s) is not valid before %s", cert_file,
            p->serial, when);
    *not_yet = true;
    return -1;
  }
  return 0;
}

/* Loads and checks one pair. `*not_yet` tells a refusal that time alone
 * will lift (a certificate issued a moment ahead of this clock). */
static int load_pair(const char *cert_file, const char *key_file, lfw_tls_pair **out, bool *not_yet,
                     char *err, size_t err_size) {
  gnutls_datum_t cert = {NULL, 0};
  gnutls_datum_t key = {NULL, 0};
  gnutls_x509_crt_t crt = NULL;
  lfw_tls_pair *p = NULL;
  unsigned char serial[64];
  size_t serial_len = sizeof serial;
  size_t i;
  int grc;
  int rc = -1;

  *out = NULL;
  *not_yet = false;
  if (read_file(cert_file, &cert, err, err_size) != 0 ||
      read_file(key_file, &key, err, err_size) != 0)
    goto out;
  p = calloc(1, sizeof *p);
  if (p == NULL) {
    set_err(err, err_size, "out of memory");
    goto out;
  }
  p->n_pcert = CHAIN_MAX;
  grc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n_pcert, &cert, GNUTLS_X509_FMT_PEM, 0);
  if (grc < 0 || p->n_pcert == 0) {
    p->n_pcert = 0;
    set_err(err, err_size, "%s: no usable PEM certificate: %s", cert_file, gnutls_strerror(grc));
    goto out;
  }
  grc = gnutls_privkey_init(&p->key);
  if (grc >= 0)
    grc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (grc < 0) {
    set_err(err, err_size, "%s: no usable PEM private key: %s", key_file, gnutls_strerror(grc));
    goto out;
  }
  if (check_match(p, err, err_size) != 0)
    goto out;
  grc = gnutls_x509_crt_init(&crt);
  if (grc >= 0)
    grc = gnutls_x509_crt_import(crt, &p->pcert[0].cert, GNUTLS_X509_FMT_DER);
  if (grc < 0) {
    set_err(err, err_size, "%s: cannot read the certificate: %s", cert_file, gnutls_strerror(grc));
    goto out;
  }
  /* The leaf's serial, for logs and for tests that watch a rotation. */
  if (gnutls_x509_crt_get_serial(crt, serial, &serial_len) >= 0) {
    for (i = 0; i < serial_len; i++)
      snprintf(p->serial + 2 * i, 3, "%02X", serial[i]);
  }
  p->not_before = gnutls_x509_crt_get_activation_time(crt);
  p->not_after = gnutls_x509_crt_get_expiration_time(crt);
  if (p->not_before == (time_t)-1 || p->not_after == (time_t)-1) {
    set_err(err, err_size, "%s: the certificate's validity cannot be read", cert_file);
    goto out;
  }
  if (check_validity(p, cert_file, time(NULL), not_yet, err, err_size) != 0)
    goto out;
  atomic_init(&p->refs, 1);
  *out = p;
  p = NULL;
  rc = 0;
out:
  if (crt != NULL)
    gnutls_x509_crt_deinit(crt);
  pair_free(p);
  wipe_free(&key);
  wipe_free(&cert);
  return rc;
}

static void stat_files(const lfw_tls *tls, file_sig *sig) {
  struct stat st;
  const char *paths[2] = {tls->cert_file, tls->key_file};
  int i;

  memset(sig, 0, sizeof *sig);
  sig->ok = true;
  for (i = 0; i < 2; i++) {
    if (stat(paths[i], &st) != 0) {
      sig->ok = false;
      continue;
    }
    sig->dev[i] = st.st_dev;
    sig->ino[i] = st.st_ino;
    sig->size[i] = st.st_size;
    sig->mtime[i] = st.st_mtim;
  }
}

static bool sig_equal(const file_sig *a, const file_sig *b) {
  int i;

  if (a->ok != b->ok)
    return false;
  for (i = 0; i < 2; i++)
    if (a->dev[i] != b->dev[i] || a->ino[i] != b->ino[i] || a->size[i] != b->size[i] ||
        a->mtime[i].tv_sec != b->mtime[i].tv_sec || a->mtime[i].tv_nsec != b->mtime[i].tv_nsec)
      return false;
  return true;
}

/* One poll: reload when the files differ from what is loaded. */
static void poll_once(lfw_tls *tls) {
  file_sig now;
  lfw_tls_pair *fresh = NULL;
  lfw_tls_pair *old;
  char err[512];

  stat_files(tls, &now);
  if (sig_equal(&now, &tls->loaded))
    return;
  if (sig_equal(&now, &tls->attempted) && tls->attempts >= 2 && !tls->retry)
    return; /* Already refused twice; wait for the next change. */
  if (!sig_equal(&now, &tls->attempted)) {
    tls->attempted = now;
    tls->attempts = 0;
  }
  if (load_pair(tls->cert_file, tls->key_file, &fresh, &tls->retry, err, sizeof err) != 0) {
    /* Counted and logged once per change on disk; a pair that is only not
     * valid yet is tried again on every poll until it is. */
    if (++tls->attempts == 2) {
      lfw_metrics_cert_reload(false);
      lfw_log_json(LFW_LOG_ERROR, "certificate reload failed; keeping the current certificate",
                   json_pack("{s:s}", "error", err));
    }
    return;
  }
  pthread_mutex_lock(&tls->lock);
  old = tls->current;
  tls->current = fresh;
  pthread_mutex_unlock(&tls->lock);
  lfw_tls_pair_release(old);
  tls->loaded = now;
  tls->attempts = 0;
  tls->retry = false;
  lfw_metrics_cert_reload(true);
  lfw_metrics_cert_expiry((int64_t)fresh->not_after);
  lfw_log_json(LFW_LOG_INFO, "certificate reloaded",
               json_pack("{s:s,s:s,s:I}", "cert_file", tls->cert_file, "serial", fresh->serial,
                         "not_after", (json_int_t)fresh->not_after));
}

static void *watch_main(void *arg) {
  lfw_tls *tls = arg;

  pthread_mutex_lock(&tls->stop_lock);
  while (!tls->stop) {
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += tls->interval_us / 1000000;
    until.tv_nsec += (tls->interval_us % 1000000) * 1000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    while (!tls->stop &&
           pthread_cond_timedwait(&tls->stop_cond, &tls->stop_lock, &until) != ETIMEDOUT) {
    }
    if (tls->stop)
      break;
    pthread_mutex_unlock(&tls->stop_lock);
    poll_once(tls);
    pthread_mutex_lock(&tls->stop_lock);
  }
  pthread_mutex_unlock(&tls->stop_lock);
  return NULL;
}

int lfw_tls_open(const char *cert_file, const char *key_file, lfw_tls **out, char *err,
                 size_t err_size) {
  lfw_tls *tls = NULL;
  pthread_condattr_t ca;
  bool not_yet;
  int rc = -1;

  *out = NULL;
  tls = calloc(1, sizeof *tls);
  if (tls == NULL) {
    set_err(err, err_size, "out of memory");
    goto out;
  }
  tls->cert_file = strdup(cert_file);
  tls->key_file = strdup(key_file);
  if (tls->cert_file == NULL || tls->key_file == NULL) {
    set_err(err, err_size, "out of memory");
    goto out;
  }
  pthread_mutex_init(&tls->lock, NULL);
  pthread_mutex_init(&tls->stop_lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tls->stop_cond, &ca);
  pthread_condattr_destroy(&ca);
  tls->sync_ready = true;
  /* The signature is taken before the load, so a change that races with the
   * load is seen on the first poll. */
  stat_files(tls, &tls->loaded);
  if (load_pair(cert_file, key_file, &tls->current, &not_yet, err, err_size) != 0)
    goto out;
  lfw_metrics_cert_expiry((int64_t)tls->current->not_after);
  lfw_log_json(LFW_LOG_INFO, "certificate loaded",
               json_pack("{s:s,s:s,s:I}", "cert_file", cert_file, "serial", tls->current->serial,
                         "not_after", (json_int_t)tls->current->not_after));
  *out = tls;
  tls = NULL;
  rc = 0;
out:
  lfw_tls_close(&tls);
  return rc;
}

bool lfw_tls_ready(lfw_tls *tls, char *why, size_t why_size) {
  lfw_tls_pair *p = lfw_tls_acquire(tls);
  bool not_yet;
  bool ok = check_validity(p, tls->cert_file, time(NULL), &not_yet, why, why_size) == 0;

  lfw_tls_pair_release(p);
  return ok;
}

int lfw_tls_watch(lfw_tls *tls, int64_t interval_us) {
  tls->interval_us = interval_us;
  if (pthread_create(&tls->thread, NULL, watch_main, tls) != 0)
    return -1;
  tls->thread_started = true;
  return 0;
}

void lfw_tls_close(lfw_tls **ptls) {
  lfw_tls *tls = *ptls;

  if (tls == NULL)
    return;
  *ptls = NULL;
  if (tls->thread_started) {
    pthread_mutex_lock(&tls->stop_lock);
    tls->stop = true;
    pthread_cond_signal(&tls->stop_cond);
    pthread_mutex_unlock(&tls->stop_lock);
    pthread_join(tls->thread, NULL);
  }
  if (tls->sync_ready) {
    pthread_mutex_destroy(&tls->lock);
    pthread_mutex_destroy(&tls->stop_lock);
    pthread_cond_destroy(&tls->stop_cond);
  }
  lfw_tls_pair_release(tls->current);
  free(tls->cert_file);
  free(tls->key_file);
  free(tls);
}
