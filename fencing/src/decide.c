/*
 * decide: the fencing decision of docs/protocol.md, section 5. Pure: the
 * request, the Lease as last read, the time and the policy go in; a decision
 * with a stable reason and a message for a person comes out.
 *
 * The rules are one ordered table (section 5.2). Each rule either decides
 * or passes the request on to the next. Rules of the first step need no
 * Lease; lf_decide_needs_lease runs them alone. Rules marked NO_LEASE in the
 * second step need no Lease either and run before the Lease's status is
 * judged when it could not be read, so failing open never waives them.
 */
#include "decide_internal.h"
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
    [LF_R_OTHER_WRITER] = "OtherWriter",
    [LF_R_UNGUARDED] = "Unguarded",
    [LF_R_OTHER_LEASE] = "OtherLease",
    [LF_R_PROTECTION_CHANGE] = "ProtectionChange",
    [LF_R_STAMP_CHANGE] = "StampChange",
    [LF_R_UNBOUND_HOLDER] = "UnboundHolder",
};

const char *lf_reason_name(lf_reason reason) {
  if ((int)reason < 0 || reason >= LF_R_COUNT) {
    return "Unknown";
  }
  return reason_names[reason];
}

const char *lf_writer_name(lf_writer writer) {
  switch (writer) {
  case LF_WRITER_EXEMPT:
    return "exempt";
  case LF_WRITER_CONTROLLER:
    return "controller";
  case LF_WRITER_OTHER:
    return "other";
  case LF_WRITER_UNKNOWN:
    break;
  }
  return "unknown";
}

void lf_policy_init(lf_policy *policy) {
  /* Kubernetes' own control plane: every controller service account of the
   * RBAC bootstrap policy of Kubernetes v1.36
   * (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go),
   * which kube-controller-manager uses with per-controller credentials, its
   * own user without them, and the scheduler. They write status, scale,
   * finalizers and deletes of the objects operators protect; fencing them
   * wedges rollouts, garbage collection and namespace deletion. */
#define KSA "system:serviceaccount:kube-system:"
  static const char *const exempt_users[] = {
      KSA "attachdetach-controller",
      KSA "certificate-controller",
      KSA "clusterrole-aggregation-controller",
      KSA "cronjob-controller",
      KSA "daemon-set-controller",
      KSA "deployment-controller",
      KSA "device-taint-eviction-controller",
      KSA "disruption-controller",
      KSA "endpoint-controller",
      KSA "endpointslice-controller",
      KSA "endpointslicemirroring-controller",
      KSA "ephemeral-volume-controller",
      KSA "expand-controller",
      KSA "generic-garbage-collector",
      KSA "horizontal-pod-autoscaler",
      KSA "job-controller",
      KSA "kube-apiserver-serving-clustertrustbundle-publisher",
      KSA "legacy-service-account-token-cleaner",
      KSA "namespace-controller",
      KSA "node-controller",
      KSA "persistent-volume-binder",
      KSA "pod-garbage-collector",
      KSA "podcertificaterequestcleaner",
      KSA "podgroup-protection-controller",
      KSA "pv-protection-controller",
      KSA "pvc-protection-controller",
      KSA "replicaset-controller",
      KSA "replication-controller",
      KSA "resource-claim-controller",
      KSA "resourcepoolstatusrequest-controller",
      KSA "resourcequota-controller",
      KSA "root-ca-cert-publisher",
      KSA "route-controller",
      KSA "selinux-warning-controller",
      KSA "service-account-controller",
      KSA "service-cidrs-controller",
      KSA "service-controller",
      KSA "statefulset-controller",
      KSA "storage-version-garbage-collector",
      KSA "storage-version-migrator-controller",
      KSA "ttl-after-finished-controller",
      KSA "ttl-controller",
      KSA "validatingadmissionpolicy-status-controller",
      KSA "volumeattributesclass-protection-controller",
      "system:kube-controller-manager",
      "system:kube-scheduler",
  };
#undef KSA
  memset(policy, 0, sizeof(*policy));
  policy->identity = LF_IDENTITY_WHEN_PRESENT;
  policy->default_fencing = LF_FENCING_STAMP;
  policy->skew_us = 2 * US_PER_S;
  policy->admit_when_unavailable = false;
  policy->deny_unstamped = false;
  policy->exempt_users = exempt_users;
  policy->n_exempt_users = sizeof(exempt_users) / sizeof(exempt_users[0]);
}

/* Everything one decision works with. The request, policy and view are the
 * caller's; the rest is derived from them by the rules as they run. */
typedef struct judge {
  const lf_request *req;
  const lf_policy *policy;
  const lf_lease_view *view; /* NULL in the first step. */
  int64_t now_us;
  lf_decision *out;
  lf_lease_ref ref;           /* The guarding Lease (rule 3). */
  bool old_malformed;         /* oldObject's protection is malformed: it guards nothing. */
  bool protection_changed;    /* The write changes a well-formed stored protection. */
  bool stamp_changed;         /* The write changes the stored stamp annotation. */
  bool subresource;           /* A write to a subresource. */
  lf_fencing fencing;         /* How the guarding protection fences (rule 3). */
  bool by_identity;           /* A controller's write judged by identity (rule 4). */
  const char *why_controller; /* Why the requester is one of the controller's writers. */
  const char *carrier;        /* Where the presented stamp travels. */
  const char *presented_text; /* The presented stamp's text (W). */
  lf_stamp presented;         /* Valid from rule 9 on (W). */
  lf_stamp stored;            /* oldObject's stamp, when has_stored. */
  bool has_stored;            /* oldObject's stamp parses in the full form. */
  lf_stamp written;           /* The stamp an other's write stores (rule 7). */
  const lf_lease *lease;      /* The Lease, from rule 11 on. */
  bool disclose;              /* The Lease's state may be shown. */
} judge;

enum { NEXT = 0, DECIDED = 1 };

/* Starts every message: "leasefence denied the UPDATE of configmaps
 * default/x (StaleTerm): ". */
static void begin(lf__sbuf *b, judge *j, bool allowed, lf_reason reason) {
  const lf_request *req = j->req;
  lf_decision *d = j->out;
  const char *res = req->resource != NULL && req->resource[0] != '\0' ? req->resource : "objects";
  d->allowed = allowed;
  d->reason = reason;
  d->retry_live = false;
  lf__sbuf_init(b, d->message, sizeof(d->message));
  lf__sbuf_printf(b, "leasefence %s the %s%s of %s%s%s ", allowed ? "admitted" : "denied",
                  req->dry_run ? "dry-run " : "", lf_operation_name(req->op), res,
                  j->subresource ? "/" : "", j->subresource ? req->subresource : "");
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

/* "Lease ns/name is held by "h" in term T", or, when the requester may not
 * read the Lease, its name alone (docs/protocol.md, section 5.3). */
static void lease_state(lf__sbuf *b, const judge *j) {
  const lf_lease *lease = j->lease;
  lease_name(b, &j->ref);
  if (!j->disclose) {
    lf__sbuf_printf(b, " (its state is not shown to this requester)");
  } else if (lease->holder[0] == '\0') {
    lf__sbuf_printf(b, " has no holder (term %d)", (int)lease->transitions);
  } else {
    lf__sbuf_printf(b, " is held by ");
    lf__sbuf_quote(b, lease->holder, QUOTE_MAX);
    lf__sbuf_printf(b, " in term %d", (int)lease->transitions);
  }
}

static bool is_subresource(const lf_request *req) {
  return req->subresource != NULL && req->subresource[0] != '\0';
}

static bool is_per_request_stamp(const char *field_manager) {
  return field_manager != NULL &&
         strncmp(field_manager, LF_STAMP_PREFIX, sizeof(LF_STAMP_PREFIX) - 1) == 0;
}

/* An annotation value's length: the stated one, which counts the bytes past
 * an embedded NUL, or strlen when none was stated. */
static size_t ann_len(const char *text, size_t len) {
  size_t n = strlen(text);
  return len > n ? len : n;
}

/* lf_protection_parse on an annotation value, which may hold a NUL. */
static int parse_protection(const judge *j, const char *text, size_t len, const char *object_ns,
                            lf_lease_ref *ref, lf_fencing *fencing, lf_error *err) {
  if (ann_len(text, len) > strlen(text)) {
    return lf__fail(err, LF_EINVAL, "it contains a NUL character (\\u0000)");
  }
  return lf_protection_parse(text, strlen(text), object_ns, j->policy->default_fencing, ref,
                             fencing, err);
}

/* Are two annotation values (NULL: absent) the same, all of their bytes? */
static bool same_ann(const char *a, size_t alen, const char *b, size_t blen) {
  if (a == NULL || b == NULL) {
    return a == b;
  }
  alen = ann_len(a, alen);
  return alen == ann_len(b, blen) && memcmp(a, b, alen) == 0;
}

/* Copies the namespace of a service account's username into `ns`; false
 * for any other username. */
static bool service_account_ns(const char *username, char *ns, size_t size) {
  const size_t plen = sizeof(LF_SERVICE_ACCOUNT_PREFIX) - 1;
  const char *colon;
  if (username == NULL || strncmp(username, LF_SERVICE_ACCOUNT_PREFIX, plen) != 0) {
    return false;
  }
  colon = strchr(username + plen, ':');
  if (colon == NULL || colon == username + plen || (size_t)(colon - username - plen) >= size) {
    return false;
  }
  memcpy(ns, username + plen, (size_t)(colon - username - plen));
  ns[colon - username - plen] = '\0';
  return true;
}

/* Is `holder` the identity of a process on host `host`? client-go and
 * controller-runtime use "<hostname>_<uuid>"; a pod's hostname is its name,
 * a hostNetwork pod's its node's. */
static bool holder_on_host(const char *holder, const char *host) {
  size_t n = strlen(host);
  return strncmp(holder, host, n) == 0 && (holder[n] == '\0' || holder[n] == '_');
}

/* A UUID in its text form, 8-4-4-4-12 hex digits: what client-go's
 * example and many controllers use as a leader-election identity. No
 * Kubernetes controller names a pod so. */
static bool is_uuid(const char *s, size_t len) {
  if (len != 36) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = s[i] != '\0' && strchr("0123456789abcdefABCDEF", s[i]) != NULL;
    if (dash ? s[i] != '-' : !hex) {
      return false;
    }
  }
  return true;
}

/* Could `holder` name a pod or a node (section 7a)? Its host part, before
 * the first '_', must be a DNS-1123 subdomain, as pod and node names are,
 * and not a bare UUID. */
static bool holder_bindable(const char *holder) {
  const char *underscore = strchr(holder, '_');
  size_t n = underscore != NULL ? (size_t)(underscore - holder) : strlen(holder);
  return lf__dns_subdomain(holder, n) && !is_uuid(holder, n);
}

static bool is_exempt(const lf_request *req, const lf_policy *policy, const char **by) {
  for (size_t i = 0; i < policy->n_exempt_users; i++) {
    if (req->username != NULL && strcmp(req->username, policy->exempt_users[i]) == 0) {
      *by = NULL;
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

/* The renewal the Lease's expiry counts from, or LF_TIME_NONE. */
static int64_t lease_renewal(const lf_lease *lease) {
  return lease->renew_us != LF_TIME_NONE ? lease->renew_us : lease->acquire_us;
}

/* The conservative expiry of section 6, or LF_TIME_NONE when the Lease
 * cannot be shown to be held at all. */
static int64_t lease_expiry(const lf_lease *lease, const lf_policy *policy) {
  int64_t renew = lease_renewal(lease);
  if (renew == LF_TIME_NONE || lease->duration_s <= 0) {
    return LF_TIME_NONE;
  }
  return renew + (int64_t)lease->duration_s * US_PER_S - policy->skew_us;
}

/* Someone leads: the Lease has a holder and has not expired by section 6. */
static bool somebody_leads(const judge *j) {
  int64_t expiry;
  if (j->lease == NULL || j->lease->holder[0] == '\0') {
    return false;
  }
  expiry = lease_expiry(j->lease, j->policy);
  return expiry != LF_TIME_NONE && j->now_us < expiry;
}

/* Parses a stamp stored on an object: the full form only. */
static int parse_stored(const char *text, size_t len, lf_stamp *out, lf_error *err) {
  int rc;
  if (ann_len(text, len) > strlen(text)) {
    return lf__fail(err, LF_EINVAL, "it contains a NUL character (\\u0000)");
  }
  rc = lf_stamp_parse(text, ann_len(text, len), out, err);
  if (rc == LF_OK && out->holder[0] == '\0') {
    rc = lf__fail(err, LF_EINVAL, "it names no holder, which no stamp may omit");
  } else if (rc == LF_OK && out->holder_hashed) {
    rc = lf__fail(err, LF_EINVAL,
                  "it names a holder hash, which only the per-request stamp in fieldManager "
                  "may carry");
  }
  return rc;
}

static void deny_malformed_stamp(judge *j, const char *carrier, const char *text, const char *why) {
  lf__sbuf b;
  begin(&b, j, false, LF_R_MALFORMED_STAMP);
  lf__sbuf_printf(&b, "the stamp %s, ", carrier);
  lf__sbuf_quote(&b, text, 80);
  lf__sbuf_printf(&b,
                  ", is malformed: %s. A stamp reads " LF_STAMP_PREFIX
                  "<term>:<lease-uid>:<holder>, the holder's leader-election identity.",
                  why);
}

/* ------------------------------------------------------------------------ */
/* The first step: rules that need no Lease                                  */

static int r_connect(judge *j) {
  lf__sbuf b;
  if (j->req->op != LF_OP_CONNECT) {
    return NEXT;
  }
  begin(&b, j, true, LF_R_NOT_PROTECTED);
  lf__sbuf_printf(&b, "CONNECT is never fenced.");
  return DECIDED;
}

/* Rule 2: from userInfo alone, before anything in the objects is parsed, so
 * that nothing an object holds can block Kubernetes' own controllers or the
 * break glass. */
static int r_exempt(judge *j) {
  const char *group = NULL;
  lf__sbuf b;
  if (!is_exempt(j->req, j->policy, &group)) {
    return NEXT;
  }
  j->out->writer = LF_WRITER_EXEMPT;
  begin(&b, j, true, LF_R_EXEMPT);
  lf__sbuf_printf(&b, "user ");
  lf__sbuf_quote(&b, j->req->username != NULL ? j->req->username : "", QUOTE_MAX);
  if (group == NULL) {
    lf__sbuf_printf(&b, " is exempt from fencing by name; ");
  } else {
    lf__sbuf_printf(&b, " is exempt from fencing (group ");
    lf__sbuf_quote(&b, group, QUOTE_MAX);
    lf__sbuf_printf(&b, "); ");
  }
  lf__sbuf_printf(&b, "the object's fencing annotations were not checked.");
  return DECIDED;
}

/* Rule 3: which Lease guards the write, and what the write does to the
 * fencing annotations. */
static int r_protection(judge *j) {
  const lf_request *req = j->req;
  const lf_object_meta *obj = &req->object;
  const lf_object_meta *old = &req->old_object;
  lf_lease_ref new_ref, old_ref;
  lf_error err;
  lf__sbuf b;
  bool has_new = false, has_old = false;
  /* A Scale carries none of its parent's annotations and cannot change
   * them; its protection comes from the parent (section 4.2). */
  bool carries_annotations = obj->present && strcmp(req->kind != NULL ? req->kind : "", "Scale");

  lf_fencing new_fencing = LF_FENCING_STAMP, old_fencing = LF_FENCING_STAMP;

  if (req->op != LF_OP_DELETE && obj->lease_annotation != NULL) {
    if (parse_protection(j, obj->lease_annotation, obj->lease_annotation_len, meta_ns(req, obj),
                         &new_ref, &new_fencing, &err) != LF_OK) {
      begin(&b, j, false, LF_R_MALFORMED_PROTECTION);
      lf__sbuf_printf(&b,
                      "the object's " LF_ANNOTATION_LEASE
                      " annotation is malformed: %s. Correct it (kubectl annotate --overwrite "
                      "... " LF_ANNOTATION_LEASE "=[identity:]<namespace>/<lease>) or remove it.",
                      err.text);
      return DECIDED;
    }
    has_new = true;
  }
  if (old->lease_annotation != NULL) {
    has_old = parse_protection(j, old->lease_annotation, old->lease_annotation_len,
                               meta_ns(req, old), &old_ref, &old_fencing, &err) == LF_OK;
    j->old_malformed = !has_old;
  }
  if (!has_old && !has_new) {
    begin(&b, j, true, LF_R_NOT_PROTECTED);
    lf__sbuf_printf(&b, j->old_malformed ? "the object's stored " LF_ANNOTATION_LEASE
                                           " annotation is malformed and guards nothing."
                                         : "the object is not protected.");
    return DECIDED;
  }
  j->ref = has_old ? old_ref : new_ref;
  j->fencing = has_old ? old_fencing : new_fencing;
  j->out->protected_ = true;
  j->out->lease = j->ref;
  j->out->fencing = j->fencing;
  if (req->op == LF_OP_UPDATE && carries_annotations) {
    j->protection_changed = has_old && !same_ann(obj->lease_annotation, obj->lease_annotation_len,
                                                 old->lease_annotation, old->lease_annotation_len);
    j->stamp_changed = !same_ann(obj->stamp_annotation, obj->stamp_annotation_len,
                                 old->stamp_annotation, old->stamp_annotation_len);
  } else if (req->op == LF_OP_CREATE && carries_annotations) {
    j->stamp_changed = obj->stamp_annotation != NULL;
  }
  if (old->stamp_annotation != NULL) {
    j->has_stored =
        parse_stored(old->stamp_annotation, old->stamp_annotation_len, &j->stored, &err) == LF_OK;
  }
  return NEXT;
}

/* Rule 4: the writer's class (section 5.1). Never decides. */
static int r_class(judge *j) {
  char ns[LF_NAMESPACE_MAX + 1];
  if (j->policy->deny_unstamped) {
    j->why_controller = "this webhook refuses writes without a per-request stamp from anyone "
                        "not exempt (--unstamped-writes=deny)";
  } else if (is_per_request_stamp(j->req->field_manager)) {
    j->why_controller = "the write presents a per-request stamp";
  } else if (service_account_ns(j->req->username, ns, sizeof(ns)) && strcmp(ns, j->ref.ns) == 0) {
    j->why_controller = "the requester is a service account of the Lease's namespace, where the "
                        "guarded controller runs";
  }
  j->out->writer = j->why_controller != NULL ? LF_WRITER_CONTROLLER : LF_WRITER_OTHER;
  /* Identity fencing judges the controller's writes that present no
   * per-request stamp by who sends them; a DELETE has no per-request
   * carrier, and the stamp stored on the object says nothing about the
   * deleter, so it is judged by identity too (section 7a). */
  j->by_identity = j->why_controller != NULL && j->fencing == LF_FENCING_IDENTITY &&
                   (j->req->op == LF_OP_DELETE || !is_per_request_stamp(j->req->field_manager));
  j->out->by_identity = j->by_identity;
  /* The stamp the controller's writers present (section 5.2). */
  if (j->by_identity) {
    j->carrier = "by identity";
    j->presented_text = NULL;
  } else if (j->req->op == LF_OP_DELETE) {
    j->carrier = "stored on the object";
    j->presented_text = j->req->old_object.stamp_annotation;
  } else {
    j->carrier = "in fieldManager";
    j->presented_text = is_per_request_stamp(j->req->field_manager) ? j->req->field_manager : NULL;
  }
  return NEXT;
}

static bool is_other(const judge *j) {
  return j->out->writer == LF_WRITER_OTHER;
}
static bool is_controller(const judge *j) {
  return j->out->writer == LF_WRITER_CONTROLLER;
}
/* The controller's writers that present a stamp: everyone of them but
 * those judged by identity. */
static bool is_stamped(const judge *j) {
  return is_controller(j) && !j->by_identity;
}

static void admit_other(judge *j, const char *what) {
  lf__sbuf b;
  begin(&b, j, true, LF_R_OTHER_WRITER);
  lf__sbuf_printf(&b, "a writer other than the controller guarded by ");
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b, " (no per-request stamp, not a service account of its namespace) %s.", what);
}

/* Rule 5: others that leave the fencing state alone. */
static int r_other_keeps_state(judge *j) {
  if (!is_other(j)) {
    return NEXT;
  }
  if (j->req->op == LF_OP_DELETE) {
    admit_other(j, "deletes the object; deleting forges no fencing state");
    return DECIDED;
  }
  if (!j->protection_changed &&
      (!j->stamp_changed || (!j->subresource && j->req->object.stamp_annotation == NULL))) {
    admit_other(j, j->stamp_changed ? "removes the stored stamp and keeps the protection"
                                    : "keeps the protection and the stored stamp");
    return DECIDED;
  }
  return NEXT;
}

/* Begins a ProtectionChange denial; the caller says why and what to do. */
static void deny_protection_change(lf__sbuf *b, judge *j) {
  begin(b, j, false, LF_R_PROTECTION_CHANGE);
  lf__sbuf_printf(b, "the write would %s the " LF_ANNOTATION_LEASE " annotation (",
                  j->req->object.lease_annotation == NULL ? "remove" : "change");
  lease_name(b, &j->ref);
  lf__sbuf_printf(b, "), ");
}

/* Begins a StampChange denial; the caller says why and what to do. */
static void deny_stamp_change(lf__sbuf *b, judge *j) {
  begin(b, j, false, LF_R_STAMP_CHANGE);
  lf__sbuf_printf(b, "the write would %s the " LF_ANNOTATION_STAMP " annotation",
                  j->req->object.stamp_annotation == NULL ? "remove" : "change");
  if (j->req->object.stamp_annotation != NULL) {
    lf__sbuf_printf(b, " to ");
    lf__sbuf_quote(b, j->req->object.stamp_annotation, 100);
  }
  lf__sbuf_printf(b, ", ");
}

/* Rules 6 and 10: what a subresource write would persist (section 4.2). */
static int subresource_changes(judge *j) {
  lf_stamp s;
  lf_error err;
  lf__sbuf b;
  if (!j->subresource) {
    return NEXT;
  }
  if (j->protection_changed) {
    deny_protection_change(&b, j);
    lf__sbuf_printf(&b, "and a write to a subresource may not change the protection (the API "
                        "server keeps annotations sent with it for this kind). Write the main "
                        "resource to change the protection.");
    return DECIDED;
  }
  if (!j->stamp_changed) {
    return NEXT;
  }
  if (is_controller(j) && j->req->object.stamp_annotation != NULL &&
      parse_stored(j->req->object.stamp_annotation, j->req->object.stamp_annotation_len, &s,
                   &err) == LF_OK &&
      lf_stamp_same_tenure(&s, &j->presented)) {
    return NEXT; /* Its own tenure, as a main-resource write would store it. */
  }
  deny_stamp_change(&b, j);
  lf__sbuf_printf(&b, "and a write to a subresource may store no stamp but the full form of its "
                      "own per-request stamp. Send the object's annotations unchanged, or write "
                      "the stamp through the main resource.");
  return DECIDED;
}

static int r_other_subresource(judge *j) {
  return is_other(j) ? subresource_changes(j) : NEXT;
}

/* Rule 7: a stamp an other stores must be one, and a change of protection
 * and of the stamp are not mixed (the new stamp would belong to a Lease the
 * decision does not read). */
static int r_other_new_stamp(judge *j) {
  lf_error err;
  lf__sbuf b;
  if (!is_other(j) || !j->stamp_changed || j->req->object.stamp_annotation == NULL) {
    return NEXT;
  }
  if (parse_stored(j->req->object.stamp_annotation, j->req->object.stamp_annotation_len,
                   &j->written, &err) != LF_OK) {
    deny_malformed_stamp(j, "the write stores", j->req->object.stamp_annotation, err.text);
    return DECIDED;
  }
  if (j->protection_changed) {
    deny_stamp_change(&b, j);
    lf__sbuf_printf(&b, "in the same write that changes the protection. Change the protection "
                        "first and keep the stored stamp; the controller stamps the object on its "
                        "next write.");
    return DECIDED;
  }
  return NEXT;
}

/* Appends the hint for a tool that is judged as the controller's because it
 * runs in the Lease's namespace. */
static void tool_hint(lf__sbuf *b, const judge *j) {
  char ns[LF_NAMESPACE_MAX + 1];
  if (!j->policy->deny_unstamped && service_account_ns(j->req->username, ns, sizeof(ns))) {
    lf__sbuf_printf(b,
                    " A tool in namespace %s that is not the controller runs elsewhere or "
                    "gets an exempt group.",
                    ns);
  }
}

/* Rule 8: the controller's writers present a per-request stamp. */
static int r_missing_stamp(judge *j) {
  const lf_request *req = j->req;
  lf__sbuf b;
  if (!is_stamped(j) || j->presented_text != NULL) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_MISSING_STAMP);
  lf__sbuf_printf(&b, "the object is protected by ");
  lease_name(&b, &j->ref);
  if (req->op == LF_OP_DELETE) {
    lf__sbuf_printf(&b, " but carries no stamp from the current term. A fenced delete first "
                        "stamps the object (a merge patch) and then deletes that version with a "
                        "resourceVersion precondition.");
    return DECIDED;
  }
  lf__sbuf_printf(
      &b,
      " and %s, so the write must carry its stamp per request: fieldManager=" LF_STAMP_PREFIX
      "<term>:<lease-uid>:<holder> (Go: fencing.UpdateOptions or "
      "client.FieldOwner(stamp.FieldManager()); C: lf_stamp_query), on every write to "
      "the object and its subresources; the stamp stored on the object is never "
      "enough.",
      j->why_controller);
  tool_hint(&b, j);
  return DECIDED;
}

/* Identity fencing (section 7a): the controller's writes without a
 * per-request stamp come from a pod. Needs no Lease. */
static int r_identity_pod(judge *j) {
  const lf_request *req = j->req;
  lf__sbuf b;
  if (!j->by_identity || req->pod_name != NULL) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_IDENTITY_REQUIRED);
  lf__sbuf_printf(&b, "the object is fenced by identity (");
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b,
                  "), and %s, so a write without a per-request stamp must come from the "
                  "holder's pod; this request from user ",
                  j->why_controller);
  lf__sbuf_quote(&b, req->username != NULL ? req->username : "", QUOTE_MAX);
  lf__sbuf_printf(&b, " carries no pod identity (no " LF_EXTRA_POD_NAME
                      " in its token). Run the controller in a pod with a projected "
                      "service-account token (the default; not a Secret-based token), or stamp "
                      "each write: fieldManager=" LF_STAMP_PREFIX "<term>:<lease-uid>:<holder>.");
  tool_hint(&b, j);
  return DECIDED;
}

/* Identity fencing: a write judged by identity presents no tenure, so it
 * stores none; it may keep the stored stamp (carried forward) or remove it. */
static int r_identity_stamp(judge *j) {
  lf__sbuf b;
  if (!j->by_identity || j->subresource || j->req->op == LF_OP_DELETE || !j->stamp_changed ||
      j->req->object.stamp_annotation == NULL) {
    return NEXT;
  }
  deny_stamp_change(&b, j);
  lf__sbuf_printf(&b, "but the write presents no per-request stamp (the object is fenced by "
                      "identity), so it has no tenure to store. Keep or remove the stored stamp, "
                      "or stamp the write per request: fieldManager=" LF_STAMP_PREFIX
                      "<term>:<lease-uid>:<holder>, the same as the annotation.");
  return DECIDED;
}

/* Rule 9: the presented stamp parses and names its holder. */
static int r_malformed_stamp(judge *j) {
  lf_error err;
  const char *why = NULL;
  if (!is_controller(j) || j->presented_text == NULL) {
    return NEXT;
  }
  if (lf_stamp_parse(j->presented_text, strlen(j->presented_text), &j->presented, &err) != LF_OK) {
    why = err.text;
  } else if (j->presented.holder[0] == '\0') {
    why = "it names no holder; helpers send the holder, or its hash (" LF_STAMP_PREFIX
          "<term>:<lease-uid>:#<hash>) when the full stamp does not fit";
  } else if (j->presented.holder_hashed && j->req->op == LF_OP_DELETE) {
    why = "it names a holder hash, which only the per-request stamp in fieldManager may carry";
  }
  if (why != NULL) {
    deny_malformed_stamp(j, j->carrier, j->presented_text, why);
    return DECIDED;
  }
  j->out->has_presented = true;
  j->out->presented = j->presented;
  return NEXT;
}

static int r_controller_subresource(judge *j) {
  return is_controller(j) ? subresource_changes(j) : NEXT;
}

/* ------------------------------------------------------------------------ */
/* The second step: the Lease as read                                        */

/* Rule 11. */
static int r_lease_read(judge *j) {
  const lf_lease_view *view = j->view;
  lf__sbuf b;
  if (view != NULL && view->status == LF_LEASE_OK && view->lease != NULL) {
    return NEXT;
  }
  if (view == NULL || view->status != LF_LEASE_UNAVAILABLE) {
    if (is_other(j) || j->req->old_object.deleting) {
      begin(&b, j, true, LF_R_UNGUARDED);
      lease_name(&b, &j->ref);
      lf__sbuf_printf(&b, ", which guards the object, does not exist, so nobody leads and nobody "
                          "relies on the object's fencing state.");
      return DECIDED;
    }
    begin(&b, j, false, LF_R_LEASE_NOT_FOUND);
    lf__sbuf_printf(&b, "the object is protected by ");
    lease_name(&b, &j->ref);
    lf__sbuf_printf(&b, ", which does not exist. The writer must win the controller's leader "
                        "election, which creates the Lease, and stamp with its uid. (Objects "
                        "being deleted are admitted while it is absent, and writers other than "
                        "the controller may then remove the " LF_ANNOTATION_LEASE " annotation.)");
    j->out->retry_live = true;
    return DECIDED;
  }
  bool open = j->policy->admit_when_unavailable;
  begin(&b, j, open, open ? LF_R_ADMITTED_UNAVAILABLE : LF_R_LEASE_UNAVAILABLE);
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b, ", which guards the object, could not be read: %s. ",
                  view->cause != NULL ? view->cause : "unknown cause");
  lf__sbuf_printf(&b, open ? "The write was admitted WITHOUT fencing because the webhook is "
                             "configured to admit when the Lease is unavailable."
                           : "Writes that need the Lease are refused until it can be read; "
                             "retry shortly.");
  return DECIDED;
}

/* Rule 12: finalizers of an object being deleted can always be removed
 * while nobody leads, so namespace deletion never wedges. */
static int r_deleting_unled(judge *j) {
  lf__sbuf b;
  if (!is_controller(j) || !j->req->old_object.deleting || somebody_leads(j)) {
    return NEXT;
  }
  begin(&b, j, true, LF_R_UNGUARDED);
  lf__sbuf_printf(&b, "the object is being deleted and nobody leads ");
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b, " (no holder, or expired), so nobody relies on its fencing state.");
  return DECIDED;
}

/* Rule 13. */
static int r_lease_uid(judge *j) {
  const lf_stamp *s = &j->presented;
  lf__sbuf b;
  if (!is_stamped(j) || strcmp(s->lease_uid, j->lease->uid) == 0) {
    return NEXT;
  }
  if (j->has_stored && strcmp(j->stored.lease_uid, s->lease_uid) == 0) {
    begin(&b, j, false, LF_R_LEASE_RECREATED);
    lf__sbuf_printf(&b, "the stamp names Lease uid %s, under which this object was written, but ",
                    s->lease_uid);
    lease_name(&b, &j->ref);
    if (j->disclose) {
      lf__sbuf_printf(&b, " now has uid %s", j->lease->uid);
    } else {
      lf__sbuf_printf(&b, " now has another (not shown to this requester)");
    }
    lf__sbuf_printf(&b, ": it was deleted and re-created after the writer's view. The writer "
                        "must win the election on the new Lease and stamp with its uid.");
  } else {
    begin(&b, j, false, LF_R_OTHER_LEASE);
    lf__sbuf_printf(&b, "the stamp names Lease uid %s, which is not ", s->lease_uid);
    lease_name(&b, &j->ref);
    if (j->disclose) {
      lf__sbuf_printf(&b, " (uid %s)", j->lease->uid);
    } else {
      lf__sbuf_printf(&b, " (its uid is not shown to this requester)");
    }
    lf__sbuf_printf(&b,
                    ", the Lease that guards this object: it is a stamp of another Lease, or of "
                    "one deleted before this object was written. Only the holder of the "
                    "guarding Lease may write; stamp with its uid.");
  }
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 14. */
static int r_released(judge *j) {
  lf__sbuf b;
  if (!is_controller(j) || j->lease->holder[0] != '\0') {
    return NEXT;
  }
  begin(&b, j, false, LF_R_LEASE_RELEASED);
  lease_state(&b, j);
  lf__sbuf_printf(&b, j->disclose ? ": it was released or never acquired" : "; nobody holds it");
  if (j->by_identity) {
    lf__sbuf_printf(&b, ". This writer does not lead; it must acquire the Lease first.");
  } else {
    lf__sbuf_printf(&b,
                    ", and the stamp presents term %d. This writer does not lead; it must "
                    "acquire the Lease and stamp with the new term.",
                    (int)j->presented.term);
  }
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 15. */
static int r_term(judge *j) {
  const lf_stamp *s = &j->presented;
  lf__sbuf b;
  if (!is_stamped(j) || s->term == j->lease->transitions) {
    return NEXT;
  }
  bool stale = s->term < j->lease->transitions;
  begin(&b, j, false, stale ? LF_R_STALE_TERM : LF_R_TERM_AHEAD);
  lf__sbuf_printf(&b, "the write is stamped by ");
  lf__sbuf_quote(&b, s->holder, QUOTE_MAX);
  lf__sbuf_printf(&b, " in term %d, but ", (int)s->term);
  lease_state(&b, j);
  if (stale) {
    lf__sbuf_printf(&b,
                    "%s. This writer is no longer the leader and must stop writing; if it "
                    "should lead, it must win the election again and stamp with the new term.",
                    j->disclose ? "" : ", in a newer term");
  } else {
    lf__sbuf_printf(&b,
                    "%s as the webhook read it, older than the stamp. The webhook's view is "
                    "behind; retry the write.",
                    j->disclose ? "" : ", in an older term");
    j->out->retry_live = true;
  }
  return DECIDED;
}

/* Rule 16: a cached copy can name the previous holder of the same term
 * (coordinated election), so a fresher read may reverse this. */
static int r_holder(judge *j) {
  const lf_stamp *s = &j->presented;
  lf__sbuf b;
  if (!is_stamped(j) || lf_stamp_names_holder(s, j->lease->holder)) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_NOT_HOLDER);
  lf__sbuf_printf(&b, "the stamp names ");
  lf__sbuf_quote(&b, s->holder, QUOTE_MAX);
  lf__sbuf_printf(&b, " as holder in term %d, but ", (int)s->term);
  lease_state(&b, j);
  lf__sbuf_printf(&b, "%s. Only the holder may write; this writer no longer leads.",
                  j->disclose ? "" : ", by another holder");
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 17 (G3, section 6). */
static int r_expiry(judge *j) {
  const lf_lease *lease = j->lease;
  const lf_policy *policy = j->policy;
  char t1[32], t2[32], t3[32];
  lf__sbuf b;
  if (!is_controller(j)) {
    return NEXT;
  }
  int64_t renew = lease_renewal(lease);
  int64_t expiry = lease_expiry(lease, policy);
  if (expiry == LF_TIME_NONE) {
    begin(&b, j, false, LF_R_LEASE_EXPIRED);
    lease_name(&b, &j->ref);
    lf__sbuf_printf(&b,
                    " has no renewTime or no positive leaseDurationSeconds, so it cannot be "
                    "shown to be held now; it is treated as expired. The holder must renew it.");
    j->out->retry_live = true;
    return DECIDED;
  }
  format_time(t1, sizeof(t1), renew);
  format_time(t3, sizeof(t3), j->now_us);
  /* Written as a comparison with renew - skew (both bounded: renewTime by
   * the calendar, skew by the policy) so no subtraction involving the
   * caller's `now` can overflow. */
  if (j->now_us < renew - policy->skew_us) {
    begin(&b, j, false, LF_R_CLOCK_SKEW);
    lease_name(&b, &j->ref);
    if (j->disclose) {
      lf__sbuf_printf(&b,
                      " was renewed at %s, %.3fs ahead of the webhook's clock (%s; tolerance "
                      "%.3fs).",
                      t1, ((double)renew - (double)j->now_us) / US_PER_S, t3,
                      (double)policy->skew_us / US_PER_S);
    } else {
      lf__sbuf_printf(&b,
                      " was renewed ahead of the webhook's clock beyond the tolerance of "
                      "%.3fs.",
                      (double)policy->skew_us / US_PER_S);
    }
    lf__sbuf_printf(&b, " The clocks disagree too much to judge expiry; synchronise the holder's "
                        "and the webhook's clocks (NTP).");
    return DECIDED;
  }
  if (j->now_us >= expiry) {
    begin(&b, j, false, LF_R_LEASE_EXPIRED);
    lease_state(&b, j);
    if (j->disclose) {
      format_time(t2, sizeof(t2), expiry);
      lf__sbuf_printf(&b,
                      ", but it was last renewed at %s for %ds and counts as expired from %s "
                      "(clock-skew tolerance %.3fs); now is %s.",
                      t1, (int)lease->duration_s, t2, (double)policy->skew_us / US_PER_S, t3);
    } else {
      lf__sbuf_printf(&b, ", and it has expired.");
    }
    lf__sbuf_printf(&b, " The holder has stopped renewing and must not write until it renews the "
                        "Lease.");
    j->out->retry_live = true;
    return DECIDED;
  }
  return NEXT;
}

/* Rule 18 (G2 by term): needs no Lease, since terms of one uid only grow;
 * a fresher Lease cannot reverse it. */
static int r_older_term(judge *j) {
  lf__sbuf b;
  if (!is_stamped(j) || j->req->op == LF_OP_DELETE || !j->has_stored ||
      strcmp(j->stored.lease_uid, j->presented.lease_uid) != 0 ||
      j->stored.term <= j->presented.term) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_OLDER_THAN_OBJECT);
  lf__sbuf_printf(&b, "the write is stamped by ");
  lf__sbuf_quote(&b, j->presented.holder, QUOTE_MAX);
  lf__sbuf_printf(&b, " in term %d, but this object was already written by ",
                  (int)j->presented.term);
  lf__sbuf_quote(&b, j->stored.holder, QUOTE_MAX);
  lf__sbuf_printf(&b, " in term %d of ", (int)j->stored.term);
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b, " (the same Lease uid). A write from an older term is never admitted "
                      "again: this writer is no longer the leader and must stop writing.");
  return DECIDED;
}

/* Rule 19 (G2 by tenure): the same term stored by another holder. Which
 * tenure came last shows only a Lease read made after the request arrived. */
static int r_other_tenure(judge *j) {
  lf__sbuf b;
  if (!is_stamped(j) || j->req->op == LF_OP_DELETE || !j->has_stored ||
      strcmp(j->stored.lease_uid, j->presented.lease_uid) != 0 ||
      j->stored.term != j->presented.term || lf_stamp_same_tenure(&j->stored, &j->presented) ||
      (j->view != NULL && j->view->live)) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_OLDER_THAN_OBJECT);
  lf__sbuf_printf(&b, "this object was already written by ");
  lf__sbuf_quote(&b, j->stored.holder, QUOTE_MAX);
  lf__sbuf_printf(&b, " in the same term %d of ", (int)j->stored.term);
  lease_name(&b, &j->ref);
  lf__sbuf_printf(&b, ", and the webhook's copy of the Lease is not a live read, so it cannot tell "
                      "which holder came last. It reads the Lease live and decides again; retry "
                      "the write if this persists.");
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 20: a main-resource write stores the per-request tenure (G2's
 * record), in the full form. */
static int r_stamp_annotation(judge *j) {
  const char *text = j->req->object.stamp_annotation;
  lf_stamp s;
  lf_error err;
  lf__sbuf b;
  if (!is_stamped(j) || j->subresource || j->req->op == LF_OP_DELETE) {
    return NEXT;
  }
  if (text == NULL) {
    begin(&b, j, false, LF_R_MISSING_STAMP);
    lf__sbuf_printf(&b, "the object carries no " LF_ANNOTATION_STAMP
                        " annotation. A write of the controller stores its stamp on the object "
                        "as well as in fieldManager (Go: fencing.StampObject; C: "
                        "lf_stamp_object), so later writes are checked against it.");
    return DECIDED;
  }
  if (parse_stored(text, j->req->object.stamp_annotation_len, &s, &err) != LF_OK) {
    deny_malformed_stamp(j, "in the " LF_ANNOTATION_STAMP " annotation", text, err.text);
    return DECIDED;
  }
  if (!lf_stamp_same_tenure(&s, &j->presented)) {
    begin(&b, j, false, LF_R_CONFLICTING_STAMPS);
    lf__sbuf_printf(&b, "the stamp in the " LF_ANNOTATION_STAMP " annotation (");
    lf__sbuf_quote(&b, s.holder, QUOTE_MAX);
    lf__sbuf_printf(&b, ", term %d) and the per-request stamp in fieldManager ", (int)s.term);
    lf__sbuf_quote(&b, j->presented_text, 80);
    lf__sbuf_printf(&b, " disagree. Put the same stamp on the object and in fieldManager.");
    return DECIDED;
  }
  return NEXT;
}

/* Section 7: the requester is a pod of the Lease's namespace, and the
 * holder is that pod's identity or, for hostNetwork, its node's. */
static bool pod_is_holder(const judge *j) {
  const lf_request *req = j->req;
  char ns[LF_NAMESPACE_MAX + 1];
  return req->pod_name != NULL && service_account_ns(req->username, ns, sizeof(ns)) &&
         strcmp(ns, j->lease->ref.ns) == 0 &&
         (holder_on_host(j->lease->holder, req->pod_name) ||
          (req->node_name != NULL && holder_on_host(j->lease->holder, req->node_name)));
}

/* Begins an IdentityMismatch denial, up to "may write;"; the caller ends
 * it. */
static void deny_identity_mismatch(lf__sbuf *b, judge *j) {
  const lf_request *req = j->req;
  char ns[LF_NAMESPACE_MAX + 1];
  begin(b, j, false, LF_R_IDENTITY_MISMATCH);
  lf__sbuf_printf(b, "the request comes from pod ");
  lf__sbuf_quote(b, req->pod_name != NULL ? req->pod_name : "", QUOTE_MAX);
  if (service_account_ns(req->username, ns, sizeof(ns))) {
    lf__sbuf_printf(b, " of namespace %s", ns);
  } else {
    lf__sbuf_printf(b, " of no service account's namespace");
  }
  if (req->node_name != NULL) {
    lf__sbuf_printf(b, " on node ");
    lf__sbuf_quote(b, req->node_name, QUOTE_MAX);
  }
  lf__sbuf_printf(b, ", but ");
  lease_state(b, j);
  lf__sbuf_printf(b,
                  ". Only the holder's pod (or, for hostNetwork, a pod on the holder's node), "
                  "in the Lease's namespace, may write%s;",
                  j->by_identity ? " without a stamp" : "");
}

/* Rule 21 (G4, section 7). */
static int r_identity(judge *j) {
  const lf_request *req = j->req;
  lf__sbuf b;
  if (!is_stamped(j) || j->policy->identity == LF_IDENTITY_OFF) {
    return NEXT;
  }
  if (req->pod_name == NULL) {
    if (j->policy->identity != LF_IDENTITY_REQUIRED) {
      return NEXT;
    }
    begin(&b, j, false, LF_R_IDENTITY_REQUIRED);
    lf__sbuf_printf(&b, "writes to objects protected by ");
    lease_name(&b, &j->ref);
    lf__sbuf_printf(&b, " must come from the holder's pod with a pod-bound service-account "
                        "token, and this request from user ");
    lf__sbuf_quote(&b, req->username != NULL ? req->username : "", QUOTE_MAX);
    lf__sbuf_printf(&b, " carries no pod identity.");
    return DECIDED;
  }
  if (pod_is_holder(j)) {
    return NEXT;
  }
  deny_identity_mismatch(&b, j);
  lf__sbuf_printf(&b, " a stale leader that presents another writer's stamp is stopped here.");
  return DECIDED;
}

/* Identity fencing: a holder identity that cannot name a pod or a node
 * (client-go's example takes a bare UUID as -id) binds no requester. */
static int r_holder_bindable(judge *j) {
  lf__sbuf b;
  if (!j->by_identity || holder_bindable(j->lease->holder)) {
    return NEXT;
  }
  begin(&b, j, false, LF_R_UNBOUND_HOLDER);
  lf__sbuf_printf(&b, "the object is fenced by identity, but ");
  lease_state(&b, j);
  lf__sbuf_printf(&b, ", and that holder identity names no pod or node: identity fencing needs "
                      "the holder to be <pod>, <pod>_<suffix>, <node> or <node>_<suffix> (not a "
                      "bare UUID). Give the controller its pod's name as its leader-election "
                      "identity (controller-runtime and kube-controller-manager do by default; "
                      "otherwise the downward API's metadata.name), or stamp its writes per "
                      "request, or protect the object with \"stamp:\".");
  j->out->retry_live = true;
  return DECIDED;
}

/* Identity fencing: the requester's pod (or node) is the holder. A fresher
 * read of the Lease may show this pod has just taken it over. */
static int r_holder_pod(judge *j) {
  lf__sbuf b;
  if (!j->by_identity || pod_is_holder(j)) {
    return NEXT;
  }
  deny_identity_mismatch(&b, j);
  lf__sbuf_printf(&b, " this pod does not lead and must stop writing.");
  tool_hint(&b, j);
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 22: others may remove or change the protection only while nobody
 * leads; a fresher read may show the Lease released. */
static int r_other_protection(judge *j) {
  char t[32];
  lf__sbuf b;
  if (!is_other(j) || !j->protection_changed) {
    return NEXT;
  }
  if (!somebody_leads(j)) {
    begin(&b, j, true, LF_R_UNGUARDED);
    lf__sbuf_printf(&b, "nobody leads ");
    lease_name(&b, &j->ref);
    lf__sbuf_printf(&b, " (no holder, or expired), so the protection may be %s.",
                    j->req->object.lease_annotation == NULL ? "removed" : "changed");
    return DECIDED;
  }
  deny_protection_change(&b, j);
  lf__sbuf_printf(&b, "while ");
  lease_state(&b, j);
  lf__sbuf_printf(&b, " and a leader relies on it. Stop the controller that leads first (its Lease "
                      "is released on shutdown, or expires");
  if (j->disclose) {
    format_time(t, sizeof(t), lease_expiry(j->lease, j->policy));
    lf__sbuf_printf(&b, " at %s", t);
  }
  lf__sbuf_printf(&b, " unless renewed), then retry; the controller itself may change it with its "
                      "current stamp.");
  j->out->retry_live = true;
  return DECIDED;
}

/* Rule 23: no stamp ahead of the Lease, which would block its leader. */
static int r_other_stamp_ahead(judge *j) {
  lf__sbuf b;
  if (!is_other(j) || !j->stamp_changed || j->req->object.stamp_annotation == NULL ||
      strcmp(j->written.lease_uid, j->lease->uid) != 0 ||
      j->written.term <= j->lease->transitions) {
    return NEXT;
  }
  deny_stamp_change(&b, j);
  lf__sbuf_printf(&b, "a term ahead of the Lease's");
  if (j->disclose) {
    lf__sbuf_printf(&b, " (%d)", (int)j->lease->transitions);
  }
  lf__sbuf_printf(&b, ": it would refuse every later write of the leader (OlderThanObject). Keep "
                      "the stored stamp, or store one no newer than the Lease.");
  j->out->retry_live = true;
  return DECIDED;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

enum {
  FIRST = 1u << 0,    /* Runs in the first step, without the Lease. */
  NO_LEASE = 1u << 1, /* Second step, but needs no Lease: runs first when it is unreadable. */
  SETUP = 1u << 2,    /* Derives what later rules use; never switched off. */
};

typedef struct rule {
  const char *name;
  unsigned flags;
  int (*fn)(judge *j);
} rule;

static const rule rules[] = {
    {"connect", FIRST, r_connect},
    {"exempt", FIRST, r_exempt},
    {"protection", FIRST | SETUP, r_protection},
    {"class", FIRST | SETUP, r_class},
    {"other-keeps-state", FIRST, r_other_keeps_state},
    {"other-subresource", FIRST, r_other_subresource},
    {"other-new-stamp", FIRST, r_other_new_stamp},
    {"missing-stamp", FIRST, r_missing_stamp},
    {"malformed-stamp", FIRST, r_malformed_stamp},
    {"controller-subresource", FIRST, r_controller_subresource},
    {"identity-pod", FIRST, r_identity_pod},
    {"identity-stamp", FIRST, r_identity_stamp},
    {"lease-read", SETUP, r_lease_read},
    {"deleting-unled", 0, r_deleting_unled},
    {"lease-uid", 0, r_lease_uid},
    {"released", 0, r_released},
    {"holder-bindable", 0, r_holder_bindable},
    {"holder-pod", 0, r_holder_pod},
    {"term", 0, r_term},
    {"holder", 0, r_holder},
    {"expiry", 0, r_expiry},
    {"older-term", NO_LEASE, r_older_term},
    {"other-tenure", 0, r_other_tenure},
    {"stamp-annotation", NO_LEASE, r_stamp_annotation},
    {"identity", 0, r_identity},
    {"other-protection", 0, r_other_protection},
    {"other-stamp-ahead", 0, r_other_stamp_ahead},
};
#define N_RULES (sizeof(rules) / sizeof(rules[0]))

const char *lf__decide_disabled = NULL;

size_t lf__decide_rule_names(const char **names, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < N_RULES && n < max; i++) {
    if ((rules[i].flags & SETUP) == 0) {
      names[n++] = rules[i].name;
    }
  }
  return n;
}

/* Runs the rules whose flags match `want` (all of them when 0 is wanted of
 * none), in order; true when one decided. */
static bool run(judge *j, unsigned mask, unsigned want) {
  for (size_t i = 0; i < N_RULES; i++) {
    if ((rules[i].flags & mask) != want) {
      continue;
    }
    if (lf__decide_disabled != NULL && (rules[i].flags & SETUP) == 0 &&
        strcmp(lf__decide_disabled, rules[i].name) == 0) {
      continue;
    }
    if (rules[i].fn(j) != NEXT) {
      return true;
    }
  }
  return false;
}

static void judge_init(judge *j, const lf_request *req, const lf_policy *policy, lf_decision *out) {
  memset(j, 0, sizeof(*j));
  memset(out, 0, sizeof(*out));
  j->req = req;
  j->policy = policy;
  j->out = out;
  j->subresource = is_subresource(req);
}

int lf_decide_needs_lease(const lf_request *req, const lf_policy *policy, lf_lease_ref *ref,
                          lf_decision *out) {
  judge j;
  lf_decision scratch;
  judge_init(&j, req, policy, &scratch);
  if (run(&j, FIRST, FIRST)) {
    *out = scratch;
    return 0;
  }
  *ref = j.ref;
  return 1;
}

/* The final admission of a write that passed every rule. */
static void admit(judge *j) {
  lf__sbuf b;
  if (is_other(j)) {
    admit_other(j, j->req->object.stamp_annotation != NULL
                       ? "stores a stamp no newer than the Lease"
                       : "changes no fencing state a leader relies on");
    return;
  }
  begin(&b, j, true, LF_R_CURRENT);
  if (j->by_identity) {
    lf__sbuf_printf(&b, "fenced by identity, the request comes from the holder's %s: ",
                    j->req->pod_name != NULL && holder_on_host(j->lease->holder, j->req->pod_name)
                        ? "pod"
                        : "node");
    lease_state(&b, j);
    lf__sbuf_printf(&b, ".");
    return;
  }
  lf__sbuf_printf(&b, "the stamp is current: ");
  lease_state(&b, j);
  lf__sbuf_printf(&b, ".");
}

void lf_decide(const lf_request *req, const lf_lease_view *view, int64_t now_us,
               const lf_policy *policy, lf_decision *out) {
  judge j;
  judge_init(&j, req, policy, out);
  if (run(&j, FIRST, FIRST)) {
    return;
  }
  j.view = view;
  j.now_us = now_us;
  if (view != NULL && view->status == LF_LEASE_OK && view->lease != NULL) {
    j.lease = view->lease;
    j.disclose =
        view->disclose == LF_DISCLOSE_ALLOW || (view->disclose == LF_DISCLOSE_DEFAULT &&
                                                req->ns != NULL && strcmp(req->ns, j.ref.ns) == 0);
  } else if (run(&j, FIRST | NO_LEASE, NO_LEASE)) {
    /* A rule that needs no Lease is never waived for the lack of one. */
    return;
  }
  if (!run(&j, FIRST, 0)) {
    admit(&j);
  }
  out->lease_disclosed = j.lease != NULL && j.disclose;
}
