/*
 * lease_source.c: picks a Lease source from its --lease-source spelling.
 */
#include "lease_source.h"

#include <stdio.h>
#include <string.h>

int lfw_lease_source_open(const char *spec, lfw_lease_source *out, lf_error *err) {
  memset(out, 0, sizeof *out);
  if (strncmp(spec, "file:", 5) == 0)
    return lfw_lease_file_open(spec + 5, out, err);
  if (err != NULL) {
    err->code = LF_EINVAL;
    snprintf(err->text, sizeof err->text,
             "--lease-source: \"%s\" is not a known source (use file:DIR)", spec);
  }
  return LF_EINVAL;
}

void lfw_lease_source_close(lfw_lease_source *src) {
  if (src->close != NULL)
    src->close(src->ctx);
  memset(src, 0, sizeof *src);
}
