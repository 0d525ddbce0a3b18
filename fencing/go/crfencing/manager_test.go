package crfencing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fencing "leasefence.io/fencing/go"
)

// apiServer records the requests that reach it; Leases are not found,
// Events are created.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	hit  chan seen
}

type seen struct {
	method, path, userAgent, timeout, body string
}

func newAPIServer(t *testing.T) *apiServer {
	s := &apiServer{hit: make(chan seen, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q := seen{method: r.Method, path: r.URL.Path, userAgent: r.UserAgent(), timeout: r.URL.Query().Get("timeout"), body: string(b)}
		s.mu.Lock()
		s.reqs = append(s.reqs, q)
		s.mu.Unlock()
		select {
		case s.hit <- q:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/events") {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(b)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// waitFor returns the first request that satisfies match, within 10 s.
func (s *apiServer) waitFor(t *testing.T, what string, match func(seen) bool) seen {
	t.Helper()
	s.mu.Lock()
	for _, q := range s.reqs {
		if match(q) {
			s.mu.Unlock()
			return q
		}
	}
	s.mu.Unlock()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case q := <-s.hit:
			if match(q) {
				return q
			}
		case <-timeout:
			t.Fatalf("no request: %s", what)
		}
	}
}

func electionOptions() manager.Options {
	return manager.Options{
		LeaderElection:          true,
		LeaderElectionID:        "my-operator",
		LeaderElectionNamespace: "ops",
		Metrics:                 metricsserver.Options{BindAddress: "0"},
	}
}

// TestNewLockKeepsControllerRuntimesSettings: the Lock's client is the one
// controller-runtime builds for its own lock: user agent "<default>/leader-election",
// a per-request timeout of max(RenewDeadline/2, 1s), the identity
// "<hostname>_<uuid>", the Lease's labels, LeaderElectionConfig when given.
func TestNewLockKeepsControllerRuntimesSettings(t *testing.T) {
	srv := newAPIServer(t)
	ctx := context.Background()
	opts := electionOptions()
	renew := 4 * time.Second
	opts.RenewDeadline = &renew
	opts.LeaderElectionLabels = map[string]string{"team": "x"}
	lock, err := NewLock(&rest.Config{Host: srv.URL, UserAgent: "my-operator/v1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = lock.Get(ctx) // not found: only the request matters
	q := srv.waitFor(t, "the Lease GET", func(q seen) bool { return q.method == http.MethodGet })
	if q.path != "/apis/coordination.k8s.io/v1/namespaces/ops/leases/my-operator" {
		t.Errorf("Lease path %s", q.path)
	}
	// rest.AddUserAgent, as controller-runtime calls it, replaces the
	// config's user agent with the default one plus the suffix.
	if want := rest.DefaultKubernetesUserAgent() + "/leader-election"; q.userAgent != want {
		t.Errorf("user agent %q, want controller-runtime's %q", q.userAgent, want)
	}
	if q.timeout != "2s" {
		t.Errorf("per-request timeout %q, want 2s (RenewDeadline/2)", q.timeout)
	}
	host, _ := os.Hostname()
	id := lock.Identity()
	if !strings.HasPrefix(id, host+"_") || len(id) != len(host)+1+36 {
		t.Errorf("identity %q, want %s_<uuid>", id, host)
	}
	if lock.Labels["team"] != "x" {
		t.Errorf("labels %v", lock.Labels)
	}

	// The default renew deadline (10 s) gives 5 s; LeaderElectionConfig
	// is used for the Lease when set.
	other := newAPIServer(t)
	opts = electionOptions()
	opts.LeaderElectionConfig = &rest.Config{Host: other.URL}
	if lock, err = NewLock(&rest.Config{Host: srv.URL}, opts); err != nil {
		t.Fatal(err)
	}
	_, _, _ = lock.Get(ctx)
	if q := other.waitFor(t, "the Lease GET on LeaderElectionConfig", func(q seen) bool { return q.method == http.MethodGet }); q.timeout != "5s" {
		t.Errorf("per-request timeout %q, want 5s", q.timeout)
	}

	for name, o := range map[string]func(*manager.Options){
		"no leader election": func(o *manager.Options) { o.LeaderElection = false },
		"not a Lease":        func(o *manager.Options) { o.LeaderElectionResourceLock = "configmapsleases" },
		"no namespace":       func(o *manager.Options) { o.LeaderElectionNamespace = "" }, // the tests do not run in a pod
	} {
		opts := electionOptions()
		o(&opts)
		if _, err := NewLock(&rest.Config{Host: srv.URL}, opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestNewManager: the manager elects on the fencing Lock, its client is
// fenced, and its leader-election events reach the API server through the
// manager's recorder.
func TestNewManager(t *testing.T) {
	srv := newAPIServer(t)
	logs := &captured{}
	opts := electionOptions()
	opts.Logger = logr.New(logs)
	mgr, fence, err := NewManager(&rest.Config{Host: srv.URL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mgr.GetClient().(*fencedClient); !ok {
		t.Errorf("the manager's client is a %T, not fenced", mgr.GetClient())
	}
	fence.Lock().RecordEvent("became leader")
	q := srv.waitFor(t, "the leader-election Event", func(q seen) bool {
		return q.method == http.MethodPost && q.path == "/api/v1/namespaces/ops/events"
	})
	if !strings.Contains(q.body, fence.Lock().Identity()+" became leader") || !strings.Contains(q.body, `"reason":"LeaderElection"`) {
		t.Errorf("event %s", q.body)
	}
	// The manager's logger is quiet about not leading.
	mgr.GetLogger().Error(&fencing.NotLeaderError{Reason: fencing.NotLeaderStopped}, "Reconciler error")
	if e := logs.errors(); len(e) != 0 {
		t.Errorf("errors logged: %v", e)
	}
	if _, _, err := NewManager(&rest.Config{Host: srv.URL}, manager.Options{LeaderElection: true, LeaderElectionResourceLockInterface: fence.Lock()}); err == nil {
		t.Error("a lock of the caller's was accepted")
	}
}

// captured is a LogSink that keeps every entry.
type captured struct {
	mu      sync.Mutex
	entries []entry
}

type entry struct {
	level int
	err   error
	msg   string
}

func (c *captured) Init(logr.RuntimeInfo)  {}
func (c *captured) Enabled(level int) bool { return level <= 1 }
func (c *captured) Info(level int, msg string, _ ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, entry{level: level, msg: msg})
}
func (c *captured) Error(err error, msg string, _ ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, entry{err: err, msg: msg})
}
func (c *captured) WithValues(...any) logr.LogSink { return c }
func (c *captured) WithName(string) logr.LogSink   { return c }

func (c *captured) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.entries {
		if e.err != nil {
			out = append(out, e.msg+": "+e.err.Error())
		}
	}
	return out
}

func (c *captured) count(level int, prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.entries {
		if e.err == nil && e.level == level && strings.HasPrefix(e.msg, prefix) {
			n++
		}
	}
	return n
}

// TestNotLeaderIsAQuietRequeue runs a real controller-runtime controller
// whose reconciler fails twice with the fenced client's not-leader error,
// then succeeds. With QuietNotLeader the request is retried with no error
// logged; with the plain logger the same run logs "Reconciler error" each
// time, which is what controller-runtime does with any error it is given.
func TestNotLeaderIsAQuietRequeue(t *testing.T) {
	for _, quiet := range []bool{true, false} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			logs := &captured{}
			log := logr.New(logs)
			if quiet {
				log = QuietNotLeader(log)
			}
			done := make(chan struct{})
			var calls int
			skip := true
			c, err := controller.NewUnmanaged("fenced", controller.Options{
				SkipNameValidation: &skip,
				Logger:             log,
				Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
					calls++
					switch {
					case calls <= 2:
						return reconcile.Result{}, fmt.Errorf("leasefence: not sending the UPDATE of ops/x: %w",
							&fencing.NotLeaderError{Lease: "ops/ctrl", Identity: "a", Holder: "b", Reason: fencing.NotLeaderOtherHolder})
					case calls == 3:
						close(done)
					}
					return reconcile.Result{}, nil
				}),
			})
			if err != nil {
				t.Fatal(err)
			}
			events := make(chan event.GenericEvent, 1)
			if err := c.Watch(source.Channel(events, &handler.EnqueueRequestForObject{})); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			go func() { stopped <- c.Start(ctx) }()
			events <- event.GenericEvent{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "x"}}}
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the request was not retried after the not-leader errors")
			}
			cancel()
			if err := <-stopped; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			errs, quietLines := logs.errors(), logs.count(1, "Reconciler error (not the leader")
			if quiet && (len(errs) != 0 || quietLines != 2) {
				t.Errorf("quiet: errors %v and %d V(1) lines; want none and 2", errs, quietLines)
			}
			if !quiet && len(errs) != 2 {
				t.Errorf("plain logger: errors %v; want controller-runtime's 2 Reconciler errors", errs)
			}
		})
	}
}
