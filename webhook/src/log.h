/*
 * log.h: structured logs, one JSON object per line on stderr.
 *
 * Levels: 0 errors, 1 info (the default: start, stop, denials, certificate
 * reloads), 2 debug (every allowed review, libmicrohttpd's own messages).
 * Nothing logged here ever holds a token, a key or a whole object: callers
 * pass only the fields they name.
 */
#ifndef LFW_LOG_H
#define LFW_LOG_H

#include <jansson.h>

enum { LFW_LOG_ERROR = 0, LFW_LOG_INFO = 1, LFW_LOG_DEBUG = 2 };

/* The current level; set once at start-up, read everywhere. */
extern int lfw_log_level;

static inline int lfw_log_enabled(int level) {
  return level <= lfw_log_level;
}

/* Writes {"ts":..., "level":..., "msg": msg, ...fields} as one line with a
 * single write(2), so lines from several threads never interleave. `fields`
 * (may be NULL) is stolen: the function releases it. */
void lfw_log_json(int level, const char *msg, json_t *fields);

/* printf-style message with no other fields. */
void lfw_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* LFW_LOG_H */
