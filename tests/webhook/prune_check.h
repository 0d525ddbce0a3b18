/*
 * prune_check.h: the differential check of the pruning scanner against
 * jansson, shared by test_webhook_prune.c and the fuzz target fuzz_prune.c;
 * and the fixed Lease and clock the review-path tests run with.
 */
#ifndef LFW_PRUNE_CHECK_H
#define LFW_PRUNE_CHECK_H

#include <leasefence/fencing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct prune_check_stats {
  int checked;
  int accepted; /* Both the scanner and jansson accepted the body. */
} prune_check_stats;

/* Checks one input (see test_webhook_prune.c for the rules). Returns NULL
 * when they hold, else a sentence saying which one broke (static storage). */
const char *prune_check(const char *in, size_t len, prune_check_stats *stats);

/* A Lease source's get: every lookup finds the same current Lease (holder
 * ctrl-a_aaaaaaaa-0000-4000-8000-000000000001, term 3, the vectors' uid). */
int prune_check_lease_get(void *ctx, const lf_lease_ref *ref, unsigned flags, int64_t deadline_us,
                          lf_lease *out, lf_error *err);

/* The vectors' "now", 2026-01-01T00:00:05Z, as a review clock. */
int64_t prune_check_clock(void);

#endif
