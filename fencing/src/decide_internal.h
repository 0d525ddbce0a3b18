/*
 * decide_internal: what the decision's tests reach beyond the public API.
 * Internal: prefix lf__, not installed.
 */
#ifndef LF_DECIDE_INTERNAL_H
#define LF_DECIDE_INTERNAL_H

#include <leasefence/fencing.h>

/* The name of one rule of the table (docs/protocol.md, section 5.2) that the
 * decision skips, or NULL. Only for the mutation tests, which switch each
 * rule off in turn and expect a vector to fail. */
extern const char *lf__decide_disabled;

/* Writes up to `max` names of the rules that can be switched off into
 * `names`; returns how many. */
size_t lf__decide_rule_names(const char **names, size_t max);

#endif /* LF_DECIDE_INTERNAL_H */
