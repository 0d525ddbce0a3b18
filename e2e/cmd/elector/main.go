// Command elector is a small leader-elected controller for the e2e tests and
// the demo: client-go's leaderelection on a Lease through the Go helper's
// fencing.NewLeaseLock, and, while it believes it leads, a stamped write to a
// protected ConfigMap every --interval. Each write and each leadership change
// is one JSON line on stdout, so a test can reconstruct who wrote what under
// which belief.
//
// SIGSTOP and SIGCONT make it a real stale leader: on SIGCONT it first sends
// a burst of writes with the stamp it held when it was stopped (what an
// in-flight reconcile would still carry), before its elector gets to look
// at the Lease again.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	fencing "leasefence.io/fencing/go"
)

// Line is one JSON line of output. Fields not relevant to an event are
// omitted.
type Line struct {
	Time     time.Time `json:"time"`               // when the event happened (for a write: when it was sent)
	Identity string    `json:"identity"`           // this process's holder identity
	Event    string    `json:"event"`              // write, started_leading, stopped_leading, new_leader, sigcont, ready, exit
	Term     *int32    `json:"term,omitempty"`     // write: the stamped term (what this process believed)
	LeaseUID string    `json:"leaseUID,omitempty"` // write: the stamped Lease uid
	Op       string    `json:"op,omitempty"`       // write: patch or create
	Trigger  string    `json:"trigger,omitempty"`  // write: tick or sigcont
	Seq      int64     `json:"seq,omitempty"`      // write: this process's write counter
	Result   string    `json:"result,omitempty"`   // write: admitted, denied or error
	Code     int32     `json:"code,omitempty"`     // write: HTTP status
	Message  string    `json:"message,omitempty"`  // write: the API server's message on failure
	RV       string    `json:"rv,omitempty"`       // write: the object's resourceVersion after an admitted write
	Done     time.Time `json:"done,omitzero"`      // write: when the answer arrived
	Stored   string    `json:"stored,omitempty"`   // write: the stamp on the object the API server returned
	Writer   string    `json:"writer,omitempty"`   // write: data.writer of the object returned
	Leader   string    `json:"leader,omitempty"`   // new_leader: the identity observed
}

var (
	outMu sync.Mutex
	enc   = json.NewEncoder(os.Stdout)
)

func emit(l Line) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = enc.Encode(l)
}

func main() {
	var (
		kubeconfig    = flag.String("kubeconfig", "", "kubeconfig (pod-bound token) to act with; required")
		namespace     = flag.String("namespace", "", "namespace of the Lease and the ConfigMap; required")
		leaseName     = flag.String("lease", "ctrl", "Lease to elect on")
		pod           = flag.String("pod", "", "pod name: the identity is <pod>_<uuid>; required")
		configMap     = flag.String("configmap", "shard-map", "protected ConfigMap to write")
		interval      = flag.Duration("interval", 250*time.Millisecond, "time between writes while leading")
		burst         = flag.Int("burst", 3, "writes sent at once on SIGCONT")
		leaseDuration = flag.Duration("lease-duration", 4*time.Second, "leaderelection LeaseDuration")
		renewDeadline = flag.Duration("renew-deadline", 3*time.Second, "leaderelection RenewDeadline")
		retryPeriod   = flag.Duration("retry-period", 500*time.Millisecond, "leaderelection RetryPeriod")
		noStamp       = flag.Bool("no-stamp", false, "write without a stamp, as a controller that calls no helper")
		fencingMode   = flag.String("fencing", "", "fencing mode the protection annotation names (stamp or identity); empty: none, the webhook's default")
		clockOffset   = flag.Duration("clock-offset", 0, "how far this process's wall clock is off the host's, as seen in the renewTime and acquireTime it writes into the Lease (e.g. 400ms ahead, -400ms behind)")
	)
	flag.Parse()
	if *kubeconfig == "" || *namespace == "" || *pod == "" {
		fmt.Fprintln(os.Stderr, "elector: --kubeconfig, --namespace and --pod are required")
		os.Exit(2)
	}
	protection := *namespace + "/" + *leaseName
	switch *fencingMode {
	case "":
	case "stamp", "identity":
		protection = *fencingMode + ":" + protection
	default:
		fmt.Fprintln(os.Stderr, "elector: --fencing is stamp or identity")
		os.Exit(2)
	}
	// client-go's own logs go to stderr, out of the way of the JSON lines.
	klog.SetOutput(os.Stderr)
	klog.LogToStderr(true)

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, -1 // no client-side throttling: bursts must go out at once
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fatal(err)
	}
	identity := *pod + "_" + string(uuid.NewUUID())
	lock := fencing.NewLeaseLock(*namespace, *leaseName, identity, client.CoordinationV1(), nil)
	var elected resourcelock.Interface = lock
	if *clockOffset != 0 {
		elected = &offsetLock{Lock: lock, offset: *clockOffset}
	}

	w := &writer{
		client: client, lock: lock, identity: identity,
		namespace: *namespace, name: *configMap, protection: protection,
		noStamp: *noStamp,
	}

	// SIGCONT first: registered before anything runs, served by a goroutine
	// that does nothing else, so the burst goes out as soon as the process is
	// scheduled again.
	conts := make(chan os.Signal, 1)
	signal.Notify(conts, syscall.SIGCONT)
	go func() {
		for range conts {
			s, ok := w.heldStamp()
			emit(Line{Time: time.Now(), Identity: identity, Event: "sigcont"})
			if !ok {
				continue // never led: nothing in flight
			}
			for i := 0; i < *burst; i++ {
				w.write(context.Background(), s, "sigcont")
			}
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	emit(Line{Time: time.Now(), Identity: identity, Event: "ready"})
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:          elected,
		LeaseDuration: *leaseDuration,
		RenewDeadline: *renewDeadline,
		RetryPeriod:   *retryPeriod,
		// Off on purpose: a stale leader does not release, and a stopped
		// elector leaves the Lease to expire as a crashed one would.
		ReleaseOnCancel: false,
		Name:            *leaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				emit(Line{Time: time.Now(), Identity: identity, Event: "started_leading", Term: termOf(lock)})
				w.run(ctx, *interval)
			},
			OnStoppedLeading: func() {
				// The held stamp is kept: writes in flight when the process
				// was paused carry it, and after SIGCONT the elector noticing
				// the lost Lease races with sending them, as in a real stale
				// leader. Clearing it here made the burst depend on which
				// goroutine the scheduler ran first.
				emit(Line{Time: time.Now(), Identity: identity, Event: "stopped_leading"})
			},
			OnNewLeader: func(id string) {
				emit(Line{Time: time.Now(), Identity: identity, Event: "new_leader", Leader: id, Term: termOf(lock)})
			},
		},
	})
	emit(Line{Time: time.Now(), Identity: identity, Event: "exit"})
}

// offsetLock is the Lease as an elector whose wall clock is offset from the
// host's sees and writes it. client-go's elector reads its clock for the
// renewTime and acquireTime it writes, and otherwise only to measure
// durations between its own readings (expiry is judged from when it last
// saw the record change), which a constant offset leaves unchanged. Its
// clock is not configurable (LeaderElector.clock is always the real one), so
// the offset is applied where the times meet the Lease: added to the times
// written, subtracted from the times read, so that an acquireTime carried
// from a record read back is not offset twice.
type offsetLock struct {
	*fencing.Lock
	offset time.Duration
}

func (l *offsetLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, _, err := l.Lock.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	l.shift(r, -l.offset)
	raw, err := json.Marshal(*r)
	return r, raw, err
}

func (l *offsetLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	l.shift(&r, l.offset)
	return l.Lock.Create(ctx, r)
}

func (l *offsetLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	l.shift(&r, l.offset)
	return l.Lock.Update(ctx, r)
}

func (l *offsetLock) shift(r *resourcelock.LeaderElectionRecord, d time.Duration) {
	for _, t := range []*metav1.Time{&r.AcquireTime, &r.RenewTime} {
		if !t.IsZero() {
			t.Time = t.Add(d)
		}
	}
}

func termOf(lock *fencing.Lock) *int32 {
	if o, ok := lock.Observed(); ok {
		return &o.Term
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "elector:", err)
	os.Exit(1)
}

type writer struct {
	client          kubernetes.Interface
	lock            *fencing.Lock
	identity        string
	namespace, name string
	protection      string // the value of the protection annotation
	noStamp         bool
	seq             atomic.Int64

	mu   sync.Mutex
	held *fencing.Stamp // the stamp the write loop obtained last, while leading
}

// run writes every interval until ctx ends (leadership lost).
func (w *writer) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s, err := w.lock.Stamp()
		if err == nil {
			w.mu.Lock()
			w.held = &s
			w.mu.Unlock()
			// A write once sent is seen through to the API server's answer,
			// even when this process stops leading meanwhile: a request
			// cancelled in flight has no verdict, though the API server may
			// have committed it, and every write is judged by its verdict.
			w.write(context.WithoutCancel(ctx), s, "tick")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heldStamp is the stamp an in-flight write of this process would carry: the
// one its write loop obtained last while leading (false if it never led).
func (w *writer) heldStamp() (fencing.Stamp, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == nil {
		return fencing.Stamp{}, false
	}
	return *w.held, true
}

// write sends one stamped merge patch (or, when the ConfigMap does not exist
// yet, a create) and logs the outcome.
func (w *writer) write(ctx context.Context, s fencing.Stamp, trigger string) {
	seq := w.seq.Add(1)
	term := s.Term
	l := Line{Identity: w.identity, Event: "write", Term: &term, LeaseUID: s.LeaseUID, Trigger: trigger, Seq: seq, Op: "patch"}
	data := map[string]string{"writer": w.identity, "term": strconv.Itoa(int(s.Term)), "seq": strconv.FormatInt(seq, 10)}
	body, _ := json.Marshal(map[string]any{"data": data})
	if !w.noStamp {
		var err error
		if body, err = fencing.MergePatch(body, s); err != nil {
			fatal(err)
		}
	}
	// The stamp goes on the object and, per request, in fieldManager.
	popts, copts := metav1.PatchOptions{}, metav1.CreateOptions{}
	if !w.noStamp {
		popts, copts = fencing.PatchOptions(s, popts), fencing.CreateOptions(s, copts)
	}
	cms := w.client.CoreV1().ConfigMaps(w.namespace)
	l.Time = time.Now()
	cm, err := cms.Patch(ctx, w.name, types.MergePatchType, body, popts)
	if apierrors.IsNotFound(err) {
		l.Op = "create"
		obj := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: w.name, Annotations: map[string]string{"leasefence.io/lease": w.protection}},
			Data:       data,
		}
		if !w.noStamp {
			fencing.StampObject(obj, s)
		}
		cm, err = cms.Create(ctx, obj, copts)
	}
	l.Done = time.Now()
	var status apierrors.APIStatus
	switch {
	case err == nil:
		l.Result, l.Code, l.RV = "admitted", 200, cm.ResourceVersion
		l.Stored, l.Writer = cm.Annotations[fencing.AnnotationStamp], cm.Data["writer"]
	case errors.As(err, &status) && status.Status().Code == 403 &&
		strings.Contains(status.Status().Message, "denied the request"):
		// An admission webhook's denial (RBAC's 403 says "forbidden" instead).
		l.Result, l.Code, l.Message = "denied", 403, status.Status().Message
	case errors.As(err, &status):
		l.Result, l.Code, l.Message = "error", status.Status().Code, status.Status().Message
	default:
		l.Result, l.Message = "error", err.Error()
	}
	emit(l)
}
