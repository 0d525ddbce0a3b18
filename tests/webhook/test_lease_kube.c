/*
 * test_lease_kube.c: the strong Lease source (webhook/src/lease_kube.c)
 * against the Kubernetes client's local test server, which answers each
 * Lease GET after a set delay with a resourceVersion that counts the GETs.
 *
 *  - coalescing: concurrent decisions share reads, and never one that started
 *    before they arrived;
 *  - deadlines: a shared read that ran out on another request's budget is
 *    not handed to a request that still has time;
 *  - readiness follows the first answer of the API server.
 *
 * The watch cache and the /scale parent read are covered against the real
 * API server (e2e/leases).
 */
#include "kube_test_server.h"
#include "lease_kube.h"
#include "lease_source.h"

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static atomic_int gets;     /* Lease GETs the server answered (started). */
static atomic_int delay_ms; /* How long each GET takes. */

/* GETs numbered above `gate` wait until the test raises it, so a test can
 * hold a read in flight for as long as it needs rather than for a time that
 * a loaded machine may not keep. Bounded: a held GET gives up after 30 s. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate = INT_MAX;

static void set_gate(int n) {
  pthread_mutex_lock(&gate_mu);
  gate = n;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_mu);
}

static void wait_gate(int n) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&gate_mu);
  while (n > gate && pthread_cond_timedwait(&gate_cond, &gate_mu, &until) == 0) {
  }
  pthread_mutex_unlock(&gate_mu);
}

static void handler(const ts_request *req, ts_conn *conn, void *arg) {
  char body[512];
  (void)arg;
  if (strstr(req->path, "/leases/ctrl") == NULL) {
    ts_respond(conn, 404, "application/json", "{\"kind\":\"Status\",\"code\":404}", 28);
    return;
  }
  /* The resourceVersion is the number of this GET: it tells which read a
   * decision was given. */
  int n = atomic_fetch_add(&gets, 1) + 1;
  wait_gate(n);
  usleep((useconds_t)atomic_load(&delay_ms) * 1000);
  snprintf(body, sizeof body,
           "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":"
           "\"ctrl\",\"namespace\":\"ns\",\"uid\":\"u\",\"resourceVersion\":\"%d\"},\"spec\":{"
           "\"holderIdentity\":\"h\",\"leaseDurationSeconds\":15,\"leaseTransitions\":3}}",
           n);
  ts_respond(conn, 200, "application/json", body, strlen(body));
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct fixture {
  ts_server *server;
  lfw_lease_source src;
  char kubeconfig[64];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  char yaml[512];
  lf_error err = {0};
  assert_non_null(f);
  atomic_store(&gets, 0);
  atomic_store(&delay_ms, 0);
  set_gate(INT_MAX);
  f->server = ts_start(NULL, handler, NULL);
  snprintf(f->kubeconfig, sizeof f->kubeconfig, "/tmp/lf-lease-kube-%d.yaml", (int)getpid());
  snprintf(yaml, sizeof yaml,
           "current-context: t\nclusters: [{name: s, cluster: {server: \"http://127.0.0.1:%d\"}}]\n"
           "contexts: [{name: t, context: {cluster: s, user: u, namespace: ns}}]\n"
           "users: [{name: u, user: {token: abc}}]\n",
           ts_port(f->server));
  ts_write_file(f->kubeconfig, yaml);
  lfw_kube_options o = {.kubeconfig = f->kubeconfig, .read_timeout_us = 5000000};
  if (lfw_lease_kube_open(&o, &f->src, &err) != LF_OK) {
    fail_msg("open: %s", err.text);
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  lfw_lease_source_close(&f->src);
  ts_stop(&f->server);
  unlink(f->kubeconfig);
  free(f);
  return 0;
}

typedef struct job {
  lfw_lease_source *src;
  int64_t t0;
  int start_ms;  /* When the decision arrives, after t0. */
  int budget_ms; /* Its deadline, after its arrival. */
  int rc;
  int rv;        /* The read it was given (its resourceVersion). */
  int first_get; /* GETs the server had started when the decision arrived. */
  atomic_bool arrived;
  char text[LF_ERROR_TEXT_MAX];
} job;

static void *run_job(void *arg) {
  job *j = arg;
  lf_lease_ref ref = {.ns = "ns", .name = "ctrl"};
  lf_lease lease;
  lf_error err = {0};
  while (mono_us() < j->t0 + (int64_t)j->start_ms * 1000) {
    usleep(500);
  }
  j->first_get = atomic_load(&gets);
  atomic_store(&j->arrived, true);
  j->rc = j->src->get(j->src->ctx, &ref, 0, mono_us() + (int64_t)j->budget_ms * 1000, &lease, &err);
  j->rv = j->rc == LF_OK ? atoi(lease.resource_version) : 0;
  snprintf(j->text, sizeof j->text, "%s", err.text);
  return NULL;
}

static void run_jobs(job *jobs, size_t n) {
  pthread_t th[64];
  int64_t t0 = mono_us();
  assert_true(n <= 64);
  for (size_t i = 0; i < n; i++) {
    jobs[i].t0 = t0;
    pthread_create(&th[i], NULL, run_job, &jobs[i]);
  }
  for (size_t i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
  }
}

/* Readiness comes with the first answer (the probe's 404 counts). */
static void test_ready(void **state) {
  fixture *f = *state;
  char why[256];
  int64_t until = mono_us() + 5000000;
  while (!f->src.ready(f->src.ctx, why, sizeof why) && mono_us() < until) {
    usleep(1000);
  }
  assert_true(f->src.ready(f->src.ctx, why, sizeof why));
  assert_false(f->src.caches);
}

/* 32 decisions at once on one Lease: all answered, far fewer GETs than
 * decisions, and each given a read that the server started after the
 * decision arrived (its number is above the count of GETs started then). */
static void test_coalescing(void **state) {
  fixture *f = *state;
  job jobs[32];
  atomic_store(&delay_ms, 100);
  int before = atomic_load(&gets);
  for (size_t i = 0; i < 32; i++) {
    jobs[i] = (job){.src = &f->src, .start_ms = (int)(i % 4) * 30, .budget_ms = 3000};
  }
  run_jobs(jobs, 32);
  int reads = atomic_load(&gets) - before;
  for (size_t i = 0; i < 32; i++) {
    if (jobs[i].rc != LF_OK) {
      fail_msg("decision %zu: %s", i, jobs[i].text);
    }
    if (jobs[i].rv <= jobs[i].first_get) {
      fail_msg("decision %zu was given read %d, started before it arrived (%d had started)", i,
               jobs[i].rv, jobs[i].first_get);
    }
  }
  print_message("32 decisions, %d GETs\n", reads);
  assert_true(reads <= 8);
}

/* Waits (bounded) until the server has seen `n` GETs; returns the count. */
static int await_gets(int n) {
  int64_t until = mono_us() + 10000000;
  while (atomic_load(&gets) < n && mono_us() < until) {
    usleep(1000);
  }
  return atomic_load(&gets);
}

/* Waits (bounded) until `*flag` holds; false if it never did. */
static bool await_true(atomic_bool *flag) {
  int64_t until = mono_us() + 10000000;
  while (!atomic_load(flag) && mono_us() < until) {
    usleep(1000);
  }
  return atomic_load(flag);
}

/* Two decisions wait for the second read: an impatient one (300 ms budget)
 * and a patient one (10 s). Whichever wakes first starts that read, on its
 * own deadline. The server holds that read until the impatient decision has
 * returned, so when the impatient one started it, it times out on the
 * impatient budget, and the patient one, which still has time, must not
 * inherit that timeout: it reads again and gets the Lease. The reads are
 * held and released by the test, not timed, so the outcome of every
 * decision is fixed whatever the load: the impatient one can only time out
 * (no read that started after it arrived is answered before it returns),
 * the others can only succeed. Who wakes first is a race, so the scenario
 * runs 16 times (a regression escapes only if the patient decision started
 * the second read every time; with the re-read removed, 5 runs in 6 failed
 * at 8 trials). */
static void test_timeout_not_shared(void **state) {
  fixture *f = *state;
  int impatient_started = 0;
  for (int trial = 0; trial < 16; trial++) {
    int base = atomic_load(&gets);
    job jobs[3] = {
        {.src = &f->src, .budget_ms = 10000},
        {.src = &f->src, .budget_ms = 300},
        {.src = &f->src, .budget_ms = 10000},
    };
    pthread_t th[3];
    set_gate(base); /* Hold every read of this trial. */
    pthread_create(&th[0], NULL, run_job, &jobs[0]);
    assert_int_equal(await_gets(base + 1), base + 1); /* The first read is held. */
    pthread_create(&th[1], NULL, run_job, &jobs[1]);
    pthread_create(&th[2], NULL, run_job, &jobs[2]);
    assert_true(await_true(&jobs[1].arrived));
    assert_true(await_true(&jobs[2].arrived));
    set_gate(base + 1); /* The first read answers; the second is held. */
    pthread_join(th[1], NULL);
    set_gate(INT_MAX);
    pthread_join(th[0], NULL);
    pthread_join(th[2], NULL);
    assert_int_equal(jobs[0].rc, LF_OK);
    assert_int_equal(jobs[1].rc, LF_ETIMEDOUT);
    if (jobs[2].rc != LF_OK) {
      fail_msg("trial %d: the patient decision inherited another's timeout: %s", trial,
               jobs[2].text);
    }
    /* The patient decision was given a later read than the second: the
     * impatient one started the second (and it timed out). */
    impatient_started += jobs[2].rv > base + 2;
  }
  print_message("the impatient decision started the shared read in %d of 16 trials\n",
                impatient_started);
}

/* A decision whose own budget runs out while it waits gets a timeout that
 * names the Lease. The read it waits behind is held until it has returned,
 * so it waits whatever the load. */
static void test_own_timeout(void **state) {
  fixture *f = *state;
  int base = atomic_load(&gets);
  job jobs[2] = {
      {.src = &f->src, .budget_ms = 10000},
      {.src = &f->src, .budget_ms = 100},
  };
  pthread_t th[2];
  set_gate(base);
  pthread_create(&th[0], NULL, run_job, &jobs[0]);
  assert_int_equal(await_gets(base + 1), base + 1); /* The first read is held. */
  pthread_create(&th[1], NULL, run_job, &jobs[1]);
  pthread_join(th[1], NULL);
  set_gate(INT_MAX);
  pthread_join(th[0], NULL);
  assert_int_equal(jobs[0].rc, LF_OK);
  assert_int_equal(jobs[1].rc, LF_ETIMEDOUT);
  assert_non_null(strstr(jobs[1].text, "ns/ctrl"));
}

static void test_not_found(void **state) {
  fixture *f = *state;
  lf_lease_ref ref = {.ns = "ns", .name = "other"};
  lf_lease lease;
  lf_error err = {0};
  assert_int_equal(f->src.get(f->src.ctx, &ref, 0, mono_us() + 2000000, &lease, &err),
                   LF_ENOTFOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
      cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_not_shared, setup, teardown),
      cmocka_unit_test_setup_teardown(test_own_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
