/*
 * leasefence/fencing.h: the fencing library's whole public interface.
 *
 * The library is pure: it parses stamps, Leases and AdmissionReviews, and it
 * decides whether a write to a protected object is admitted. It does no I/O
 * and never reads the clock; the caller passes the current time in. The
 * protocol it implements is written down in docs/protocol.md.
 *
 * Conventions for every function here:
 *  - Functions returning int return 0 (LF_OK) on success and a negative LF_E*
 *    code on failure; when `err` is not NULL it then holds a sentence that
 *    says what was wrong. Functions returning a pointer return NULL on failure.
 *  - Input strings are borrowed for the duration of the call only, unless a
 *    comment says otherwise.
 *  - Every size that comes from outside has a bound, named LF_*_MAX below.
 */
#ifndef LEASEFENCE_FENCING_H
#define LEASEFENCE_FENCING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LF_EXPORT __attribute__((visibility("default")))
#else
#define LF_EXPORT
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

enum {
  LF_OK = 0,
  LF_EINVAL = -1,    /* Malformed or wrongly typed input. */
  LF_ETOOBIG = -2,   /* Input over one of the documented bounds. */
  LF_ENOMEM = -3,    /* Out of memory. */
  LF_ENOTFOUND = -4, /* The thing asked for does not exist. */
  LF_EIO = -5,       /* I/O or transport failure (Kubernetes client). */
  LF_ETIMEDOUT = -6, /* A deadline passed (Kubernetes client). */
  LF_EDENIED = -7,   /* Authentication or authorization refused. */
};

#define LF_ERROR_TEXT_MAX 512

/* Human-readable detail of a failure. Owned by the caller, usually on the
 * stack; functions write into it only when they fail. */
typedef struct lf_error {
  int code;
  char text[LF_ERROR_TEXT_MAX];
} lf_error;

/* ------------------------------------------------------------------------ */
/* Names and bounds of the protocol (docs/protocol.md)                       */

/* Marks an object as protected and names its guarding Lease:
 * "<name>" (the object's own namespace) or "<namespace>/<name>", optionally
 * after "stamp:" or "identity:", how the guarded controller's writes are
 * fenced (lf_fencing; docs/protocol.md, sections 2 and 7a). */
#define LF_ANNOTATION_LEASE "leasefence.io/lease"
/* The stamp of the write, on the object itself. */
#define LF_ANNOTATION_STAMP "leasefence.io/stamp"
/* Every stamp starts with this version marker. */
#define LF_STAMP_PREFIX "lf1:"
/* userInfo.extra keys the API server fills for pod-bound service-account tokens. */
#define LF_EXTRA_POD_NAME "authentication.kubernetes.io/pod-name"
#define LF_EXTRA_NODE_NAME "authentication.kubernetes.io/node-name"
/* Usernames of service accounts: "system:serviceaccount:<namespace>:<name>". */
#define LF_SERVICE_ACCOUNT_PREFIX "system:serviceaccount:"

#define LF_NAMESPACE_MAX 63      /* A DNS-1123 label. */
#define LF_NAME_MAX 253          /* A DNS-1123 subdomain. */
#define LF_UID_MAX 64            /* Kubernetes uids are 36-byte UUIDs. */
#define LF_HOLDER_MAX 256        /* Holder identities; pod name + "_" + uuid fits. */
#define LF_STAMP_MAX 340         /* "lf1:" + term + ":" + uid + ":" + holder. */
#define LF_FIELD_MANAGER_MAX 128 /* The API server's own limit on fieldManager. */
#define LF_HOLDER_HASH_LEN 16    /* Hex digits of a holder hash. */
#define LF_RESOURCE_VERSION_MAX 64
#define LF_ANNOTATION_MAX 1024               /* Bound on our own annotations' values. */
#define LF_GROUPS_MAX 256                    /* Groups of one requester we look at. */
#define LF_MESSAGE_MAX 1024                  /* A decision's message, NUL included. */
#define LF_LEASE_JSON_MAX (1024 * 1024)      /* One Lease as JSON. */
#define LF_REVIEW_JSON_MAX (7 * 1024 * 1024) /* One AdmissionReview (as controller-runtime). */

/* ------------------------------------------------------------------------ */
/* Time: microseconds since the Unix epoch, UTC                              */

#define LF_TIME_NONE INT64_MIN

/* Parses an RFC 3339 timestamp ("2024-05-01T10:00:00Z", with an optional
 * fraction of up to 9 digits and a "Z" or "+hh:mm" offset) into `*out_us`. */
LF_EXPORT int lf_time_parse(const char *text, size_t len, int64_t *out_us, lf_error *err);

/* Writes `us` as a Kubernetes MicroTime ("2024-05-01T10:00:00.000000Z") into
 * `buf`, which must hold at least 28 bytes. Returns LF_EINVAL for LF_TIME_NONE
 * or a year outside 0001..9999. */
LF_EXPORT int lf_time_format(int64_t us, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Stamps                                                                    */

/* What a writer asserts: "I write as `holder`, holding the Lease whose uid is
 * `lease_uid`, in the term `term` (its leaseTransitions)". */
typedef struct lf_stamp {
  int32_t term;
  char lease_uid[LF_UID_MAX + 1];
  /* The holder; in the short fieldManager form "#" and the holder's hash
   * (holder_hashed then true); "" in the holder-less form of earlier
   * helpers, which the decision refuses. */
  char holder[LF_HOLDER_MAX + 1];
  bool holder_hashed;
} lf_stamp;

/* Parses "lf1:<term>:<lease-uid>[:<holder>]" of `len` bytes. A stamp without a
 * holder parses (holder ""), and a holder of "#" and 16 lowercase hex digits
 * is read as a holder hash; callers decide where those forms are allowed. */
LF_EXPORT int lf_stamp_parse(const char *text, size_t len, lf_stamp *out, lf_error *err);

/* Writes the holder hash of `holder` (64-bit FNV-1a of its bytes) as 16
 * lowercase hex digits and a NUL into `out`. */
LF_EXPORT void lf_holder_hash(const char *holder, char out[LF_HOLDER_HASH_LEN + 1]);

/* True when `stamp` names `holder`: the same holder, or the holder's hash in
 * the short form. */
LF_EXPORT bool lf_stamp_names_holder(const lf_stamp *stamp, const char *holder);

/* True when `a` and `b` name the same tenure: Lease uid, term and holder (a
 * holder hash standing for its holder). */
LF_EXPORT bool lf_stamp_same_tenure(const lf_stamp *a, const lf_stamp *b);

/* Writes the full stamp, NUL-terminated, into `buf` of `size` bytes
 * (LF_STAMP_MAX + 1 always suffices). LF_EINVAL if the stamp is not valid
 * (negative term, bad uid, empty or unprintable holder). */
LF_EXPORT int lf_stamp_format(const lf_stamp *stamp, char *buf, size_t size, lf_error *err);

/* Writes the stamp as a fieldManager value, the per-request stamp (at most
 * 128 characters), into `buf` (LF_FIELD_MANAGER_MAX + 1 bytes suffice): the
 * full form when it is at most 128 bytes of printable ASCII, else the short
 * form "lf1:<term>:<lease-uid>:#<holder hash>". LF_EINVAL as
 * lf_stamp_format. */
LF_EXPORT int lf_stamp_format_field_manager(const lf_stamp *stamp, char *buf, size_t size,
                                            lf_error *err);

/* ------------------------------------------------------------------------ */
/* Leases                                                                    */

typedef struct lf_lease_ref {
  char ns[LF_NAMESPACE_MAX + 1];
  char name[LF_NAME_MAX + 1];
} lf_lease_ref;

/* Parses a protection annotation value of `len` bytes. `object_ns` is the
 * protected object's namespace ("" or NULL for a cluster-scoped object, which
 * must then name the Lease's namespace). */
LF_EXPORT int lf_lease_ref_parse(const char *text, size_t len, const char *object_ns,
                                 lf_lease_ref *out, lf_error *err);

/* How the guarded controller's writes to a protected object are fenced
 * (docs/protocol.md, section 7a). */
typedef enum lf_fencing {
  /* Every write presents a per-request stamp (G1-G4). */
  LF_FENCING_STAMP = 0,
  /* A write without a per-request stamp is admitted when the requester's pod
   * (or, for hostNetwork holders, its node) is the Lease's holder and the
   * Lease has not expired; a per-request stamp, when sent, is judged as in
   * LF_FENCING_STAMP. */
  LF_FENCING_IDENTITY,
} lf_fencing;

/* "stamp" or "identity". Static storage. */
LF_EXPORT const char *lf_fencing_name(lf_fencing fencing);

/* Parses a protection annotation value of `len` bytes,
 * "[stamp:|identity:]<lease>", where <lease> is as for lf_lease_ref_parse.
 * `*fencing` is the mode it names, or `default_fencing` when it names none.
 * Outputs are written only on success. */
LF_EXPORT int lf_protection_parse(const char *text, size_t len, const char *object_ns,
                                  lf_fencing default_fencing, lf_lease_ref *ref,
                                  lf_fencing *fencing, lf_error *err);

/* The parts of a coordination.k8s.io/v1 Lease that fencing uses. */
typedef struct lf_lease {
  lf_lease_ref ref;
  char uid[LF_UID_MAX + 1];
  char resource_version[LF_RESOURCE_VERSION_MAX + 1];
  char holder[LF_HOLDER_MAX + 1]; /* "" when released or never held. */
  int32_t duration_s;             /* leaseDurationSeconds; 0 when absent. */
  int32_t transitions;            /* leaseTransitions; 0 when absent. */
  int64_t acquire_us;             /* LF_TIME_NONE when absent. */
  int64_t renew_us;               /* LF_TIME_NONE when absent. */
} lf_lease;

/* Reads a Lease object. `lease` is borrowed. */
LF_EXPORT int lf_lease_from_json(const json_t *lease, lf_lease *out, lf_error *err);

/* Parses a Lease from `len` bytes of JSON (at most LF_LEASE_JSON_MAX). */
LF_EXPORT int lf_lease_parse(const char *buf, size_t len, lf_lease *out, lf_error *err);

/* ------------------------------------------------------------------------ */
/* jansson's allocations                                                     */

/* jansson 2.14 does not always report running out of memory: its lexer
 * ignores a failed append to the text it collects, so a string or a number
 * can come back a byte short from a json_loadb() that succeeds (a holder
 * "ctrl-a_1" read as "ctrl-a1"). A program that installs this allocator,
 * json_set_alloc_funcs(lf_json_malloc, lf_json_free), before using jansson
 * gets LF_ENOMEM instead from every parse of the library and the Kubernetes
 * client during which an allocation failed. lf_json_watch_begin() and
 * lf_json_watch_failed() let it guard its own parses the same way: they
 * forget, and tell, whether a jansson allocation failed on this thread. */
LF_EXPORT void *lf_json_malloc(size_t n);
LF_EXPORT void lf_json_free(void *p);
LF_EXPORT void lf_json_watch_begin(void);
LF_EXPORT bool lf_json_watch_failed(void);

/* ------------------------------------------------------------------------ */
/* Admission requests                                                        */

typedef enum lf_operation {
  LF_OP_CREATE = 1,
  LF_OP_UPDATE,
  LF_OP_DELETE,
  LF_OP_CONNECT,
} lf_operation;

/* "CREATE", "UPDATE", "DELETE", "CONNECT", or "unknown". Static storage. */
LF_EXPORT const char *lf_operation_name(lf_operation op);

/* The fencing-relevant metadata of request.object or request.oldObject. */
typedef struct lf_object_meta {
  bool present;
  const char *ns;               /* metadata.namespace, or NULL. */
  const char *lease_annotation; /* NULL when absent; any length, judged by the decision. */
  const char *stamp_annotation; /* NULL when absent; any length, judged by the decision. */
  /* The two values' lengths in bytes; 0 means strlen. Annotation values are
   * any string, "\u0000" included (Go's encoder sends a NUL so); a length
   * past the first NUL marks a value holding one, which the decision judges
   * malformed only where fencing reads it, never for an exempt writer. */
  size_t lease_annotation_len;
  size_t stamp_annotation_len;
  bool deleting; /* metadata.deletionTimestamp is set. */
} lf_object_meta;

/* One admission request, as far as fencing needs it. Every pointer points
 * into the JSON it was read from, which the caller keeps alive for as long as
 * the lf_request is used; nothing here is owned. Strings never contain NUL,
 * but for the annotation values of lf_object_meta, which state their length. */
typedef struct lf_request {
  const char *uid;
  lf_operation op;
  const char *group;       /* request.resource.group ("" for the core group). */
  const char *version;     /* request.resource.version, e.g. "v1". */
  const char *resource;    /* request.resource.resource, e.g. "configmaps". */
  const char *subresource; /* "" for the main resource. */
  const char *kind;        /* request.kind.kind, e.g. "ConfigMap". */
  const char *ns;          /* request.namespace; "" when cluster-scoped. */
  const char *name;        /* request.name; "" for a generateName CREATE. */
  bool dry_run;
  const char *field_manager; /* request.options.fieldManager, or NULL. */
  const char *username;
  const char *groups[LF_GROUPS_MAX];
  size_t n_groups;
  const char *pod_name;  /* userInfo.extra[LF_EXTRA_POD_NAME][0], or NULL. */
  const char *node_name; /* userInfo.extra[LF_EXTRA_NODE_NAME][0], or NULL. */
  lf_object_meta object;
  lf_object_meta old_object;
} lf_request;

/* Reads `review`, an admission.k8s.io/v1 AdmissionReview, into `out`.
 * LF_EINVAL with a precise message for a wrong apiVersion or kind, a missing
 * request or uid, a wrongly typed field, an unknown operation, an annotation
 * of ours that is not a string, a NUL in a string read whole (uid, names,
 * fieldManager, username, our annotations), more than LF_GROUPS_MAX groups,
 * more than one pod or node name, or an object whose metadata.namespace is
 * not request.namespace. A group containing NUL is left out of `groups`. The
 * length of our annotations is left to the decision, so that exempt writers
 * are never refused for what an object holds. `out` borrows from `review`;
 * parse it with JSON_ALLOW_NUL, since other strings may hold NUL. */
LF_EXPORT int lf_request_from_review(const json_t *review, lf_request *out, lf_error *err);

/* ------------------------------------------------------------------------ */
/* The decision                                                              */

typedef enum lf_identity_mode {
  LF_IDENTITY_OFF = 0,      /* Never look at the requester's pod. */
  LF_IDENTITY_WHEN_PRESENT, /* Default: a pod-bound requester must be the holder. */
  LF_IDENTITY_REQUIRED,     /* Fenced writes must come from the holder's pod. */
} lf_identity_mode;

/* How the decision is made; lf_policy_init() sets the safe defaults. The
 * arrays are borrowed and must outlive every lf_decide() call using them. */
typedef struct lf_policy {
  lf_identity_mode identity;
  /* How objects whose protection names no mode are fenced
   * (--default-fencing). */
  lf_fencing default_fencing;
  int64_t skew_us;             /* Clock skew tolerated, default 2 s. */
  bool admit_when_unavailable; /* Fail open when the Lease cannot be read. */
  /* Strict mode: every writer that is not exempt is judged as the guarded
   * controller's, so writes without a per-request stamp are refused. */
  bool deny_unstamped;
  const char *const *exempt_users;
  size_t n_exempt_users;
  const char *const *exempt_groups;
  size_t n_exempt_groups;
} lf_policy;

/* Sets the defaults: identity when present, stamp fencing, 2 s skew, fail closed, not
 * strict, and Kubernetes' own control plane exempt (every controller service
 * account of kube-controller-manager, system:kube-controller-manager,
 * system:kube-scheduler; docs/protocol.md, section 5.1). */
LF_EXPORT void lf_policy_init(lf_policy *policy);

/* Stable reason codes. lf_reason_name() gives the CamelCase name that goes
 * into responses, logs and metrics; names never change once released. */
typedef enum lf_reason {
  LF_R_NOT_PROTECTED = 0,    /* Allowed: no protection annotation. */
  LF_R_CURRENT,              /* Allowed: the stamp is current. */
  LF_R_EXEMPT,               /* Allowed: an exempt requester. */
  LF_R_ADMITTED_UNAVAILABLE, /* Allowed: Lease unreadable, policy fails open. */
  LF_R_MISSING_STAMP,
  LF_R_MALFORMED_STAMP,
  LF_R_CONFLICTING_STAMPS,
  LF_R_MALFORMED_PROTECTION,
  LF_R_LEASE_NOT_FOUND,
  LF_R_LEASE_UNAVAILABLE,
  LF_R_LEASE_RECREATED, /* The stamp's Lease uid is not the Lease's. */
  LF_R_LEASE_RELEASED,  /* The Lease has no holder. */
  LF_R_LEASE_EXPIRED,
  LF_R_CLOCK_SKEW,        /* renewTime is ahead of our clock beyond tolerance. */
  LF_R_NOT_HOLDER,        /* Same term, another holder named. */
  LF_R_STALE_TERM,        /* The stamp's term is older than the Lease's. */
  LF_R_TERM_AHEAD,        /* The stamp's term is newer than the Lease read. */
  LF_R_OLDER_THAN_OBJECT, /* G2: older than the term stored on the object. */
  LF_R_IDENTITY_MISMATCH, /* G4: the requester's pod is not the holder. */
  LF_R_IDENTITY_REQUIRED, /* G4 required but the request has no pod. */
  LF_R_OTHER_WRITER,      /* Allowed: a writer other than the controller's, fencing state kept. */
  LF_R_UNGUARDED,         /* Allowed: nobody leads, so nobody relies on the fencing state. */
  LF_R_OTHER_LEASE,       /* The stamp names another Lease uid (not known to be re-created). */
  LF_R_PROTECTION_CHANGE, /* The protection may not be changed by this write now. */
  LF_R_STAMP_CHANGE,      /* The stored stamp may not be changed so by this write. */
  LF_R_UNBOUND_HOLDER,    /* Identity fencing: the Lease's holder names no pod or node. */
  LF_R_COUNT
} lf_reason;

LF_EXPORT const char *lf_reason_name(lf_reason reason);

typedef enum lf_lease_status {
  LF_LEASE_OK = 0,
  LF_LEASE_NOT_FOUND,
  LF_LEASE_UNAVAILABLE,
} lf_lease_status;

/* May the requester be told the Lease's state (holder, term, uid, times)? */
typedef enum lf_disclosure {
  LF_DISCLOSE_DEFAULT = 0, /* Only when the Lease is in the request's namespace. */
  LF_DISCLOSE_ALLOW,       /* The caller established that the requester may read it. */
  LF_DISCLOSE_DENY,        /* The caller established that it may not. */
} lf_disclosure;

/* The Lease as the caller last read it. */
typedef struct lf_lease_view {
  lf_lease_status status;
  const lf_lease *lease; /* Valid when status is LF_LEASE_OK. */
  const char *cause;     /* Why it could not be read, when UNAVAILABLE. */
  /* The read started after the request arrived (a quorum read, or a live
   * read after retry_live): it shows who leads now, not who led. false is
   * the safe default: a tenure conflict is then denied with retry_live. */
  bool live;
  lf_disclosure disclose;
} lf_lease_view;

/* The writer classes of docs/protocol.md, section 5.1. */
typedef enum lf_writer {
  LF_WRITER_UNKNOWN = 0, /* Decided before the class mattered (CONNECT, not protected). */
  LF_WRITER_EXEMPT,
  LF_WRITER_CONTROLLER, /* The guarded controller's writers: fenced. */
  LF_WRITER_OTHER,      /* People and tools without a per-request stamp. */
} lf_writer;

/* "unknown", "exempt", "controller", "other". Static storage. */
LF_EXPORT const char *lf_writer_name(lf_writer writer);

typedef struct lf_decision {
  bool allowed;
  lf_reason reason;
  /* For a person: what happened, what was expected and presented, what to do. */
  char message[LF_MESSAGE_MAX];
  bool protected_;    /* The write is to a protected object. */
  lf_lease_ref lease; /* The guarding Lease, when protected_. */
  bool has_presented; /* A stamp was presented and parsed. */
  lf_stamp presented;
  /* A fresher read of the Lease could turn this denial into an admission:
   * the stamp or the object is ahead of the Lease read (TermAhead,
   * OlderThanObject), or the Lease looked expired, released, re-created or
   * absent. A source that may answer from a cache reads live and decides
   * again; a quorum read started after the request arrived need not. Never
   * set on an admission. */
  bool retry_live;
  lf_writer writer;   /* The requester's class. */
  lf_fencing fencing; /* How the guarding protection fences, when protected_. */
  /* A write of the controller's writers judged by identity alone (no
   * per-request stamp, identity fencing). */
  bool by_identity;
  /* The message shows the Lease's state, so the caller may show it too (the
   * audit annotations lease-holder and lease-term). */
  bool lease_disclosed;
} lf_decision;

/* First step of a decision: decides at once the writes that need no Lease
 * (rules 1-10 of docs/protocol.md, section 5.2: not protected, exempt,
 * malformed protection, others' writes that keep the fencing state, missing
 * or malformed stamps). Returns 1 when the decision needs the Lease named in
 * `*ref` (then `*out` is untouched), 0 when `*out` holds the final decision. */
LF_EXPORT int lf_decide_needs_lease(const lf_request *req, const lf_policy *policy,
                                    lf_lease_ref *ref, lf_decision *out);

/* The whole decision, pure: `now_us` is the caller's clock. `view` may be NULL
 * when lf_decide_needs_lease() returned 0. Always fills `*out`. */
LF_EXPORT void lf_decide(const lf_request *req, const lf_lease_view *view, int64_t now_us,
                         const lf_policy *policy, lf_decision *out);

/* ------------------------------------------------------------------------ */
/* Helpers for controllers: put the stamp where the protocol wants it       */

/* Sets metadata.annotations["leasefence.io/stamp"] on `object`, creating
 * metadata and annotations as needed. `object` stays the caller's. */
LF_EXPORT int lf_stamp_object(json_t *object, const lf_stamp *stamp, lf_error *err);

/* Returns a new JSON merge patch (RFC 7386) carrying the stamp: `patch` (may
 * be NULL; borrowed, not modified) with the stamp annotation merged in. Also
 * valid as a strategic merge patch and as a server-side apply body's
 * metadata. The caller owns the result (json_decref). */
LF_EXPORT json_t *lf_stamp_merge_patch(const json_t *patch, const lf_stamp *stamp, lf_error *err);

/* Returns a new JSON patch (RFC 6902) array: `ops` (may be NULL; borrowed)
 * followed by an "add" of the stamp annotation. `has_annotations` says whether
 * the object already has metadata.annotations (JSON patch cannot create a
 * parent and a child in one op). The caller owns the result. */
LF_EXPORT json_t *lf_stamp_json_patch(const json_t *ops, bool has_annotations,
                                      const lf_stamp *stamp, lf_error *err);

/* Writes the per-request stamp as a URL query parameter,
 * "fieldManager=<the fieldManager form, percent-encoded>", NUL-terminated,
 * into `buf` (3 * LF_FIELD_MANAGER_MAX + 16 bytes suffice). Append it to the
 * URL of every CREATE, UPDATE, PATCH and apply, of the main resource and of
 * every subresource. */
LF_EXPORT int lf_stamp_query(const lf_stamp *stamp, char *buf, size_t size, lf_error *err);

/* Returns new DeleteOptions with a resourceVersion precondition, for the
 * second step of a fenced delete (docs/protocol.md, "DELETE"): stamp the
 * object, then delete exactly the version stamped. Caller owns the result. */
LF_EXPORT json_t *lf_delete_options(const char *resource_version, lf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LEASEFENCE_FENCING_H */
