/*
 * jsonmem.c: a malloc for jansson that remembers failing.
 */
#include "jsonmem.h"

#include <jansson.h>
#include <stdlib.h>

/* Per thread: each review and each Lease read runs on one thread, and one
 * thread's failure must not discard another's parse. */
static _Thread_local bool alloc_failed;

static void *watched_malloc(size_t n) {
  void *p = malloc(n);

  if (p == NULL)
    alloc_failed = true;
  return p;
}

static void watched_free(void *p) {
  free(p);
}

void lfw_jsonmem_install(void) {
  json_set_alloc_funcs(watched_malloc, watched_free);
}

void lfw_jsonmem_begin(void) {
  alloc_failed = false;
}

bool lfw_jsonmem_failed(void) {
  return alloc_failed;
}
