/* Fuzz target: the stamp and protection-annotation parsers. Invariant: what
 * parses formats back to the same bytes, and parses again identically. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lf_stamp s, again;
  lf_lease_ref ref;
  lf_error err;
  char buf[LF_STAMP_MAX + 1];

  if (lf_stamp_parse((const char *)data, size, &s, &err) == LF_OK) {
    if (s.holder_hashed) {
      /* A holder hash stands for a holder; it is never a holder itself. */
      LF_FUZZ_CHECK(lf_stamp_format(&s, buf, sizeof(buf), &err) != LF_OK);
    } else if (s.holder[0] != '\0') {
      LF_FUZZ_CHECK(lf_stamp_format(&s, buf, sizeof(buf), &err) == LF_OK);
      LF_FUZZ_CHECK(strlen(buf) == size && memcmp(buf, data, size) == 0);
      LF_FUZZ_CHECK(lf_stamp_parse(buf, strlen(buf), &again, &err) == LF_OK);
      LF_FUZZ_CHECK(again.term == s.term && strcmp(again.holder, s.holder) == 0);
    }
    char fm[LF_FIELD_MANAGER_MAX + 1];
    if (lf_stamp_format_field_manager(&s, fm, sizeof(fm), &err) == LF_OK) {
      LF_FUZZ_CHECK(strlen(fm) <= LF_FIELD_MANAGER_MAX);
    }
  } else {
    LF_FUZZ_CHECK(err.code < 0 && strlen(err.text) < sizeof(err.text));
  }
  if (lf_lease_ref_parse((const char *)data, size, "default", &ref, &err) == LF_OK) {
    LF_FUZZ_CHECK(strlen(ref.ns) <= LF_NAMESPACE_MAX && strlen(ref.name) <= LF_NAME_MAX);
  }
  if (lf_lease_ref_parse((const char *)data, size, NULL, &ref, &err) == LF_OK) {
    LF_FUZZ_CHECK(memchr(data, '/', size) != NULL);
  }
  return 0;
}
