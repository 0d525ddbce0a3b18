/* Fuzz target: the Lease parser, then the decision against whatever Lease
 * parsed, so odd Leases (future times, huge durations) reach the arithmetic. */
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lf_lease lease;
  lf_error err;
  if (lf_lease_parse((const char *)data, size, &lease, &err) != LF_OK) {
    LF_FUZZ_CHECK(err.code < 0);
    return 0;
  }
  LF_FUZZ_CHECK(lease.uid[0] != '\0' && lease.duration_s >= 0 && lease.transitions >= 0);
  LF_FUZZ_CHECK(strlen(lease.holder) <= LF_HOLDER_MAX);

  char stamp[LF_STAMP_MAX + 1];
  lf_stamp s = {.term = lease.transitions};
  snprintf(s.lease_uid, sizeof(s.lease_uid), "%s", lease.uid);
  snprintf(s.holder, sizeof(s.holder), "%s", lease.holder[0] ? lease.holder : "h");
  if (lf_stamp_format(&s, stamp, sizeof(stamp), &err) != LF_OK) {
    return 0; /* A uid the stamp format cannot carry. */
  }
  lf_request req = {.uid = "u",
                    .op = LF_OP_UPDATE,
                    .resource = "configmaps",
                    .subresource = "",
                    .ns = lease.ref.ns,
                    .name = "cm",
                    .username = "u",
                    .pod_name = NULL};
  req.object = (lf_object_meta){
      .present = true, .lease_annotation = lease.ref.name, .stamp_annotation = stamp};
  lf_lease_view view = {.status = LF_LEASE_OK, .lease = &lease};
  lf_policy policy;
  lf_policy_init(&policy);
  const int64_t nows[] = {INT64_MIN + 1, -1, 0, 1767225600000000LL, INT64_MAX};
  for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
    lf_decision d;
    lf_decide(&req, &view, nows[i], &policy, &d);
    lf_fuzz_check_decision(&d);
  }
  return 0;
}
