/*
 * lease_file.c: the file Lease source.
 *
 * A lookup of Lease ns/name reads DIR/ns/name.json, a Lease object as JSON
 * (what `kubectl get lease -o json` prints), and parses it with
 * lf_lease_parse. Every lookup looks at the file, so a test or a demo
 * changes the Lease by rewriting the file (write a temporary file and
 * rename it over, so a reader never sees half a file).
 *
 * Parsing is skipped when the file is provably unchanged: a small cache keeps
 * the parsed Lease with the file's device, inode, size, mtime and ctime, and
 * a lookup whose stat() matches uses it. Timestamps on Linux come from a
 * coarse clock, so a file rewritten in place twice within one tick, at the
 * same size, would look unchanged; a file is therefore cached only once its
 * mtime is a few seconds old, after which any rewrite moves the mtime.
 * FIFOs and other non-regular files are never cached.
 */
#include "lease_source.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_SLOTS 128   /* Direct-mapped by a hash of namespace/name. */
#define SETTLED_SECONDS 3 /* Age of an mtime past which the file is cached. */

/* What stat() says about a file; equal signatures mean unchanged content
 * (for files whose mtime is settled). */
typedef struct file_sig {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  struct timespec ctime;
} file_sig;

typedef struct cache_slot {
  bool used;
  char ns[LF_NAMESPACE_MAX + 1];
  char name[LF_NAME_MAX + 1];
  file_sig sig;
  lf_lease lease;
} cache_slot;

typedef struct file_source {
  char *dir;
  bool lock_ready;
  pthread_mutex_t lock; /* Guards `cache`. */
  cache_slot cache[CACHE_SLOTS];
} file_source;

static void sig_of(const struct stat *st, file_sig *sig) {
  memset(sig, 0, sizeof *sig);
  sig->dev = st->st_dev;
  sig->ino = st->st_ino;
  sig->size = st->st_size;
  sig->mtime = st->st_mtim;
  sig->ctime = st->st_ctim;
}

static bool sig_equal(const file_sig *a, const file_sig *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static bool settled(const file_sig *sig) {
  struct timespec now;

  clock_gettime(CLOCK_REALTIME, &now);
  return now.tv_sec - sig->mtime.tv_sec >= SETTLED_SECONDS &&
         now.tv_sec - sig->ctime.tv_sec >= SETTLED_SECONDS;
}

static cache_slot *slot_for(file_source *fs, const lf_lease_ref *ref) {
  uint32_t h = 2166136261u; /* FNV-1a */
  const char *p;

  for (p = ref->ns; *p != '\0'; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  h = (h ^ '/') * 16777619u;
  for (p = ref->name; *p != '\0'; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  return &fs->cache[h % CACHE_SLOTS];
}

/* Copies the cached Lease when `sig` is the file it came from. */
static bool cache_get(file_source *fs, const lf_lease_ref *ref, const file_sig *sig,
                      lf_lease *out) {
  cache_slot *slot = slot_for(fs, ref);
  bool hit;

  pthread_mutex_lock(&fs->lock);
  hit = slot->used && strcmp(slot->ns, ref->ns) == 0 && strcmp(slot->name, ref->name) == 0 &&
        sig_equal(&slot->sig, sig);
  if (hit)
    *out = slot->lease;
  pthread_mutex_unlock(&fs->lock);
  return hit;
}

static void cache_put(file_source *fs, const lf_lease_ref *ref, const file_sig *sig,
                      const lf_lease *lease) {
  cache_slot *slot = slot_for(fs, ref);

  pthread_mutex_lock(&fs->lock);
  slot->used = true;
  snprintf(slot->ns, sizeof slot->ns, "%s", ref->ns);
  snprintf(slot->name, sizeof slot->name, "%s", ref->name);
  slot->sig = *sig;
  slot->lease = *lease;
  pthread_mutex_unlock(&fs->lock);
}

static int set_err(lf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(lf_error *err, int code, const char *fmt, ...) {
  va_list ap;

  if (err != NULL) {
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A path component we are willing to join: the library already checked that
 * namespace and name are DNS-1123, but the file source must not depend on
 * that to stay inside DIR. */
static bool safe_component(const char *s) {
  return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL;
}

static int file_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                    lf_lease *out, lf_error *err) {
  file_source *fs = ctx;
  struct stat st;
  file_sig sig;
  bool cacheable = false;
  char path[4096 + LF_NAMESPACE_MAX + LF_NAME_MAX + 8];
  char *data = NULL;
  size_t len = 0;
  size_t cap = 0;
  int fd = -1;
  int rc;
  lf_error perr;

  (void)flags; /* No cache: every read is live. */
  (void)deadline_us;
  if (!safe_component(ref->ns) || !safe_component(ref->name)) {
    rc = set_err(err, LF_EINVAL, "Lease name %s/%s cannot be used as a file name", ref->ns,
                 ref->name);
    goto out;
  }
  snprintf(path, sizeof path, "%s/%s/%s.json", fs->dir, ref->ns, ref->name);
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    sig_of(&st, &sig);
    if (cache_get(fs, ref, &sig, out)) {
      rc = LF_OK;
      goto out;
    }
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      rc = set_err(err, LF_ENOTFOUND, "Lease %s/%s not found (no file %s)", ref->ns, ref->name,
                   path);
    else
      rc = set_err(err, LF_EIO, "cannot open %s: %s", path, strerror(errno));
    goto out;
  }
  /* The signature of what is read is taken from the open file itself, so a
   * rename between the stat() above and the open() cannot mislabel it. */
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    sig_of(&st, &sig);
    cacheable = settled(&sig);
  }
  /* Read at most LF_LEASE_JSON_MAX + 1 bytes: one more than allowed tells a
   * file over the bound from one exactly at it. */
  for (;;) {
    ssize_t n;

    if (len == cap) {
      size_t ncap = cap == 0 ? 4096 : cap * 2;
      char *p;

      if (ncap > LF_LEASE_JSON_MAX + 1)
        ncap = LF_LEASE_JSON_MAX + 1;
      if (ncap == cap) {
        rc = set_err(err, LF_ETOOBIG, "%s is larger than %d bytes", path, LF_LEASE_JSON_MAX);
        goto out;
      }
      p = realloc(data, ncap);
      if (p == NULL) {
        rc = set_err(err, LF_ENOMEM, "out of memory reading %s", path);
        goto out;
      }
      data = p;
      cap = ncap;
    }
    n = read(fd, data + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = set_err(err, LF_EIO, "cannot read %s: %s", path, strerror(errno));
      goto out;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (len > LF_LEASE_JSON_MAX) {
    rc = set_err(err, LF_ETOOBIG, "%s is larger than %d bytes", path, LF_LEASE_JSON_MAX);
    goto out;
  }
  memset(&perr, 0, sizeof perr);
  rc = lf_lease_parse(data, len, out, &perr);
  if (rc != LF_OK) {
    rc = set_err(err, LF_EINVAL, "malformed Lease in %s: %s", path, perr.text);
    goto out;
  }
  /* The library fills ref from metadata (both required); a file under the
   * wrong name or in the wrong namespace's directory is an operator's
   * mistake worth saying clearly rather than fencing by another Lease. */
  if (strcmp(out->ref.name, ref->name) != 0 || strcmp(out->ref.ns, ref->ns) != 0) {
    rc = set_err(err, LF_EINVAL, "%s holds Lease %s/%s, not %s/%s", path, out->ref.ns,
                 out->ref.name, ref->ns, ref->name);
    goto out;
  }
  if (cacheable)
    cache_put(fs, ref, &sig, out);
  rc = LF_OK;
out:
  if (fd >= 0)
    close(fd);
  free(data);
  return rc;
}

static bool file_ready(void *ctx, char *why, size_t why_size) {
  const file_source *fs = ctx;
  struct stat st;

  if (stat(fs->dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(fs->dir, R_OK | X_OK) != 0) {
    if (why != NULL)
      snprintf(why, why_size, "lease directory %s is not a readable directory", fs->dir);
    return false;
  }
  return true;
}

static void file_close(void *ctx) {
  file_source *fs = ctx;

  if (fs == NULL)
    return;
  if (fs->lock_ready)
    pthread_mutex_destroy(&fs->lock);
  free(fs->dir);
  free(fs);
}

int lfw_lease_file_open(const char *dir, lfw_lease_source *out, lf_error *err) {
  file_source *fs = NULL;
  struct stat st;
  int rc;

  memset(out, 0, sizeof *out);
  if (dir[0] == '\0') {
    rc = set_err(err, LF_EINVAL, "--lease-source file: needs a directory (file:DIR)");
    goto out;
  }
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    rc = set_err(err, LF_EINVAL, "--lease-source: %s is not a directory", dir);
    goto out;
  }
  fs = calloc(1, sizeof *fs);
  if (fs != NULL)
    fs->dir = strdup(dir);
  if (fs == NULL || fs->dir == NULL) {
    rc = set_err(err, LF_ENOMEM, "out of memory");
    goto out;
  }
  pthread_mutex_init(&fs->lock, NULL);
  fs->lock_ready = true;
  out->name = "file";
  out->ctx = fs;
  out->get = file_get;
  out->ready = file_ready;
  out->close = file_close;
  fs = NULL;
  rc = LF_OK;
out:
  file_close(fs);
  return rc;
}
