/*
 * lease_file.c: the file Lease source.
 *
 * A lookup of Lease ns/name reads DIR/ns/name.json, a Lease object as JSON
 * (what `kubectl get lease -o json` prints), and parses it with
 * lf_lease_parse. The file is read on every lookup, so a test or a demo
 * changes the Lease by rewriting the file (write a temporary file and
 * rename it over, so a reader never sees half a file).
 */
#include "lease_source.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_source {
  char *dir;
} file_source;

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
  const file_source *fs = ctx;
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
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      rc = set_err(err, LF_ENOTFOUND, "Lease %s/%s not found (no file %s)", ref->ns, ref->name,
                   path);
    else
      rc = set_err(err, LF_EIO, "cannot open %s: %s", path, strerror(errno));
    goto out;
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
  /* The library fills ref from metadata; a file under the wrong name is an
   * operator's mistake worth saying clearly rather than fencing by it. */
  if (out->ref.name[0] != '\0' && strcmp(out->ref.name, ref->name) != 0) {
    rc = set_err(err, LF_EINVAL, "%s holds Lease \"%s\", not \"%s\"", path, out->ref.name,
                 ref->name);
    goto out;
  }
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
