/* Fuzz target: the protection annotation parser, lf_protection_parse. The
 * input is the annotation's value; each is parsed on a namespaced and on a
 * cluster-scoped object, under both webhook defaults. Invariants: what
 * parses names a valid Lease and a mode that only a prefix overrides,
 * formats back to a qualified form that parses identically, and agrees with
 * lf_lease_ref_parse; what fails leaves the outputs alone and explains
 * itself in a bounded, printable sentence. */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

static bool dns_char(char c, bool dot) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (dot && c == '.');
}

/* The parser's promise about a Lease reference, restated from section 2 of
 * docs/protocol.md rather than from its code. */
static bool valid_ref(const lf_lease_ref *ref) {
  size_t ns = strlen(ref->ns);
  size_t name = strlen(ref->name);
  bool ok = ns > 0 && ns <= LF_NAMESPACE_MAX && name > 0 && name <= LF_NAME_MAX &&
            ref->ns[0] != '-' && ref->ns[ns - 1] != '-' && ref->name[0] != '-' &&
            ref->name[0] != '.' && ref->name[name - 1] != '-' && ref->name[name - 1] != '.';
  for (size_t i = 0; ok && i < ns; i++) {
    ok = dns_char(ref->ns[i], false);
  }
  for (size_t i = 0; ok && i < name; i++) {
    ok = dns_char(ref->name[i], true);
  }
  return ok && strstr(ref->name, "..") == NULL && strstr(ref->name, "-.") == NULL &&
         strstr(ref->name, ".-") == NULL;
}

static bool same_ref(const lf_lease_ref *a, const lf_lease_ref *b) {
  return strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0;
}

/* True when the n bytes at p all hold the byte `unset`. */
static bool untouched(const void *p, size_t n, unsigned char unset) {
  const unsigned char *b = p;
  bool same = true;
  for (size_t i = 0; same && i < n; i++) {
    same = b[i] == unset;
  }
  return same;
}

static void check_error(const lf_error *err) {
  size_t n = strnlen(err->text, sizeof(err->text));
  LF_FUZZ_CHECK(err->code == LF_EINVAL || err->code == LF_ETOOBIG);
  LF_FUZZ_CHECK(n > 0 && n < sizeof(err->text));
  /* The message is the parser's own sentence: it never echoes the input,
   * so it stays printable ASCII whatever bytes came in. */
  for (size_t i = 0; i < n; i++) {
    LF_FUZZ_CHECK(err->text[i] >= 0x20 && err->text[i] < 0x7f);
  }
  LF_FUZZ_CHECK(strstr(err->text, LF_ANNOTATION_LEASE) != NULL);
}

static void one(const char *text, size_t size, const char *object_ns, lf_fencing default_fencing) {
  static const unsigned char unset = 0x5a;
  lf_lease_ref ref, again, plain;
  lf_fencing mode;
  lf_fencing mode_again;
  lf_error err = {0};
  char qualified[sizeof("identity:") + LF_NAMESPACE_MAX + 1 + LF_NAME_MAX];
  const char *colon = memchr(text, ':', size);
  int rc;

  memset(&ref, unset, sizeof(ref));
  memset(&mode, unset, sizeof(mode));
  rc = lf_protection_parse(text, size, object_ns, default_fencing, &ref, &mode, &err);
  if (rc != LF_OK) {
    LF_FUZZ_CHECK(rc == err.code);
    check_error(&err);
    /* Outputs are written only on success. */
    LF_FUZZ_CHECK(untouched(&ref, sizeof(ref), unset) && untouched(&mode, sizeof(mode), unset));
    /* Without a mode, the annotation is a bare Lease reference. */
    LF_FUZZ_CHECK(colon != NULL ||
                  lf_lease_ref_parse(text, size, object_ns, &plain, &err) != LF_OK);
    return;
  }
  LF_FUZZ_CHECK(size <= LF_ANNOTATION_MAX);
  LF_FUZZ_CHECK(valid_ref(&ref));
  /* Only a prefix overrides the default, and a prefix is a whole mode. */
  if (colon == NULL) {
    LF_FUZZ_CHECK(mode == default_fencing);
  } else if (mode == LF_FENCING_IDENTITY) {
    LF_FUZZ_CHECK(colon - text == 8 && memcmp(text, "identity", 8) == 0);
  } else {
    LF_FUZZ_CHECK(mode == LF_FENCING_STAMP && colon - text == 5 && memcmp(text, "stamp", 5) == 0);
  }
  /* A bare name is the object's namespace, which a cluster-scoped object
   * lacks. */
  const char *lease = colon != NULL ? colon + 1 : text;
  size_t lease_len = size - (size_t)(lease - text);
  if (memchr(lease, '/', lease_len) == NULL) {
    LF_FUZZ_CHECK(object_ns != NULL && strcmp(ref.ns, object_ns) == 0);
  }
  /* What follows the mode is exactly what lf_lease_ref_parse accepts. */
  LF_FUZZ_CHECK(lf_lease_ref_parse(lease, lease_len, object_ns, &plain, &err) == LF_OK);
  LF_FUZZ_CHECK(same_ref(&plain, &ref));
  /* Round trip through the qualified form, on a cluster-scoped object and
   * under the other default: the same Lease, the same mode. */
  int n =
      snprintf(qualified, sizeof(qualified), "%s:%s/%s", lf_fencing_name(mode), ref.ns, ref.name);
  LF_FUZZ_CHECK(n > 0 && (size_t)n < sizeof(qualified));
  lf_fencing other = default_fencing == LF_FENCING_STAMP ? LF_FENCING_IDENTITY : LF_FENCING_STAMP;
  LF_FUZZ_CHECK(lf_protection_parse(qualified, (size_t)n, NULL, other, &again, &mode_again, &err) ==
                LF_OK);
  LF_FUZZ_CHECK(same_ref(&again, &ref) && mode_again == mode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  static const char *const namespaces[] = {"default", NULL, ""};
  for (size_t i = 0; i < sizeof(namespaces) / sizeof(namespaces[0]); i++) {
    one(text, size, namespaces[i], LF_FENCING_STAMP);
    one(text, size, namespaces[i], LF_FENCING_IDENTITY);
  }
  return 0;
}
