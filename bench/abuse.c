/*
 * abuse.c: hostile load against leasefence-webhook, for bench/abuse.sh (which
 * runs bench/ratelat.c beside it as the normal client).
 *
 * Three kinds of client, each kind a set of threads with blocking sockets
 * (the point is the server's behaviour, not the client's efficiency):
 *
 *  - big: each sends a review padded with whitespace to the largest body the
 *    server accepts (Content-Length exactly --max-request-bytes), slowly:
 *    evenly over BIG_SECONDS, then reads the answer and starts again;
 *  - stalled: each sends headers announcing that largest body, then 1 KiB of
 *    it, then nothing; when the server closes it (its body deadline), it
 *    connects again;
 *  - slowloris: each sends a request line, then one header byte every
 *    500 ms; connects again when closed.
 *
 * A connection whose TLS handshake fails (the server closes it at accept
 * over --max-connections) counts as refused, and its thread waits 200 ms
 * before it tries again.
 *
 * Usage: abuse HOST PORT CA_FILE BODY_FILE MAX_BODY BIG STALLED SLOWLORIS
 *              SECONDS [BIG_SECONDS]
 * Attacks for SECONDS, then prints one RESULT line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port;
static const char *ca_file;
static char *review; /* The normal client's body. */
static size_t review_len;
static char *big_body; /* The review padded to max_body bytes. */
static size_t max_body;
static double big_seconds = 8.0;
static atomic_bool stop;
static gnutls_certificate_credentials_t cred;

/* Attack counters. */
static atomic_long refused;          /* Handshakes that failed (closed at accept). */
static atomic_long handshakes;       /* Handshakes that succeeded. */
static atomic_long closed_by_server; /* Stalled or slowloris connections the server closed. */
static atomic_long big_done[6];      /* Answers to big bodies: 200, 400, 413, 503, other, cut. */

static int64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

typedef struct tls {
  int fd;
  gnutls_session_t s;
} tls;

/* Connects and handshakes; -1 when refused. */
static int tls_open(tls *t) {
  struct sockaddr_in a;
  int rc;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &a.sin_addr);
  t->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(t->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(t->fd);
    return -1;
  }
  gnutls_init(&t->s, GNUTLS_CLIENT);
  gnutls_set_default_priority(t->s);
  gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_transport_set_int(t->s, t->fd);
  gnutls_handshake_set_timeout(t->s, 10000);
  do {
    rc = gnutls_handshake(t->s);
  } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
  if (rc < 0) {
    gnutls_deinit(t->s);
    close(t->fd);
    return -1;
  }
  return 0;
}

static void tls_close(tls *t) {
  gnutls_deinit(t->s);
  close(t->fd);
}

static int send_all(tls *t, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = gnutls_record_send(t->s, p, n > 16384 ? 16384 : n);

    if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Opens a connection, retrying (and counting refusals) until one is had or
 * the run ends. */
static int open_retry(tls *t) {
  while (!atomic_load(&stop)) {
    if (tls_open(t) == 0) {
      atomic_fetch_add(&handshakes, 1);
      return 0;
    }
    atomic_fetch_add(&refused, 1);
    sleep_ms(200);
  }
  return -1;
}

/* Waits until the server closes the connection or the run ends; 1 if the
 * server closed it. */
static int await_server_close(tls *t) {
  char b[512];

  while (!atomic_load(&stop)) {
    struct pollfd p = {t->fd, POLLIN, 0};

    if (poll(&p, 1, 200) > 0) {
      ssize_t r = gnutls_record_recv(t->s, b, sizeof b);

      if (r <= 0 && r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
        return 1;
    }
  }
  return 0;
}

static void headers(char *out, size_t n, size_t len) {
  snprintf(out, n,
           "POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n",
           host, len);
}

static void *big_main(void *arg) {
  char head[256];
  char resp[1024];
  size_t piece = 64 * 1024;

  (void)arg;
  headers(head, sizeof head, max_body);
  while (!atomic_load(&stop)) {
    tls t;
    size_t sent = 0;
    int64_t t0 = now_ns();
    int cut = 0;
    ssize_t r;

    if (open_retry(&t) != 0)
      break;
    if (send_all(&t, head, strlen(head)) != 0)
      cut = 1;
    while (!cut && sent < max_body && !atomic_load(&stop)) {
      size_t n = max_body - sent < piece ? max_body - sent : piece;
      int64_t due = t0 + (int64_t)(big_seconds * 1e9 * (double)(sent + n) / (double)max_body);
      struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};

      if (send_all(&t, big_body + sent, n) != 0)
        cut = 1;
      sent += n;
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    if (!cut && sent == max_body) {
      gnutls_record_set_timeout(t.s, 10000);
      r = gnutls_record_recv(t.s, resp, sizeof resp - 1);
      if (r > 12) {
        resp[r] = '\0';
        if (strncmp(resp + 9, "200", 3) == 0)
          atomic_fetch_add(&big_done[0], 1);
        else if (strncmp(resp + 9, "400", 3) == 0)
          atomic_fetch_add(&big_done[1], 1);
        else if (strncmp(resp + 9, "413", 3) == 0)
          atomic_fetch_add(&big_done[2], 1);
        else if (strncmp(resp + 9, "503", 3) == 0)
          atomic_fetch_add(&big_done[3], 1);
        else
          atomic_fetch_add(&big_done[4], 1);
      } else {
        atomic_fetch_add(&big_done[5], 1);
      }
    } else if (cut) {
      atomic_fetch_add(&big_done[5], 1);
    }
    tls_close(&t);
  }
  return NULL;
}

static void *stalled_main(void *arg) {
  char head[256];

  (void)arg;
  headers(head, sizeof head, max_body);
  while (!atomic_load(&stop)) {
    tls t;

    if (open_retry(&t) != 0)
      break;
    if (send_all(&t, head, strlen(head)) == 0 && send_all(&t, big_body, 1024) == 0 &&
        await_server_close(&t))
      atomic_fetch_add(&closed_by_server, 1);
    tls_close(&t);
  }
  return NULL;
}

static void *slowloris_main(void *arg) {
  static const char line[] = "POST /validate HTTP/1.1\r\n";
  static const char drip[] = "X-Slow: a\r\n";

  (void)arg;
  while (!atomic_load(&stop)) {
    tls t;
    size_t i = 0;
    int closed = 0;

    if (open_retry(&t) != 0)
      break;
    if (send_all(&t, line, sizeof line - 1) != 0)
      closed = 1;
    while (!closed && !atomic_load(&stop)) {
      struct pollfd p = {t.fd, POLLIN, 0};

      if (send_all(&t, drip + i % (sizeof drip - 1), 1) != 0)
        closed = 1;
      i++;
      if (poll(&p, 1, 500) > 0)
        closed = 1;
    }
    if (closed)
      atomic_fetch_add(&closed_by_server, 1);
    tls_close(&t);
  }
  return NULL;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *p;

  if (f == NULL)
    return NULL;
  p = malloc(8 << 20);
  *len = fread(p, 1, 8 << 20, f);
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  int n_big;
  int n_stalled;
  int n_slow;
  double seconds;
  pthread_t *attack;
  pthread_attr_t small_stack;
  int n_attack;
  int i;

  if (argc < 10) {
    fprintf(stderr,
            "usage: %s HOST PORT CA BODY MAX_BODY BIG STALLED SLOWLORIS SECONDS [BIG_SECONDS]\n",
            argv[0]);
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  ca_file = argv[3];
  review = read_file(argv[4], &review_len);
  max_body = strtoul(argv[5], NULL, 10);
  n_big = atoi(argv[6]);
  n_stalled = atoi(argv[7]);
  n_slow = atoi(argv[8]);
  seconds = atof(argv[9]);
  if (argc > 10)
    big_seconds = atof(argv[10]);
  if (review == NULL || max_body < review_len)
    return 2;
  big_body = malloc(max_body);
  memcpy(big_body, review, review_len);
  memset(big_body + review_len, ' ', max_body - review_len);
  gnutls_global_init();
  gnutls_certificate_allocate_credentials(&cred);
  gnutls_certificate_set_x509_trust_file(cred, ca_file, GNUTLS_X509_FMT_PEM);
  n_attack = n_big + n_stalled + n_slow;
  attack = calloc((size_t)n_attack, sizeof *attack);
  pthread_attr_init(&small_stack);
  pthread_attr_setstacksize(&small_stack, 256 * 1024);
  for (i = 0; i < n_attack; i++)
    pthread_create(&attack[i], &small_stack,
                   i < n_big ? big_main : (i < n_big + n_stalled ? stalled_main : slowloris_main),
                   NULL);
  sleep_ms((int)(seconds * 1000));
  atomic_store(&stop, true);
  for (i = 0; i < n_attack; i++)
    pthread_join(attack[i], NULL);
  printf("RESULT refused_handshakes=%ld handshakes=%ld closed_by_server=%ld big_200=%ld "
         "big_400=%ld big_413=%ld big_503=%ld big_other=%ld big_cut=%ld\n",
         atomic_load(&refused), atomic_load(&handshakes), atomic_load(&closed_by_server),
         atomic_load(&big_done[0]), atomic_load(&big_done[1]), atomic_load(&big_done[2]),
         atomic_load(&big_done[3]), atomic_load(&big_done[4]), atomic_load(&big_done[5]));
  free(attack);
  free(big_body);
  free(review);
  gnutls_certificate_free_credentials(cred);
  gnutls_global_deinit();
  return 0;
}
