/*
 * jsonmem.h: jansson's allocations, watched for failure.
 *
 * jansson 2.14 does not always report running out of memory: its lexer
 * ignores a failed append to the text it is collecting, so a string or a
 * number can come back a byte short while json_loadb() succeeds (found by
 * tests/webhook/test_webhook_oom.c). A key cut short matters to fencing: an
 * object whose "leasefence.io/lease" key lost a byte would look unprotected.
 * So the webhook gives jansson an allocator that notes, per thread, every
 * allocation that failed, and discards any parse during which one did.
 */
#ifndef LFW_JSONMEM_H
#define LFW_JSONMEM_H

#include <stdbool.h>

/* Makes jansson allocate through the watching allocator. Call once, before
 * any other thread uses jansson. */
void lfw_jsonmem_install(void);

/* Starts watching on this thread: forgets earlier failures. */
void lfw_jsonmem_begin(void);

/* Whether a jansson allocation failed on this thread since
 * lfw_jsonmem_begin(). */
bool lfw_jsonmem_failed(void);

#endif /* LFW_JSONMEM_H */
