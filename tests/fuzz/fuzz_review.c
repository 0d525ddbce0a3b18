/* Fuzz target: the AdmissionReview reader as the webhook uses it (same
 * jansson flags), then the decision with a fixed Lease. */
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t jerr;
  lf_request req;
  lf_error err;
  lf_lease_ref ref;
  lf_decision d;
  lf_policy policy;
  json_t *root =
      json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (root == NULL) {
    return 0;
  }
  lf_policy_init(&policy);
  if (lf_request_from_review(root, &req, &err) == LF_OK) {
    LF_FUZZ_CHECK(req.uid != NULL && req.uid[0] != '\0' && req.n_groups <= LF_GROUPS_MAX);
    static const char lease_json[] =
        "{\"metadata\":{\"name\":\"ctrl\",\"namespace\":\"default\",\"uid\":\"u\"},"
        "\"spec\":{\"holderIdentity\":\"ctrl-a_1\",\"leaseDurationSeconds\":15,"
        "\"leaseTransitions\":3,\"renewTime\":\"2026-01-01T00:00:00Z\"}}";
    lf_lease lease;
    LF_FUZZ_CHECK(lf_lease_parse(lease_json, sizeof(lease_json) - 1, &lease, &err) == LF_OK);
    lf_lease_view views[] = {{.status = LF_LEASE_OK, .lease = &lease},
                             {.status = LF_LEASE_NOT_FOUND},
                             {.status = LF_LEASE_UNAVAILABLE, .cause = "down"}};
    int needs = lf_decide_needs_lease(&req, &policy, &ref, &d);
    for (size_t i = 0; i < 3; i++) {
      lf_decide(&req, &views[i], 1767225605000000LL, &policy, &d);
      lf_fuzz_check_decision(&d);
      if (needs == 0) {
        break;
      }
    }
  } else {
    LF_FUZZ_CHECK(err.code < 0 && err.text[0] != '\0');
  }
  json_decref(root);
  return 0;
}
