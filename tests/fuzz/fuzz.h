/*
 * fuzz: shared by the libFuzzer targets. Each target defines
 * LLVMFuzzerTestOneInput; built with clang and -fsanitize=fuzzer it is a
 * fuzzer, built with anything else replay.c supplies a main() that runs every
 * file of the seed corpus through it, so the ordinary test run replays the
 * corpus.
 */
#ifndef LF_FUZZ_H
#define LF_FUZZ_H

#include <leasefence/fencing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broken is a crash, which both libFuzzer and ctest report. */
#define LF_FUZZ_CHECK(cond)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                 \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static inline void lf_fuzz_check_decision(const lf_decision *d) {
  LF_FUZZ_CHECK((int)d->reason >= 0 && d->reason < LF_R_COUNT);
  LF_FUZZ_CHECK(strlen(d->message) > 0 && strlen(d->message) < LF_MESSAGE_MAX);
  /* Allowed exactly for the allowing reasons. */
  bool allowing = d->reason == LF_R_NOT_PROTECTED || d->reason == LF_R_CURRENT ||
                  d->reason == LF_R_EXEMPT || d->reason == LF_R_ADMITTED_UNAVAILABLE ||
                  d->reason == LF_R_OTHER_WRITER || d->reason == LF_R_UNGUARDED;
  LF_FUZZ_CHECK(allowing == d->allowed);
  /* A fresher Lease is asked for only to reconsider a denial. */
  LF_FUZZ_CHECK(!(d->allowed && d->retry_live));
}

#endif
