/*
 * jsonwatch: an allocator for jansson that remembers, per thread, that an
 * allocation failed (fencing.h, "jansson's allocations").
 */
#include "text.h"

#include <stdlib.h>

/* Per thread: one thread's failure must not discard another's parse. */
static _Thread_local bool alloc_failed;

void *lf_json_malloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    alloc_failed = true;
  }
  return p;
}

void lf_json_free(void *p) {
  free(p);
}

void lf_json_watch_begin(void) {
  alloc_failed = false;
}

bool lf_json_watch_failed(void) {
  return alloc_failed;
}
