/*
 * fuzz_prune.c: fuzz target for the webhook's review path: the pruning
 * scanner checked against jansson (prune_check.c), then the whole review
 * handler, whose answer must always be well formed.
 *
 * With clang and -DLF_FUZZ=ON this is a libFuzzer binary (fuzz-webhook-review);
 * otherwise it is built with a main() that replays the files or directories
 * named on its command line, which ctest runs over the seed corpus.
 */
#include "prune_check.h"

#include "buf.h"
#include "log.h"
#include "review.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                 \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static prune_check_stats stats;
  const char *why = prune_check((const char *)data, size, &stats);
  lf_policy policy;
  lfw_lease_source src = {.name = "fixed", .get = prune_check_lease_get};
  lfw_review_env env = {0};
  lfw_buf scratch;
  lfw_buf out;
  lfw_review_result res;
  json_t *answer;

  if (why != NULL) {
    fprintf(stderr, "prune: %s\n", why);
    abort();
  }
  lfw_log_level = -1; /* Quiet. */
  lf_policy_init(&policy);
  env.policy = &policy;
  env.mode = LFW_MODE_DENY;
  env.source = &src;
  env.lease_timeout_us = 1000000;
  env.clock = prune_check_clock; /* exact times: the vectors' 2026-01-01T00:00:05Z */
  lfw_buf_init(&scratch, size);
  lfw_buf_init(&out, 64 * 1024);
  lfw_review_handle(&env, (const char *)data, size, &scratch, &out, &res);
  CHECK(!out.overflow && out.data != NULL);
  CHECK(res.http_status == 200 || res.http_status == 400);
  if (res.json) {
    answer = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(answer != NULL);
    CHECK(json_is_string(json_object_get(json_object_get(answer, "response"), "uid")));
    CHECK(json_is_boolean(json_object_get(json_object_get(answer, "response"), "allowed")));
    json_decref(answer);
  }
  lfw_buf_free(&scratch);
  lfw_buf_free(&out);
  return 0;
}

#ifndef LFW_LIBFUZZER
#include <dirent.h>
#include <sys/stat.h>

#define REPLAY_MAX (8 * 1024 * 1024)

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  size_t n;

  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  buf = malloc(REPLAY_MAX);
  if (buf == NULL) {
    fclose(f);
    return -1;
  }
  n = fread(buf, 1, REPLAY_MAX, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  size_t files = 0;
  int i;

  for (i = 1; i < argc; i++) {
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s does not exist\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) != 0)
        return 1;
      files++;
      continue;
    }
    d = opendir(argv[i]);
    for (e = d != NULL ? readdir(d) : NULL; e != NULL; e = readdir(d)) {
      char path[4096];

      if (e->d_name[0] == '.')
        continue;
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      if (run_file(path) != 0) {
        closedir(d);
        return 1;
      }
      files++;
    }
    if (d != NULL)
      closedir(d);
  }
  printf("replayed %zu inputs\n", files);
  return 0;
}
#endif
