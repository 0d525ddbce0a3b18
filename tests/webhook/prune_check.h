/*
 * prune_check.h: the differential check of the pruning scanner against
 * jansson, shared by test_webhook_prune.c and the fuzz target fuzz_prune.c.
 */
#ifndef LFW_PRUNE_CHECK_H
#define LFW_PRUNE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct prune_check_stats {
  int checked;
  int accepted; /* Both the scanner and jansson accepted the body. */
} prune_check_stats;

/* Checks one input (see test_webhook_prune.c for the rules). Returns NULL
 * when they hold, else a sentence saying which one broke (static storage). */
const char *prune_check(const char *in, size_t len, prune_check_stats *stats);

#endif
