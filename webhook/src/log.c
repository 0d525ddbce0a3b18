/*
 * log.c: JSON lines on stderr.
 */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int lfw_log_level = LFW_LOG_INFO;

static const char *level_name(int level) {
  switch (level) {
  case LFW_LOG_ERROR:
    return "error";
  case LFW_LOG_INFO:
    return "info";
  default:
    return "debug";
  }
}

void lfw_log_json(int level, const char *msg, json_t *fields) {
  char ts[96];
  struct timespec now;
  struct tm tm;
  json_t *line = NULL;
  char *text = NULL;
  size_t len;

  if (!lfw_log_enabled(level))
    goto out;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
  line = json_object();
  if (line == NULL)
    goto out;
  json_object_set_new(line, "ts", json_string(ts));
  json_object_set_new(line, "level", json_string(level_name(level)));
  json_object_set_new(line, "msg", json_string(msg));
  if (fields != NULL)
    json_object_update(line, fields);
  /* JSON_ENSURE_ASCII keeps a line valid even if a field held odd bytes. */
  text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
  if (text == NULL)
    goto out;
  len = strlen(text);
  text[len] = '\n'; /* Replaces the NUL: the buffer is written by length. */
  if (write(STDERR_FILENO, text, len + 1) < 0) {
    /* Nowhere left to report a failed log write. */
  }
out:
  free(text);
  json_decref(line);
  json_decref(fields);
}

void lfw_logf(int level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;

  if (!lfw_log_enabled(level))
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lfw_log_json(level, msg, NULL);
}
