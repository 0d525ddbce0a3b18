/*
 * kube_test_server.c: see kube_test_server.h. Test code: failures abort.
 */
#include "kube_test_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_HEAD_MAX 65536
#define REQUEST_BODY_MAX (4 * 1024 * 1024)

struct ts_conn {
  ts_server *server;
  int fd;
  SSL *ssl;
  bool close_after;
  pthread_t thread;
  struct ts_conn *next;
  char buf[REQUEST_HEAD_MAX];
  size_t buf_len;
};

struct ts_server {
  int listen_fd;
  int port;
  SSL_CTX *ctx;
  ts_handler handler;
  void *arg;
  pthread_t accept_thread;
  pthread_mutex_t lock;
  ts_conn *conns;
  unsigned accepted;
  atomic_bool stopping;
};

static void die(const char *what) {
  fprintf(stderr, "test server: %s: %s\n", what, strerror(errno));
  ERR_print_errors_fp(stderr);
  abort();
}

static ssize_t conn_read(ts_conn *c, void *buf, size_t n) {
  if (c->ssl != NULL) {
    int r = SSL_read(c->ssl, buf, (int)n);
    return r > 0 ? r : -1;
  }
  for (;;) {
    ssize_t r = recv(c->fd, buf, n, 0);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    return r > 0 ? r : -1;
  }
}

bool ts_write(ts_conn *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w;
    if (c->ssl != NULL) {
      int r = SSL_write(c->ssl, p, (int)len);
      w = r > 0 ? r : -1;
    } else {
      w = send(c->fd, p, len, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) {
        continue;
      }
    }
    if (w <= 0) {
      return false;
    }
    p += w;
    len -= (size_t)w;
  }
  return true;
}

bool ts_chunk(ts_conn *c, const void *data, size_t len) {
  char head[32];
  snprintf(head, sizeof(head), "%zx\r\n", len);
  return ts_write(c, head, strlen(head)) && (len == 0 || ts_write(c, data, len)) &&
         ts_write(c, "\r\n", 2);
}

void ts_close_after(ts_conn *c) {
  c->close_after = true;
}

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "Status";
  }
}

void ts_respond(ts_conn *c, int status, const char *content_type, const char *body, size_t len) {
  char head[512];
  snprintf(head, sizeof(head),
           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
           reason(status), content_type != NULL ? content_type : "application/json", len,
           c->close_after ? "Connection: close\r\n" : "");
  if (ts_write(c, head, strlen(head)) && len > 0) {
    (void)ts_write(c, body, len);
  }
}

/* Copies the value of header `name` from the head into `out`. */
static void header_value(const char *head, const char *name, char *out, size_t size) {
  size_t nlen = strlen(name);
  const char *p = strstr(head, "\r\n");
  out[0] = '\0';
  while (p != NULL && p[2] != '\r') {
    const char *line = p + 2;
    const char *end = strstr(line, "\r\n");
    if (end == NULL) {
      return;
    }
    if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      size_t n;
      while (*v == ' ') {
        v++;
      }
      n = (size_t)(end - v);
      if (n >= size) {
        n = size - 1;
      }
      memcpy(out, v, n);
      out[n] = '\0';
      return;
    }
    p = end;
  }
}

/* Serves one request; false when the connection is over. */
static bool serve_one(ts_conn *c) {
  ts_request req;
  char *end = NULL;
  size_t head_len;
  char clen[32];
  char conn_hdr[64];
  size_t want;
  bool keep;

  memset(&req, 0, sizeof(req));
  for (;;) {
    ssize_t n;
    c->buf[c->buf_len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (end != NULL) {
      break;
    }
    if (c->buf_len + 1 >= sizeof(c->buf)) {
      return false;
    }
    n = conn_read(c, c->buf + c->buf_len, sizeof(c->buf) - 1 - c->buf_len);
    if (n <= 0) {
      return false;
    }
    c->buf_len += (size_t)n;
  }
  head_len = (size_t)(end - c->buf) + 4;
  end[2] = '\0'; /* Keep the last header's CRLF for header_value. */
  if (sscanf(c->buf, "%15s %4095s", req.method, req.path) != 2) {
    return false;
  }
  header_value(c->buf, "Authorization", req.authorization, sizeof(req.authorization));
  header_value(c->buf, "Accept", req.accept, sizeof(req.accept));
  header_value(c->buf, "Content-Type", req.content_type, sizeof(req.content_type));
  header_value(c->buf, "Content-Length", clen, sizeof(clen));
  header_value(c->buf, "Connection", conn_hdr, sizeof(conn_hdr));
  keep = strcasecmp(conn_hdr, "close") != 0;
  want = clen[0] != '\0' ? (size_t)strtoul(clen, NULL, 10) : 0;
  if (want > REQUEST_BODY_MAX) {
    return false;
  }
  req.body = malloc(want + 1);
  if (req.body == NULL) {
    abort();
  }
  {
    size_t have = c->buf_len - head_len;
    size_t take = have < want ? have : want;
    memcpy(req.body, c->buf + head_len, take);
    req.body_len = take;
    memmove(c->buf, c->buf + head_len + take, have - take);
    c->buf_len = have - take;
  }
  while (req.body_len < want) {
    ssize_t n = conn_read(c, req.body + req.body_len, want - req.body_len);
    if (n <= 0) {
      free(req.body);
      return false;
    }
    req.body_len += (size_t)n;
  }
  req.body[req.body_len] = '\0';
  if (c->ssl != NULL) {
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    if (peer != NULL) {
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, req.client_cn,
                                (int)sizeof(req.client_cn));
      X509_free(peer);
    }
  }
  c->close_after = !keep;
  c->server->handler(&req, c, c->server->arg);
  free(req.body);
  return !c->close_after;
}

static void *conn_main(void *arg) {
  ts_conn *c = arg;
  if (c->server->ctx != NULL) {
    c->ssl = SSL_new(c->server->ctx);
    if (c->ssl == NULL) {
      return NULL;
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_accept(c->ssl) != 1) {
      ERR_clear_error();
      return NULL;
    }
  }
  while (!atomic_load(&c->server->stopping) && serve_one(c)) {
  }
  ERR_clear_error();
  /* Tell the client we are done so it does not reuse this connection. */
  shutdown(c->fd, SHUT_RDWR);
  return NULL;
}

static void *accept_main(void *arg) {
  ts_server *s = arg;
  for (;;) {
    int fd = accept(s->listen_fd, NULL, NULL);
    ts_conn *c;
    if (fd < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (atomic_load(&s->stopping)) {
      close(fd);
      break;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
      abort();
    }
    c->server = s;
    c->fd = fd;
    pthread_mutex_lock(&s->lock);
    c->next = s->conns;
    s->conns = c;
    s->accepted++;
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
      die("pthread_create");
    }
    pthread_mutex_unlock(&s->lock);
  }
  return NULL;
}

ts_server *ts_start(const ts_tls *tls, ts_handler handler, void *arg) {
  ts_server *s = calloc(1, sizeof(*s));
  struct sockaddr_in addr;
  socklen_t alen = sizeof(addr);
  int one = 1;

  if (s == NULL) {
    abort();
  }
  signal(SIGPIPE, SIG_IGN);
  s->handler = handler;
  s->arg = arg;
  pthread_mutex_init(&s->lock, NULL);
  if (tls != NULL) {
    BIO *bio;
    X509 *cert;
    EVP_PKEY *key;
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL) {
      die("SSL_CTX_new");
    }
    bio = BIO_new_mem_buf(tls->cert_pem, -1);
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    bio = BIO_new_mem_buf(tls->key_pem, -1);
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert == NULL || key == NULL || SSL_CTX_use_certificate(s->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(s->ctx, key) != 1) {
      die("server certificate");
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    if (tls->client_ca_pem != NULL) {
      X509_STORE *store = SSL_CTX_get_cert_store(s->ctx);
      bio = BIO_new_mem_buf(tls->client_ca_pem, -1);
      cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
      BIO_free(bio);
      if (cert == NULL || X509_STORE_add_cert(store, cert) != 1) {
        die("client CA");
      }
      X509_free(cert);
      SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
  }
  s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0) {
    die("socket");
  }
  setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
      listen(s->listen_fd, 64) != 0 ||
      getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen) != 0) {
    die("bind/listen");
  }
  s->port = ntohs(addr.sin_port);
  if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
    die("pthread_create");
  }
  return s;
}

int ts_port(const ts_server *s) {
  return s->port;
}

unsigned ts_connections(ts_server *s) {
  unsigned n;
  pthread_mutex_lock(&s->lock);
  n = s->accepted;
  pthread_mutex_unlock(&s->lock);
  return n;
}

void ts_stop(ts_server **sp) {
  ts_server *s = *sp;
  ts_conn *c;
  if (s == NULL) {
    return;
  }
  atomic_store(&s->stopping, true);
  /* shutdown() wakes a thread blocked in accept() on Linux. */
  shutdown(s->listen_fd, SHUT_RDWR);
  pthread_join(s->accept_thread, NULL);
  close(s->listen_fd);
  c = s->conns;
  while (c != NULL) {
    ts_conn *next = c->next;
    shutdown(c->fd, SHUT_RDWR);
    pthread_join(c->thread, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
    c = next;
  }
  SSL_CTX_free(s->ctx);
  pthread_mutex_destroy(&s->lock);
  free(s);
  *sp = NULL;
}

static char *bio_to_string(BIO *bio) {
  char *data = NULL;
  long n = BIO_get_mem_data(bio, &data);
  char *out = malloc((size_t)n + 1);
  if (out == NULL) {
    abort();
  }
  memcpy(out, data, (size_t)n);
  out[n] = '\0';
  return out;
}

static void add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *ext;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
    die("certificate extension");
  }
  X509_EXTENSION_free(ext);
}

void ts_make_cert(const char *cn, char **cert_pem, char **key_pem) {
  static atomic_long serial = 1000;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_NAME *name;
  BIO *bio;

  if (key == NULL || x == NULL) {
    die("key generation");
  }
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x),
                   (long)time(NULL) * 1000 + atomic_fetch_add(&serial, 1));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, name);
  add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_ext(x, NID_subject_key_identifier, "hash");
  add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  if (X509_sign(x, key, EVP_sha256()) == 0) {
    die("X509_sign");
  }
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  *cert_pem = bio_to_string(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
  *key_pem = bio_to_string(bio);
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
}

void ts_write_file(const char *path, const char *data) {
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs(data, f) < 0 || fclose(f) != 0) {
    die(path);
  }
}
