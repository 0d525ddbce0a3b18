/*
 * decide: the fencing decision of docs/protocol.md, section 5. Pure: the
 * request, the Lease as last read, the time and the policy go in; a decision
 * with a stable reason and a message for a person comes out.
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

/* Holders are quoted at most this long in messages, so one message still
 * names the expected and presented holders within LF_MESSAGE_MAX. */
#define QUOTE_MAX 120
#define US_PER_S INT64_C(1000000)

static const char *const reason_names[LF_R_COUNT] = {
    [LF_R_NOT_PROTECTED] = "NotProtected",
    [LF_R_CURRENT] = "Current",
    [LF_R_EXEMPT] = "Exempt",
    [LF_R_ADMITTED_UNAVAILABLE] = "AdmittedUnavailable",
    [LF_R_MISSING_STAMP] = "MissingStamp",
    [LF_R_MALFORMED_STAMP] = "MalformedStamp",
    [LF_R_CONFLICTING_STAMPS] = "ConflictingStamps",
    [LF_R_MALFORMED_PROTECTION] = "MalformedProtection",
    [LF_R_LEASE_NOT_FOUND] = "LeaseNotFound",
    [LF_R_LEASE_UNAVAILABLE] = "LeaseUnavailable",
    [LF_R_LEASE_RECREATED] = "LeaseRecreated",
    [LF_R_LEASE_RELEASED] = "LeaseReleased",
    [LF_R_LEASE_EXPIRED] = "LeaseExpired",
    [LF_R_CLOCK_SKEW] = "ClockSkew",
    [LF_R_NOT_HOLDER] = "NotHolder",
    [LF_R_STALE_TERM] = "StaleTerm",
    [LF_R_TERM_AHEAD] = "TermAhead",
    [LF_R_OLDER_THAN_OBJECT] = "OlderThanObject",
    [LF_R_IDENTITY_MISMATCH] = "IdentityMismatch",
    [LF_R_IDENTITY_REQUIRED] = "IdentityRequired",
};

const char *lf_reason_name(lf_reason reason) {
  if ((int)reason < 0 || reason >= LF_R_COUNT) {
    return "Unknown";
  }
  return reason_names[reason];
}

void lf_policy_init(lf_policy *policy) {
  /* Kubernetes' own controllers that delete or finalize objects they do not
   * own; fencing them would wedge namespace deletion and garbage collection. */
  static const char *const exempt_users[] = {
      "system:serviceaccount:kube-system:generic-garbage-collector",
      "system:serviceaccount:kube-system:namespace-controller",
      "system:kube-controller-manager",
  };
  memset(policy, 0, sizeof(*policy));
  policy->identity = LF_IDENTITY_WHEN_PRESENT;
  policy->skew_us = 2 * US_PER_S;
  policy->admit_when_unavailable = false;
  policy->exempt_users = exempt_users;
  policy->n_exempt_users = sizeof(exempt_users) / sizeof(exempt_users[0]);
}

/* Starts every message: "leasefence denied the UPDATE of configmaps
 * default/x (StaleTerm): ". */
static void begin(lf__sbuf *b, const lf_request *req, lf_decision *d, bool allowed,
                  lf_reason reason) {
  const char *res = req->resource != NULL && req->resource[0] != '\0' ? req->resource : "objects";
  d->allowed = allowed;
  d->reason = reason;
  lf__sbuf_init(b, d->message, sizeof(d->message));
  lf__sbuf_printf(b, "leasefence %s the %s%s of %s%s%s ", allowed ? "admitted" : "denied",
                  req->dry_run ? "dry-run " : "", lf_operation_name(req->op), res,
                  req->subresource != NULL && req->subresource[0] != '\0' ? "/" : "",
                  req->subresource != NULL ? req->subresource : "");
  if (req->name == NULL || req->name[0] == '\0') {
    lf__sbuf_printf(b, "(new object)");
  } else if (req->ns != NULL && req->ns[0] != '\0') {
    lf__sbuf_printf(b, "%s/%s", req->ns, req->name);
  } else {
    lf__sbuf_printf(b, "%s", req->name);
  }
  lf__sbuf_printf(b, " (%s): ", lf_reason_name(reason));
}

static void lease_name(lf__sbuf *b, const lf_lease_ref *ref) {
  lf__sbuf_printf(b, "Lease %s/%s", ref->ns, ref->name);
}

static void format_time(char *buf, size_t size, int64_t us) {
  if (lf_time_format(us, buf, size) != LF_OK) {
    snprintf(buf, size, "(none)");
  }
}

static bool is_exempt(const lf_request *req, const lf_policy *policy, const char **by) {
  for (size_t i = 0; i < policy->n_exempt_users; i++) {
    if (req->username != NULL && strcmp(req->username, policy->exempt_users[i]) == 0) {
      *by = "user";
      return true;
    }
  }
  for (size_t g = 0; g < req->n_groups; g++) {
    for (size_t i = 0; i < policy->n_exempt_groups; i++) {
      if (strcmp(req->groups[g], policy->exempt_groups[i]) == 0) {
        *by = req->groups[g];
        return true;
      }
    }
  }
  return false;
}

/* Namespace the protection annotation of `meta` is relative to: the object's
 * own, falling back to the request's (objects in a CREATE may omit it). */
static const char *meta_ns(const lf_request *req, const lf_object_meta *meta) {
  return meta->ns != NULL && meta->ns[0] != '\0' ? meta->ns : req->ns;
}

static void deny_malformed_protection(const lf_request *req, const char *which, const char *why,
                                      lf_decision *out) {
  lf__sbuf b;
  begin(&b, req, out, false, LF_R_MALFORMED_PROTECTION);
  lf__sbuf_printf(&b, "the %s " LF_ANNOTATION_LEASE " annotation is malformed: %s.", which, why);
}

int lf_decide_needs_lease(const lf_request *req, const lf_policy *policy, lf_lease_ref *ref,
                          lf_decision *out) {
  lf_error err;
  lf_lease_ref new_ref;
  const lf_object_meta *guard;
  const char *by = NULL;
  lf__sbuf b;

  if (req->op == LF_OP_CONNECT) {
    memset(out, 0, sizeof(*out));
    begin(&b, req, out, true, LF_R_NOT_PROTECTED);
    lf__sbuf_printf(&b, "CONNECT is never fenced.");
    return 0;
  }
  /* The incoming object's protection must be well formed even when the old
   * one decides: otherwise a write could store protection nobody can read. */
  if (req->op != LF_OP_DELETE && req->object.lease_annotation != NULL &&
      lf_lease_ref_parse(req->object.lease_annotation, strlen(req->object.lease_annotation),
                         meta_ns(req, &req->object), &new_ref, &err) != LF_OK) {
    memset(out, 0, sizeof(*out));
    deny_malformed_protection(req, "object's", err.text, out);
    return 0;
  }
  /* G6: the protection as it stood decides, so shedding or changing it is
   * itself fenced. */
  guard = req->old_object.lease_annotation != NULL ? &req->old_object : &req->object;
  if (guard->lease_annotation == NULL) {
    memset(out, 0, sizeof(*out));
    begin(&b, req, out, true, LF_R_NOT_PROTECTED);
    lf__sbuf_printf(&b, "the object is not protected.");
    return 0;
  }
  if (lf_lease_ref_parse(guard->lease_annotation, strlen(guard->lease_annotation),
                         meta_ns(req, guard), ref, &err) != LF_OK) {
    memset(out, 0, sizeof(*out));
    deny_malformed_protection(req, "stored object's", err.text, out);
    out->protected_ = true;
    return 0;
  }
  if (is_exempt(req, policy, &by)) {
    memset(out, 0, sizeof(*out));
    begin(&b, req, out, true, LF_R_EXEMPT);
    lf__sbuf_printf(&b, "user ");
    lf__sbuf_quote(&b, req->username != NULL ? req->username : "", QUOTE_MAX);
    lf__sbuf_printf(&b, " is exempt from fencing (%s%s); ",
                    strcmp(by, "user") == 0 ? "by name" : "group ",
                    strcmp(by, "user") == 0 ? "" : by);
    lease_name(&b, ref);
    lf__sbuf_printf(&b, " was not checked.");
    out->protected_ = true;
    out->lease = *ref;
    return 0;
  }
  return 1;
}

/* Is `holder` the identity of pod `pod`? client-go and controller-runtime
 * use "<hostname>_<uuid>", and a pod's hostname is its name. */
static bool holder_is_pod(const char *holder, const char *pod) {
  size_t n = strlen(pod);
  return strncmp(holder, pod, n) == 0 && (holder[n] == '\0' || holder[n] == '_');
}

static void expected_now(lf__sbuf *b, const lf_lease *lease) {
  lease_name(b, &lease->ref);
  if (lease->holder[0] == '\0') {
    lf__sbuf_printf(b, " has no holder (term %d)", (int)lease->transitions);
  } else {
    lf__sbuf_printf(b, " is held by ");
    lf__sbuf_quote(b, lease->holder, QUOTE_MAX);
    lf__sbuf_printf(b, " in term %d", (int)lease->transitions);
  }
}

/* Which stamp the write presents, and how the protocol calls its carrier. */
static const char *presented_text(const lf_request *req, const char **carrier) {
  if (req->op == LF_OP_DELETE) {
    *carrier = "stored on the object";
    return req->old_object.stamp_annotation;
  }
  if (req->subresource != NULL && req->subresource[0] != '\0') {
    *carrier = "in fieldManager";
    if (req->field_manager != NULL &&
        strncmp(req->field_manager, LF_STAMP_PREFIX, sizeof(LF_STAMP_PREFIX) - 1) == 0) {
      return req->field_manager;
    }
    return NULL;
  }
  *carrier = "in the " LF_ANNOTATION_STAMP " annotation";
  return req->object.stamp_annotation;
}

static void deny_missing(const lf_request *req, const lf_lease *lease, lf_decision *out) {
  lf__sbuf b;
  begin(&b, req, out, false, LF_R_MISSING_STAMP);
  lf__sbuf_printf(&b, "the object is protected by ");
  lease_name(&b, &lease->ref);
  if (req->op == LF_OP_DELETE) {
    lf__sbuf_printf(&b, " but carries no stamp from the current term. A fenced delete first "
                        "stamps the object (a merge patch) and then deletes that version with a "
                        "resourceVersion precondition. ");
  } else if (req->subresource != NULL && req->subresource[0] != '\0') {
    lf__sbuf_printf(&b,
                    " and a write to its %s subresource must carry the stamp in fieldManager "
                    "(fieldManager=" LF_STAMP_PREFIX "<term>:<lease-uid>:<holder>), because "
                    "the API server resets metadata on subresource writes. ",
                    req->subresource);
  } else {
    lf__sbuf_printf(&b, " but the write carries no " LF_ANNOTATION_STAMP
                        " annotation. Only the Lease holder may write, stamping each write "
                        "with its leader-election view. ");
  }
  lf__sbuf_printf(&b, "Now ");
  expected_now(&b, lease);
  lf__sbuf_printf(&b, " (uid %s).", lease->uid);
}

/* Rules 1-4 of the protocol for a parsed stamp against the Lease. Returns
 * true when they pass; otherwise fills `out` with the denial. */
static bool check_against_lease(const lf_request *req, const lf_stamp *s, const lf_lease *lease,
                                int64_t now_us, const lf_policy *policy, lf_decision *out) {
  lf__sbuf b;
  char t1[32], t2[32], t3[32];

  if (strcmp(s->lease_uid, lease->uid) != 0) {
    begin(&b, req, out, false, LF_R_LEASE_RECREATED);
    lf__sbuf_printf(&b, "the stamp names Lease uid %s, but ", s->lease_uid);
    lease_name(&b, &lease->ref);
    lf__sbuf_printf(&b,
                    " now has uid %s: it was deleted and re-created after the writer's view. "
                    "The writer must win the election on the new Lease and stamp with its uid.",
                    lease->uid);
    out->retry_live = true;
    return false;
  }
  if (lease->holder[0] == '\0') {
    begin(&b, req, out, false, LF_R_LEASE_RELEASED);
    lease_name(&b, &lease->ref);
    lf__sbuf_printf(&b,
                    " has no holder (released or never acquired) in term %d, so nobody may "
                    "write; the stamp presents term %d. Wait for a leader to acquire the Lease.",
                    (int)lease->transitions, (int)s->term);
    out->retry_live = true;
    return false;
  }
  if (s->term != lease->transitions) {
    bool stale = s->term < lease->transitions;
    begin(&b, req, out, false, stale ? LF_R_STALE_TERM : LF_R_TERM_AHEAD);
    lf__sbuf_printf(&b, "the write is stamped by ");
    lf__sbuf_quote(&b, s->holder[0] != '\0' ? s->holder : "(unnamed)", QUOTE_MAX);
    lf__sbuf_printf(&b, " in term %d, but ", (int)s->term);
    expected_now(&b, lease);
    if (stale) {
      lf__sbuf_printf(&b,
                      ". This writer is no longer the leader and must stop writing; if it "
                      "should lead, it must win the election again and stamp with the new term.");
    } else {
      lf__sbuf_printf(&b, " as the webhook read it, older than the stamp. The webhook's view is "
                          "behind; retry the write.");
      out->retry_live = true;
    }
    return false;
  }
  if (s->holder[0] != '\0' && strcmp(s->holder, lease->holder) != 0) {
    begin(&b, req, out, false, LF_R_NOT_HOLDER);
    lf__sbuf_printf(&b, "the stamp names ");
    lf__sbuf_quote(&b, s->holder, QUOTE_MAX);
    lf__sbuf_printf(&b, " as holder in term %d, but ", (int)s->term);
    expected_now(&b, lease);
    lf__sbuf_printf(&b, ". Only the holder may write.");
    return false;
  }

  int64_t renew = lease->renew_us != LF_TIME_NONE ? lease->renew_us : lease->acquire_us;
  if (renew == LF_TIME_NONE || lease->duration_s <= 0) {
    begin(&b, req, out, false, LF_R_LEASE_EXPIRED);
    lease_name(&b, &lease->ref);
    lf__sbuf_printf(&b, " has no renewTime or no positive leaseDurationSeconds, so it cannot be "
                        "shown to be held now; it is treated as expired.");
    out->retry_live = true;
    return false;
  }
  format_time(t1, sizeof(t1), renew);
  format_time(t3, sizeof(t3), now_us);
  /* Written as a comparison with renew - skew (both bounded: renewTime by
   * the calendar, skew by the policy) so no subtraction involving the
   * caller's `now` can overflow. */
  if (now_us < renew - policy->skew_us) {
    begin(&b, req, out, false, LF_R_CLOCK_SKEW);
    lease_name(&b, &lease->ref);
    lf__sbuf_printf(&b,
                    " was renewed at %s, %.3fs ahead of the webhook's clock (%s; tolerance "
                    "%.3fs). The clocks disagree too much to judge expiry; synchronise the "
                    "holder's and the webhook's clocks (NTP).",
                    t1, ((double)renew - (double)now_us) / US_PER_S, t3,
                    (double)policy->skew_us / US_PER_S);
    return false;
  }
  int64_t expiry = renew + (int64_t)lease->duration_s * US_PER_S - policy->skew_us;
  if (now_us >= expiry) {
    begin(&b, req, out, false, LF_R_LEASE_EXPIRED);
    expected_now(&b, lease);
    format_time(t2, sizeof(t2), expiry);
    lf__sbuf_printf(&b,
                    ", but it was last renewed at %s for %ds and counts as expired from %s "
                    "(clock-skew tolerance %.3fs); now is %s. The holder has stopped renewing "
                    "and must not write until it renews the Lease.",
                    t1, (int)lease->duration_s, t2, (double)policy->skew_us / US_PER_S, t3);
    out->retry_live = true;
    return false;
  }
  return true;
}

void lf_decide(const lf_request *req, const lf_lease_view *view, int64_t now_us,
               const lf_policy *policy, lf_decision *out) {
  lf_lease_ref ref;
  lf_stamp s, other;
  lf_error err;
  lf__sbuf b;
  const char *carrier = NULL;
  const char *text;
  const lf_lease *lease;

  memset(out, 0, sizeof(*out));
  if (lf_decide_needs_lease(req, policy, &ref, out) == 0) {
    return;
  }
  out->protected_ = true;
  out->lease = ref;

  /* Rule 0: the Lease as read. */
  if (view == NULL || view->status == LF_LEASE_NOT_FOUND ||
      (view->status == LF_LEASE_OK && view->lease == NULL)) {
    begin(&b, req, out, false, LF_R_LEASE_NOT_FOUND);
    lf__sbuf_printf(&b, "the object is protected by ");
    lease_name(&b, &ref);
    lf__sbuf_printf(
        &b, ", which does not exist. Start the controller's leader election (it creates "
            "the Lease), or have an exempt user remove the " LF_ANNOTATION_LEASE " annotation.");
    out->retry_live = true;
    return;
  }
  if (view->status != LF_LEASE_OK) {
    bool open = policy->admit_when_unavailable;
    begin(&b, req, out, open, open ? LF_R_ADMITTED_UNAVAILABLE : LF_R_LEASE_UNAVAILABLE);
    lease_name(&b, &ref);
    lf__sbuf_printf(&b, ", which guards the object, could not be read: %s. ",
                    view->cause != NULL ? view->cause : "unknown cause");
    lf__sbuf_printf(&b, open ? "The write was admitted WITHOUT fencing because the webhook is "
                               "configured to admit when the Lease is unavailable."
                             : "Writes to protected objects are refused until it can be read; "
                               "retry shortly.");
    return;
  }
  lease = view->lease;

  /* Rule 1: a stamp that parses, naming a holder unless it is in fieldManager. */
  text = presented_text(req, &carrier);
  if (text == NULL) {
    deny_missing(req, lease, out);
    return;
  }
  {
    const char *why = NULL;
    if (lf_stamp_parse(text, strlen(text), &s, &err) != LF_OK) {
      why = err.text;
    } else if (s.holder[0] == '\0' && strcmp(carrier, "in fieldManager") != 0) {
      why = "it names no holder, which only a stamp in fieldManager may omit";
    }
    if (why != NULL) {
      begin(&b, req, out, false, LF_R_MALFORMED_STAMP);
      lf__sbuf_printf(&b, "the stamp %s, ", carrier);
      lf__sbuf_quote(&b, text, 80);
      lf__sbuf_printf(
          &b, ", is malformed: %s. A stamp reads " LF_STAMP_PREFIX "<term>:<lease-uid>:<holder>.",
          why);
      return;
    }
  }
  out->has_presented = true;
  out->presented = s;

  /* A main-resource write may also carry a stamp in fieldManager; two stamps
   * that disagree are a bug in the writer, never resolved by guessing. */
  if (req->op != LF_OP_DELETE && (req->subresource == NULL || req->subresource[0] == '\0') &&
      req->field_manager != NULL &&
      strncmp(req->field_manager, LF_STAMP_PREFIX, sizeof(LF_STAMP_PREFIX) - 1) == 0) {
    if (lf_stamp_parse(req->field_manager, strlen(req->field_manager), &other, &err) != LF_OK ||
        other.term != s.term || strcmp(other.lease_uid, s.lease_uid) != 0 ||
        (other.holder[0] != '\0' && strcmp(other.holder, s.holder) != 0)) {
      begin(&b, req, out, false, LF_R_CONFLICTING_STAMPS);
      lf__sbuf_printf(&b,
                      "the stamp in the " LF_ANNOTATION_STAMP " annotation (term %d) and the "
                      "one in fieldManager ",
                      (int)s.term);
      lf__sbuf_quote(&b, req->field_manager, 80);
      lf__sbuf_printf(&b, " disagree. Send one stamp, or the same stamp in both places.");
      return;
    }
  }

  /* Rules 2-4. */
  if (!check_against_lease(req, &s, lease, now_us, policy, out)) {
    return;
  }

  /* Rule 5 (G2): never go back to an older term on this object. */
  if (req->op != LF_OP_DELETE && req->old_object.stamp_annotation != NULL &&
      lf_stamp_parse(req->old_object.stamp_annotation, strlen(req->old_object.stamp_annotation),
                     &other, &err) == LF_OK &&
      strcmp(other.lease_uid, s.lease_uid) == 0 && other.term > s.term) {
    begin(&b, req, out, false, LF_R_OLDER_THAN_OBJECT);
    lf__sbuf_printf(&b,
                    "the write is stamped with term %d, but this object was already written in "
                    "term %d of ",
                    (int)s.term, (int)other.term);
    lease_name(&b, &lease->ref);
    lf__sbuf_printf(&b, "; a write from an older term is never admitted again. The webhook's read "
                        "of the Lease is behind the object; retry the write.");
    out->retry_live = true;
    return;
  }

  /* Rule 6 (G4): the requester's pod must be the holder. */
  if (policy->identity != LF_IDENTITY_OFF) {
    if (req->pod_name != NULL && !holder_is_pod(lease->holder, req->pod_name)) {
      begin(&b, req, out, false, LF_R_IDENTITY_MISMATCH);
      lf__sbuf_printf(&b, "the request comes from pod ");
      lf__sbuf_quote(&b, req->pod_name, QUOTE_MAX);
      lf__sbuf_printf(&b, ", but ");
      expected_now(&b, lease);
      lf__sbuf_printf(&b, ". Only the holder's pod may write; a stale leader that carries another "
                          "writer's stamp forward through a read-modify-write is stopped here.");
      return;
    }
    if (req->pod_name == NULL && policy->identity == LF_IDENTITY_REQUIRED) {
      begin(&b, req, out, false, LF_R_IDENTITY_REQUIRED);
      lf__sbuf_printf(&b, "writes to objects protected by ");
      lease_name(&b, &lease->ref);
      lf__sbuf_printf(&b, " must come from the holder's pod with a pod-bound service-account "
                          "token, and this request from user ");
      lf__sbuf_quote(&b, req->username != NULL ? req->username : "", QUOTE_MAX);
      lf__sbuf_printf(&b, " carries no pod identity.");
      return;
    }
  }

  begin(&b, req, out, true, LF_R_CURRENT);
  lf__sbuf_printf(&b, "the stamp is current: ");
  expected_now(&b, lease);
  lf__sbuf_printf(&b, ".");
}
