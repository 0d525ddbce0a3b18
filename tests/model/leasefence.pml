/*
 * leasefence.pml: the leasefence protocol (docs/protocol.md) as a Promela
 * model for spin. README.md beside this file says what is modelled, what is
 * abstracted and why the abstraction is sound, and how to run it.
 *
 * Parties, each a process that spin may stop between any two of its steps
 * for as long as it likes (that is how "a process paused at any point" is
 * modelled: interleaving semantics without fairness):
 *
 *   Elector(i)    client-go's Lease algorithm (tools/leaderelection,
 *                 tryAcquireOrRenew and release): Get, then a
 *                 compare-and-swap Update on the resourceVersion it read.
 *   Writer(i)     the controller in the same process as Elector(i): it takes
 *                 a stamp from its elector's view and sends writes; its steps
 *                 are the API server's write path for that request.
 *   Coordinator   kube-apiserver's coordinated leader election controller:
 *                 hands an expired or released Lease to another candidate
 *                 without changing leaseTransitions.
 *   Other         a writer outside the guarded controller (a person, a
 *                 GitOps or backup tool): no per-request stamp.
 *   Deleter       deletes the Lease; the next acquirer re-creates it with a
 *                 new uid and leaseTransitions 0.
 *   Clock         time passing, abstracted to one event per Lease version:
 *                 the moment after which nobody may still judge it unexpired.
 *   Watch         (CACHED only) delivers the live Lease into the webhook's
 *                 cache.
 *
 * Switches (spin -D...), each for one run of the model (check.sh):
 *   NE=2|3          electors, each with its writer (default 2)
 *   MAXTERM, MAXUID, MAXTEN, MAXOTHER   the bounds (below)
 *   COORDINATED     the coordinated-election controller runs
 *   ABA             it may hand the Lease back to a holder that already held
 *                   it in the same term (README.md: what the model found)
 *   FAIL_OPEN       the webhook admits when the Lease cannot be read
 *   CACHED          the webhook may decide from a watch cache of Leases
 *   IDENTITY        requests carry pod-bound identities (rule 21)
 *   NO_OTHERS       no writer outside the controller
 *   OTHERS_KEEP_STAMP  writers outside the controller never change the stamp
 *   SKIP_G1, SKIP_NA_READ, SKIP_NA_ORDER, SKIP_G6   leave a property out
 *   G2_IDLE         assert that rules 18-19 never decide
 *   IDENTITY_FENCING  the controller's unstamped writes are admitted from
 *                   the holder's pod (section 7a)
 *   Defences switched off (spin must then find a counterexample):
 *   NO_LEASE_CHECK  the webhook skips the Lease rules (11-17)
 *   NO_G2           the webhook skips rules 18-19 (the stored stamp)
 *   STORED_STAMP    the controller's writer may present the object's stored
 *                   stamp alone: the carried-forward stamp
 *   OTHERS_UNCHECKED  others may change the fencing state (no rules 22-23)
 *
 * Rule numbers are those of docs/protocol.md, section 5.2.
 */

#ifndef NE
#define NE 2 /* electors, each with its writer */
#endif
#ifndef MAXTERM
#define MAXTERM 2 /* leaseTransitions never goes beyond this */
#endif
#ifndef MAXUID
#define MAXUID 2 /* Lease incarnations: one deletion and re-creation */
#endif
#ifndef MAXTEN
#define MAXTEN 4 /* tenures in one run */
#endif

#ifndef MAXOTHER
#define MAXOTHER 0 /* requests from outside the controller in one run;
                        0: no bound */
#endif

#define COORD (NE + 1) /* the coordinator's party number */
#define OTHER (NE + 1) /* the other writer's party number */
#define BIT(p) (1 << (p))

/*
 * Tenures. A tenure is one holder's hold of one Lease uid in one term; the
 * n-th tenure of a run is tenure n (0: none), so tenure numbers follow real
 * time. A stamp is the text of a tenure, lf1:<term>:<uid>:<holder>; the
 * tables give it. Stamps of different tenures differ except when the
 * coordinator hands a Lease back to a holder within one term (ABA).
 */
byte tuid[MAXTEN + 1], tholder[MAXTEN + 1], tterm[MAXTEN + 1];
byte ntens = 0; /* tenures so far */

/* ---- the Lease, as etcd stores it ---- */
bool lexists = true;
byte luid = 1;     /* metadata.uid: incarnation number, 1..MAXUID */
byte lholder = 0;  /* spec.holderIdentity: 0 none, else elector 1..NE */
byte lterm = 0;    /* spec.leaseTransitions */
bool lexp = false; /* the live version's expiry moment has passed */
byte uids = 1;     /* incarnations so far */
byte lten = 0;     /* ghost: the live tenure; 0 when nobody holds it */
#ifdef COORDINATED
byte heldmask = 0; /* ghost: who held the live (uid, term) */
#endif

#ifdef CACHED
/* ---- the webhook's watch cache of the Lease ---- */
bool cexists = true;
byte cuid = 1, cholder = 0, cterm = 0;
bool cexpd = false;
#endif

/* ---- the protected object ---- */
bool oprot = true; /* carries leasefence.io/lease */
byte osten = 0;    /* leasefence.io/stamp: the tenure it names; 0 none */
#if MAXOTHER > 0
byte nother = 0;  /* requests from outside the controller so far */
#endif
byte ofresh = 0;   /* bit w: writer w is in an attempt whose copy is the
                      stored version (its compare-and-swap would succeed) */
byte omax = 0;     /* ghost: the latest tenure of a committed main-resource
                      write of the controller to the protected object */

/* ---- each elector's observed record: the tenure it holds, 0 if none.
   Its writer stamps with it. ---- */
byte vten[NE + 1];

/* Kinds of write. */
mtype = { MAIN, STATUS, NOSTAMP, UNPROTECT, CARRY, ERASE, RESTORE, UNPROT };

/* The tenure named by the stamp the writer sent. */
#ifdef STORED_STAMP
#define SENT s_ten
#else
#define SENT w_ten
#endif

/* A new tenure starts on the live Lease: holder h. */
inline newtenure(h) {
  ntens++;
  lten = ntens;
  lholder = h;
  tuid[ntens] = luid;
  tholder[ntens] = h;
  tterm[ntens] = lterm;
#ifdef COORDINATED
  heldmask = heldmask | BIT(h);
#endif
  lexp = false
}

/* Elector i's observed record is the live one. */
inline observe(i) {
  vten[i] = (lholder == i -> lten : 0)
}

/*
 * client-go tools/leaderelection/leaderelection.go: tryAcquireOrRenew and
 * release. An elector's Update is a compare-and-swap on the resourceVersion
 * of the record it last read or wrote, and it decides on that record; so an
 * Update either fails (the record changed: no effect) or finds the record as
 * it decided on it. Each Update is therefore one atomic step here that
 * decides on the live record; the Get before it is a step of its own too,
 * because it changes what the elector (and so its writer) believes.
 */
proctype Elector(byte i) {
end:
  do
  :: atomic { /* Get */
       lexists -> observe(i)
     }
  :: atomic { /* Get says NotFound, then Create (fails if it exists by then) */
       !lexists && uids < MAXUID && ntens < MAXTEN ->
       uids++;
       lexists = true;
       luid = uids;
       lterm = 0;
#ifdef COORDINATED
       heldmask = 0;
#endif
       newtenure(i);
       observe(i)
     }
  :: atomic { /* renew (fast or slow path): the holder keeps its term */
       lexists && lholder == i ->
       lexp = false;
       observe(i);
     }
  :: atomic { /* take over a record without holder or expired:
                 leaseTransitions + 1 */
       lexists && lholder != i && (lholder == 0 || lexp) &&
       lterm < MAXTERM && ntens < MAXTEN ->
       lterm++;
#ifdef COORDINATED
       heldmask = 0;
#endif
       newtenure(i);
       observe(i)
     }
  :: atomic { /* release (ReleaseOnCancel): no holder, same term */
       lexists && lholder == i ->
       lholder = 0;
       lten = 0;
       observe(i)
     }
  od
}

#ifdef COORDINATED
/*
 * kube-apiserver pkg/controlplane/controller/leaderelection
 * (reconcileElectionStep): a Lease with no holder, or expired, is given to
 * the elected candidate by an Update that keeps leaseTransitions; a missing
 * Lease is created for it. Electors running client-go's coordinated mode
 * (tryCoordinatedRenew) only renew; the Elector above does that and more,
 * so the mix covers both.
 */
proctype Coordinator() {
  byte j;
end:
  do
  :: atomic { /* Get, decide and Update (a compare-and-swap, see Elector) */
       ntens < MAXTEN &&
       ((lexists && (lholder == 0 || lexp)) ||
        (!lexists && uids < MAXUID)) ->
       j = 1;
       do /* the electee: any candidate */
       :: j < NE -> j++
       :: break
       od;
       if
       :: !lexists ->
          uids++;
          lexists = true;
          luid = uids;
          lterm = 0;
          heldmask = 0;
          newtenure(j);
#ifdef ABA
       :: lexists && j != lholder ->
#else
       :: lexists && j != lholder && (heldmask & BIT(j)) == 0 ->
#endif
          newtenure(j);
       :: else -> skip
       fi;
       j = 0
     }
  od
}
#endif

/* Someone deletes the Lease; the next Create gives it a new uid. */
proctype Deleter() {
end:
  do
  :: atomic {
       lexists && uids < MAXUID ->
       lexists = false;
       lholder = 0;
       lten = 0
     }
  od
}

/*
 * Time, as one event per Lease version: lexp records that the moment E(v)
 * of the live version v has passed, the moment before which every webhook
 * replica judges v unexpired and after which alone a candidate may act on
 * v's expiry (README.md, "Time"). A renewal is a new version.
 */
proctype Clock() {
end:
  do
  :: atomic {
       lexists && lholder != 0 && !lexp ->
       lexp = true;
#ifdef CACHED
       cexpd = true /* the cached version is no newer, so expired too */
#else
       skip
#endif
     }
#ifdef CACHED
  :: atomic { !cexpd -> cexpd = true } /* an older cached version expires first */
#endif
  od
}

#ifdef CACHED
/* The watch delivers the live Lease into the cache, some time later. */
proctype Watch() {
end:
  do
  :: atomic {
       cexists = lexists;
       cuid = luid;
       cholder = lholder;
       cterm = lterm;
       cexpd = lexp
     }
  od
}
#endif

/* G2-idle (-DG2_IDLE): rules 18-19 never decide; with strong reads and
   failing closed, rules 13-17 have always decided before them. */
inline g2decided() {
#ifdef G2_IDLE
  printf("property G2-idle violated\n");
  assert(false)
#else
  skip
#endif
}

/*
 * The webhook's decision, docs/protocol.md section 5.2, on the Lease copy
 * it read (k*; klive: a read that started after the request arrived). In:
 * the writer w and its class (w == OTHER: others; else the guarded
 * controller's writers, W), the kind of write, the presented stamp (the
 * tenure s_ten names; has: one is presented at all), this attempt's
 * oldObject (o_prot, o_ten). Out: verdict 1 admit, 2 admitted without the
 * Lease (fail-open), 0 deny; live = 1 when a fresher Lease could reverse
 * the denial (lf_decision.retry_live). Rule numbers are the document's.
 */
inline decide(kexists, kuid, kholder, kterm, kexp, klive) {
  live = 0;
  verdict = 1;
  if
  :: !o_prot -> skip /* rule 3: NotProtected */
  :: o_prot && w == OTHER && (kind == CARRY || kind == ERASE) ->
     skip /* rule 5: touches no fencing state, or only removes the stamp */
  :: o_prot && w == OTHER && !(kind == CARRY || kind == ERASE) ->
     if
     :: !avail ->
#ifdef FAIL_OPEN
        verdict = 2 /* rule 11: AdmittedUnavailable */
#else
        verdict = 0 /* rule 11: LeaseUnavailable */
#endif
     :: avail && !kexists -> skip /* rule 11: nobody can lead: admitted */
#ifndef OTHERS_UNCHECKED
     :: avail && kexists && kind == UNPROT && kholder != 0 && !kexp ->
        verdict = 0; live = 1 /* rule 22: ProtectionChange while led */
     :: avail && kexists && kind == RESTORE && tuid[r_ten] == kuid &&
        tterm[r_ten] > kterm -> verdict = 0; live = 1 /* rule 23: StampChange */
#endif
     :: else -> skip /* Unguarded, OtherWriter */
     fi
  :: o_prot && w != OTHER && !has ->
#ifdef IDENTITY_FENCING
     /* identity fencing (docs/protocol.md section 7a): an unstamped write
        from the holder's pod while the Lease is held and unexpired */
     if
     :: avail && kexists && kholder == w && !kexp -> skip
     :: else -> verdict = 0
     fi
#else
     verdict = 0 /* rule 8: MissingStamp */
#endif
  :: o_prot && w != OTHER && has ->
     if
     :: !avail ->
#ifdef FAIL_OPEN
        verdict = 2 /* rule 11: AdmittedUnavailable, after rule 18 */
#else
        verdict = 0 /* rule 11: LeaseUnavailable */
#endif
#ifndef NO_LEASE_CHECK
     :: avail && !kexists -> verdict = 0; live = 1 /* rule 11: LeaseNotFound */
     :: avail && kexists && kuid != tuid[s_ten] ->
        verdict = 0; live = 1 /* rule 13: LeaseRecreated, OtherLease */
     :: avail && kexists && kuid == tuid[s_ten] && kholder == 0 ->
        verdict = 0; live = 1 /* rule 14: LeaseReleased */
     :: avail && kexists && kuid == tuid[s_ten] && kholder != 0 &&
        kterm < tterm[s_ten] -> verdict = 0; live = 1 /* rule 15: TermAhead */
     :: avail && kexists && kuid == tuid[s_ten] && kholder != 0 &&
        kterm > tterm[s_ten] -> verdict = 0 /* rule 15: StaleTerm */
     :: avail && kexists && kuid == tuid[s_ten] && kholder != 0 &&
        kterm == tterm[s_ten] && kholder != tholder[s_ten] ->
        verdict = 0; live = 1 /* rule 16: NotHolder */
     :: avail && kexists && kuid == tuid[s_ten] && kholder != 0 &&
        kterm == tterm[s_ten] && kholder == tholder[s_ten] && kexp ->
        verdict = 0; live = 1 /* rule 17: LeaseExpired */
#endif
     :: else -> skip
     fi;
#ifndef NO_G2
     if /* rule 18 (G2): never below the term stored on the object; needs
           no Lease, so it runs when failing open too */
     :: verdict != 0 && o_ten != 0 && tuid[o_ten] == tuid[s_ten] &&
        tterm[o_ten] > tterm[s_ten] ->
        verdict = 0; /* OlderThanObject */
        g2decided()
     :: else -> skip
     fi;
     if /* rule 19 (G2): another holder of the same term stored: only on a
           live read (which came after that write) */
     :: verdict == 1 && o_ten != 0 && tuid[o_ten] == tuid[s_ten] &&
        tterm[o_ten] == tterm[s_ten] && tholder[o_ten] != tholder[s_ten] &&
        !klive ->
        verdict = 0; live = 1; /* OlderThanObject */
        g2decided()
     :: else -> skip
     fi;
#endif
#ifdef IDENTITY
     if /* rule 21 (G4): the requester's pod is the holder */
     :: verdict == 1 && kholder != w -> verdict = 0 /* IdentityMismatch */
     :: else -> skip
     fi;
#endif
     skip
  fi
}

/*
 * Properties judged when the webhook admits a write of a protected object
 * on the Lease copy it read (k*):
 *   G1       (the controller's writers) the stamp names the holder, uid and
 *            term of that Lease, and the Lease had not expired;
 *   NA-read  (the controller's writers) the tenure the writer took its
 *            stamp in (w_ten) is the live one at the read: a write whose
 *            tenure ends before its commit can still commit, but only if
 *            the webhook read the Lease before the takeover;
 *   G6       protection is removed only by the live tenure's writer, or by
 *            an other while nobody leads (no Lease, no holder, or expired).
 * Admissions without the Lease (fail-open, verdict 2) waive G1 and NA-read
 * by design; G6 is judged for them too.
 */
inline admitted(kexists, kuid, kholder, kterm, kexp) {
  if
  :: verdict == 1 && o_prot && w != OTHER ->
#ifndef SKIP_G1
     if
     :: has && !(kexists && kuid == tuid[s_ten] && kholder == tholder[s_ten] &&
          kterm == tterm[s_ten] && !kexp) ->
        printf("property G1 violated\n");
        assert(false)
     :: else -> skip
     fi;
#endif
#ifndef SKIP_NA_READ
     if
     :: lten != w_ten ->
        printf("property NA-read violated\n");
        assert(false)
     :: else -> skip
     fi;
#endif
     skip
  :: else -> skip
  fi;
#ifndef SKIP_G6
  if
  :: verdict != 0 && o_prot &&
     ((w != OTHER && kind == UNPROTECT && (verdict != 1 || lten != w_ten)) ||
      (w == OTHER && kind == UNPROT && lten != 0 && !lexp)) ->
     printf("property G6 violated\n");
     assert(false)
  :: else -> skip
  fi
#endif
}

/* The request is over: its variables are cleared, so that states differ
   only in what matters. */
inline forget() {
  verdict = 0;
  kind = 0;
  w_ten = 0;
  s_ten = 0;
  r_ten = 0
}

/*
 * One writer: Writer(i), i in 1..NE, is the controller in elector i's
 * process; Writer(OTHER) is a person or tool outside the controller. Each
 * request is an update of the protected object through the API server's
 * write path, GuaranteedUpdate (k8s.io/apiserver
 * pkg/storage/etcd3/store.go): each attempt takes the stored object, runs
 * admission on it (the webhook reads the Lease and decides against this
 * attempt's oldObject) and commits with a compare-and-swap on the object's
 * resourceVersion; if the object changed meanwhile, the attempt is retried
 * from the start, admission included.
 *
 * The attempt's read of the object and the webhook's read of the Lease are
 * one step here, at the moment of the Lease read: an attempt commits only if
 * the object did not change from its read to the commit, so it saw then what
 * it would have seen at the Lease read; an attempt whose object changed in
 * between fails at the compare-and-swap (or is denied on the old object,
 * which the model covers by letting a request end at any point).
 */
proctype Writer(byte w) {
  mtype kind;
  bool has, avail, o_prot;
  byte w_ten;  /* the tenure the writer took its stamp in */
  byte s_ten;  /* the tenure the presented stamp names */
  byte r_ten;  /* an other's restore: the tenure of the stamp it stores */
  byte o_ten;  /* the stamp on this attempt's oldObject */
  byte verdict, live;
end:
  do
  :: if
  :: atomic { /* a request from outside the controller */
#if MAXOTHER > 0
       w == OTHER && oprot && nother < MAXOTHER -> nother++;
#else
       w == OTHER && oprot;
#endif
       if
#ifndef OTHERS_KEEP_STAMP
       :: kind = ERASE   /* removes the stamp */
       :: kind = RESTORE /* stores a stamp of an earlier tenure: a restore,
                            kubectl rollout undo */
          r_ten = 1;
          do
          :: r_ten < ntens -> r_ten++
          :: break
          od
#endif
       :: kind = UNPROT  /* removes the protection (decommissioning) */
       fi
     }
  :: atomic { /* a request stamped with the elector's view */
       w != OTHER && oprot && vten[w] != 0 ->
       w_ten = vten[w];
       if
       :: kind = MAIN      /* per-request stamp; the annotation set to it */
       :: kind = STATUS    /* per-request stamp; the stored stamp unchanged */
       :: kind = UNPROTECT /* per-request stamp; removes the protection */
       :: kind = NOSTAMP   /* no per-request stamp: a patch from a cached
                              copy carries the stored stamp forward */
       fi
     }
     fi;
     do
     :: atomic { /* an attempt: oldObject, then admission */
          ofresh = ofresh | BIT(w);
          o_prot = oprot;
          o_ten = osten;
          s_ten = w_ten;
          has = (kind == MAIN || kind == STATUS || kind == UNPROTECT);
#ifdef STORED_STAMP
          if
          :: kind == NOSTAMP && o_ten != 0 -> has = true; s_ten = o_ten
          :: else -> skip
          fi;
#endif
          avail = true;
#ifdef FAIL_OPEN
          if
          :: skip
          :: avail = false /* the read failed: timeout, API server away */
          fi;
#endif
#ifdef CACHED
          if
          :: decide(cexists, cuid, cholder, cterm, cexpd, false);
             if
             :: verdict == 0 && live -> /* read live and decide again */
                decide(lexists, luid, lholder, lterm, lexp, true);
                admitted(lexists, luid, lholder, lterm, lexp)
             :: else -> admitted(cexists, cuid, cholder, cterm, cexpd)
             fi
          :: decide(lexists, luid, lholder, lterm, lexp, true);
             admitted(lexists, luid, lholder, lterm, lexp)
          fi;
#else
          decide(lexists, luid, lholder, lterm, lexp, true);
          admitted(lexists, luid, lholder, lterm, lexp);
#endif
          verdict = (verdict != 0 -> 1 : 0);
          has = false;
          avail = false;
          live = 0;
          o_prot = false;
          o_ten = 0;
#ifndef STORED_STAMP
          s_ten = 0
#endif
        };
        if
        :: atomic { /* commit: compare-and-swap on the resourceVersion */
             verdict != 0 && (ofresh & BIT(w)) ->
             /* the object is as this attempt read it: oprot, osten */
             if
             :: w != OTHER && oprot ->
                /* G2: a write of the controller never stores, or presents
                   over, a stamp of the same Lease uid with an older term. */
                if
                :: osten != 0 && tuid[osten] == tuid[SENT] &&
                   tterm[SENT] < tterm[osten] ->
                   printf("property G2 violated\n");
                   assert(false)
                :: else -> skip
                fi;
#ifndef SKIP_NA_ORDER
                /* NA-order: no write of a tenure commits after a
                   main-resource write of a later tenure committed to the
                   same object. */
                if
                :: w_ten < omax ->
                   printf("property NA-order violated\n");
                   assert(false)
                :: else -> skip
                fi;
#endif
                skip
             :: else -> skip
             fi;
             /* the write lands */
             if
             :: w != OTHER && (kind == MAIN || kind == UNPROTECT) ->
                osten = SENT;
                if
                :: oprot && w_ten > omax -> omax = w_ten
                :: else -> skip
                fi
             :: w == OTHER && kind == ERASE -> osten = 0
             :: w == OTHER && kind == RESTORE -> osten = r_ten
             :: else -> skip
             fi;
             if
             :: kind == UNPROTECT || kind == UNPROT -> oprot = false
             :: else -> skip
             fi;
             ofresh = 0; /* every other attempt's copy is stale */
             forget()
           };
           break
        :: atomic { /* conflict: the object changed; try again */
             verdict != 0 && (ofresh & BIT(w)) == 0 -> verdict = 0
           }
        :: atomic { /* denied */
             verdict == 0 -> ofresh = ofresh & ~BIT(w); forget()
           };
           break
        :: atomic { /* the request ends unanswered (a timeout), or was
                       denied on an oldObject that had changed */
             verdict != 0 -> ofresh = ofresh & ~BIT(w); forget()
           };
           break
        fi
     od
  od
}

init {
  byte i = 1;
  atomic {
    do
    :: i <= NE -> run Elector(i); run Writer(i); i++
    :: else -> break
    od;
#ifndef NO_OTHERS
    run Writer(OTHER);
#endif
    run Deleter();
    run Clock();
#ifdef COORDINATED
    run Coordinator();
#endif
#ifdef CACHED
    run Watch();
#endif
  }
}
