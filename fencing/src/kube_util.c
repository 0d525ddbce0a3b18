/*
 * kube_util.c: small helpers of the Kubernetes client: error texts, bounded
 * file reads, base64.
 */
#include "kube_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lf__kube_fail(lf_error *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
  }
  return code;
}

int lf__kube_read_file(const char *path, size_t max, const char *what, char **buf, size_t *len,
                       lf_error *err) {
  int rc = LF_OK;
  int fd = -1;
  char *data = NULL;
  size_t used = 0;
  size_t cap = 0;
  struct stat st;

  *buf = NULL;
  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = lf__kube_fail(err, LF_EINVAL, "%s \"%s\" cannot be opened: %s", what, path,
                       strerror(errno));
    goto out;
  }
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    rc = lf__kube_fail(err, LF_EINVAL, "%s \"%s\" is not a readable file", what, path);
    goto out;
  }
  /* The size from fstat is only a hint (the file may change while we read,
   * or be a pipe); the loop below enforces `max` on what is actually read. */
  cap = (S_ISREG(st.st_mode) && st.st_size > 0 && (size_t)st.st_size <= max)
            ? (size_t)st.st_size + 1
            : 4096;
  if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max) {
    rc = lf__kube_fail(err, LF_ETOOBIG, "%s \"%s\" is larger than %zu bytes", what, path, max);
    goto out;
  }
  data = malloc(cap);
  if (data == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory reading %s", what);
    goto out;
  }
  for (;;) {
    ssize_t n;
    if (used + 1 >= cap) {
      size_t ncap = cap * 2;
      char *p;
      if (ncap > max + 2) {
        ncap = max + 2;
      }
      if (ncap <= cap) {
        rc = lf__kube_fail(err, LF_ETOOBIG, "%s \"%s\" is larger than %zu bytes", what, path, max);
        goto out;
      }
      p = realloc(data, ncap);
      if (p == NULL) {
        rc = lf__kube_fail(err, LF_ENOMEM, "out of memory reading %s", what);
        goto out;
      }
      data = p;
      cap = ncap;
    }
    n = read(fd, data + used, cap - 1 - used);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      rc = lf__kube_fail(err, LF_EINVAL, "%s \"%s\" cannot be read: %s", what, path,
                         strerror(errno));
      goto out;
    }
    if (n == 0) {
      break;
    }
    used += (size_t)n;
    if (used > max) {
      rc = lf__kube_fail(err, LF_ETOOBIG, "%s \"%s\" is larger than %zu bytes", what, path, max);
      goto out;
    }
  }
  data[used] = '\0';
  *buf = data;
  *len = used;
  data = NULL;

out:
  if (fd >= 0) {
    close(fd);
  }
  if (data != NULL) {
    explicit_bzero(data, cap);
    free(data);
  }
  return rc;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

int lf__kube_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                           lf_error *err) {
  int rc = LF_OK;
  unsigned char *buf = NULL;
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;

  *out = NULL;
  *out_len = 0;
  buf = malloc(len / 4 * 3 + 4);
  if (buf == NULL) {
    rc = lf__kube_fail(err, LF_ENOMEM, "out of memory decoding base64");
    goto out;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    int v;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    }
    if (c == '=') {
      padding = true;
      continue;
    }
    v = b64_value(c);
    if (v < 0 || padding) {
      rc = lf__kube_fail(err, LF_EINVAL, "invalid base64 at offset %zu", i);
      goto out;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[n++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  /* Six leftover bits can never be a whole byte: the input was cut short. */
  if (bits >= 6) {
    rc = lf__kube_fail(err, LF_EINVAL, "truncated base64");
    goto out;
  }
  buf[n] = '\0';
  *out = buf;
  *out_len = n;
  buf = NULL;

out:
  free(buf);
  return rc;
}

int lf__kube_blob_set(lf_kube_blob *blob, const void *data, size_t len) {
  unsigned char *p = malloc(len + 1);
  if (p == NULL) {
    return LF_ENOMEM;
  }
  if (len > 0) {
    memcpy(p, data, len);
  }
  p[len] = '\0';
  lf__kube_blob_clear(blob);
  blob->data = p;
  blob->len = len;
  return LF_OK;
}

void lf__kube_blob_clear(lf_kube_blob *blob) {
  if (blob->data != NULL) {
    explicit_bzero(blob->data, blob->len);
    free(blob->data);
  }
  blob->data = NULL;
  blob->len = 0;
}

void lf__kube_str_wipe(char **s) {
  if (*s != NULL) {
    explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}

/* First allocation of a buffer; it then grows by doubling up to its cap. */
#define BUF_INITIAL 16384

bool lf__kube_buf_append(lf__kube_buf *b, const char *p, size_t n) {
  if (n > b->max - b->len) {
    b->too_big = true;
    return false;
  }
  if (b->len + n + 1 > b->cap) {
    size_t ncap = b->cap == 0 ? BUF_INITIAL : b->cap;
    char *nbuf;
    while (ncap < b->len + n + 1) {
      ncap *= 2;
    }
    if (ncap > b->max + 1) {
      ncap = b->max + 1;
    }
    nbuf = realloc(b->buf, ncap);
    if (nbuf == NULL) {
      b->no_memory = true;
      return false;
    }
    b->buf = nbuf;
    b->cap = ncap;
  }
  if (n > 0) {
    memcpy(b->buf + b->len, p, n);
  }
  b->len += n;
  b->buf[b->len] = '\0';
  return true;
}
