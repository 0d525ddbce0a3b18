/*
 * ratelat.c: latency of leasefence-webhook at a fixed request rate.
 *
 * wrk measures latency in a closed loop, and its Lua delay() paces each
 * connection in whole milliseconds on timers that fire together, so requests
 * leave in bursts and the percentiles measure the bursts. This client spaces
 * requests evenly instead: thread i of T sends its k-th request at
 * start + (k * T + i) / rate, over its own keep-alive HTTPS connection
 * (libcurl), and a request's latency is counted from the time it was
 * scheduled, not sent, so a late answer also delays what follows and is
 * charged to it (no coordinated omission).
 *
 * Usage: ratelat URL CA_FILE BODY_FILE RATE SECONDS [THREADS]
 * Prints: target and achieved rate, p50/p90/p99/p99.9/max in ms, errors.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

typedef struct worker {
  int index;
  int threads;
  double rate;
  double seconds;
  int64_t start_ns;
  const char *url;
  const char *ca;
  const char *body;
  size_t body_len;
  /* Results. */
  int64_t *lat_ns;
  size_t n;
  size_t errors;
} worker;

static int64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

static void *run(void *arg) {
  worker *w = arg;
  CURL *h = curl_easy_init();
  struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
  double interval_ns = 1e9 * w->threads / w->rate;
  size_t total = (size_t)(w->seconds * w->rate / w->threads);
  size_t k;

  /* Sleep precisely: the default 50 us timer slack would blur the schedule. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  w->lat_ns = malloc(total * sizeof *w->lat_ns);
  curl_easy_setopt(h, CURLOPT_URL, w->url);
  curl_easy_setopt(h, CURLOPT_CAINFO, w->ca);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, w->body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)w->body_len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  /* One untimed request opens the connection (the TLS handshake is not
   * what is measured). */
  curl_easy_perform(h);
  for (k = 0; k < total; k++) {
    int64_t due = w->start_ns +
                  (int64_t)((double)k * interval_ns + (double)w->index * interval_ns / w->threads);
    struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
    long status = 0;

    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (curl_easy_perform(h) != CURLE_OK ||
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
      w->errors++;
    w->lat_ns[w->n++] = now_ns() - due;
  }
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  return NULL;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a;
  int64_t y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  worker *w;
  pthread_t *th;
  int threads = argc > 6 ? atoi(argv[6]) : 8;
  double rate;
  double seconds;
  char *body;
  size_t len;
  size_t n = 0;
  size_t errors = 0;
  size_t at = 0;
  int64_t *all;
  int64_t t0;
  int64_t t1;
  FILE *f;
  int i;

  if (argc < 6) {
    fprintf(stderr, "usage: %s URL CA_FILE BODY_FILE RATE SECONDS [THREADS]\n", argv[0]);
    return 2;
  }
  rate = atof(argv[4]);
  seconds = atof(argv[5]);
  f = fopen(argv[3], "rb");
  if (f == NULL)
    return 1;
  body = malloc(8 << 20);
  len = fread(body, 1, 8 << 20, f);
  fclose(f);
  curl_global_init(CURL_GLOBAL_ALL);
  w = calloc((size_t)threads, sizeof *w);
  th = calloc((size_t)threads, sizeof *th);
  t0 = now_ns() + 200000000; /* Time for every thread to connect first. */
  for (i = 0; i < threads; i++) {
    w[i] = (worker){i, threads, rate, seconds, t0, argv[1], argv[2], body, len, NULL, 0, 0};
    pthread_create(&th[i], NULL, run, &w[i]);
  }
  for (i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    n += w[i].n;
    errors += w[i].errors;
  }
  t1 = now_ns();
  all = malloc(n * sizeof *all);
  for (i = 0; i < threads; i++) {
    memcpy(all + at, w[i].lat_ns, w[i].n * sizeof *all);
    at += w[i].n;
    free(w[i].lat_ns);
  }
  qsort(all, n, sizeof *all, cmp);
#define PCT(p) ((double)all[(size_t)((double)(n - 1) * (p) / 100.0)] / 1e6)
  printf("RESULT target/s=%.0f achieved/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
         "p99.9_ms=%.3f max_ms=%.3f errors=%zu\n",
         rate, (double)n / ((double)(t1 - t0) / 1e9), PCT(50), PCT(90), PCT(99), PCT(99.9),
         (double)all[n - 1] / 1e6, errors);
  free(all);
  free(body);
  free(w);
  free(th);
  curl_global_cleanup();
  return errors == 0 ? 0 : 1;
}
