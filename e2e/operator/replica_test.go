package operator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// gate is a TCP proxy to the API server for one replica. Hold stops the
// bytes from the replica to the API server where they are (in the proxy and
// the kernel's socket buffers) while the answers still flow: the replica
// keeps receiving watch events and sending requests that do not arrive, as
// over a wedged connection. Release lets them all through.
type gate struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	held     bool
	released chan struct{} // closed when not held
	conns    []net.Conn
}

func newGate(upstream string) (*gate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &gate{ln: ln, upstream: upstream, released: make(chan struct{})}
	close(g.released)
	go g.serve()
	return g, nil
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", g.upstream)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, u)
		g.mu.Unlock()
		go g.pipe(u, c, true) // replica to API server: held while the gate is held
		go g.pipe(c, u, false)
	}
}

func (g *gate) pipe(dst, src net.Conn, holdable bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if holdable {
				g.mu.Lock()
				wait := g.released
				g.mu.Unlock()
				<-wait
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Hold stops the replica's requests from arriving.
func (g *gate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		g.held = true
		g.released = make(chan struct{})
	}
}

// Release lets them through.
func (g *gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.released)
	}
}

func (g *gate) Close() {
	g.Release()
	g.ln.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
}

// tokenMode is how a replica authenticates.
type tokenMode int

const (
	podBound tokenMode = iota // a token bound to the replica's Pod: userInfo names the pod
	plainSA                   // a service-account token bound to nothing
)

// operatorRules: what the example operator needs in its namespace.
func operatorRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	}
}

// replica is one running example operator: its own service account and
// token, its own connection to the API server through a gate, and its
// pod's name as hostname (a UTS namespace of its own), so that
// controller-runtime's identity is "<pod>_<uuid>" as in a cluster.
type replica struct {
	pod      string
	identity string
	logPath  string
	gate     *gate
	cmd      *exec.Cmd
	done     chan struct{}
}

// startReplica starts the operator with --fencing=fencing (stamp or
// identity). Its identity is known from its log when it stamps; else it is
// learnt from the Lease when the replica first holds it (holds).
func startReplica(ctx context.Context, dir, ns, pod string, mode tokenMode, fencing string) (*replica, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := cp.CreateServiceAccount(ctx, ns, pod, operatorRules()); err != nil {
		return nil, err
	}
	var token string
	switch mode {
	case podBound:
		p, err := cp.CreatePod(ctx, ns, pod, pod)
		if err != nil {
			return nil, err
		}
		if token, err = cp.PodToken(ctx, p, 0); err != nil {
			return nil, err
		}
	case plainSA:
		tr, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, pod, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		token = tr.Status.Token
	}
	u, err := url.Parse(cp.Host)
	if err != nil {
		return nil, err
	}
	g, err := newGate(u.Host)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig-"+pod)
	if err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"lf": {Server: "https://" + g.addr(), CertificateAuthorityData: cp.CACertPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{pod: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"lf": {Cluster: "lf", AuthInfo: pod, Namespace: ns}},
		CurrentContext: "lf",
	}, kubeconfig); err != nil {
		g.Close()
		return nil, err
	}
	r := &replica{pod: pod, gate: g, logPath: filepath.Join(dir, "operator-"+pod+".log"), done: make(chan struct{})}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		g.Close()
		return nil, err
	}
	// unshare --uts: a hostname of its own, set before the operator starts
	// (exec keeps the pid, so signals reach the operator).
	r.cmd = exec.Command("unshare", "--uts", "--", "sh", "-c", `hostname "$0" && exec "$@"`, pod, operatorBin,
		"--kubeconfig", kubeconfig,
		"--fencing", fencing,
		"--leader-election-namespace", ns, "--leader-election-id", leaseName, "--watch-namespace", ns,
		"--health-probe-bind-address", "0", "--metrics-bind-address", "0",
		"--leader-election-lease-duration", leaseDuration.String(),
		"--leader-election-renew-deadline", renewDeadline.String(),
		"--leader-election-retry-period", retryPeriod.String(),
		"--zap-devel=false", "--zap-encoder", "json", "--zap-log-level", "debug", "--zap-time-encoding", "rfc3339nano")
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := harness.StartChild(r.cmd); err != nil {
		logFile.Close()
		g.Close()
		return nil, err
	}
	go func() {
		_ = r.cmd.Wait()
		logFile.Close()
		close(r.done)
	}()
	l, err := r.waitLine(ctx, 30*time.Second, "its start", func(l logLine) bool { return l.Msg == "starting manager" })
	if err != nil {
		r.kill()
		return nil, err
	}
	r.identity = l.Identity
	return r, nil
}

// logLine is one JSON line of the operator's log (zap), with the fields the
// tests read.
type logLine struct {
	Msg      string `json:"msg"`
	Identity string `json:"identity"` // "starting manager"
	// "leasefence write" (crfencing):
	Verb     string `json:"verb"`
	Object   string `json:"object"`
	Term     *int32 `json:"term"`
	LeaseUID string `json:"leaseUID"`
	Holder   string `json:"holder"`
	Sent     string `json:"sent"`
	Done     string `json:"done"`
	RV       string `json:"rv"`
	Error    string `json:"error"`
	Code     int32  `json:"code"`
}

func (r *replica) lines() []logLine {
	f, err := os.Open(r.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

func (r *replica) waitLine(ctx context.Context, timeout time.Duration, what string, match func(logLine) bool) (logLine, error) {
	var found logLine
	err := cluster.Poll(ctx, timeout, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		for _, l := range r.lines() {
			if match(l) {
				found = l
				return true, "", nil
			}
		}
		if r.exited() {
			return false, "", fmt.Errorf("operator %s exited before %s (log: %s)", r.pod, what, r.logPath)
		}
		return false, fmt.Sprintf("operator %s: waiting for %s", r.pod, what), nil
	})
	return found, err
}

// writes returns the stamped writes the replica logged.
func (r *replica) writes() []logLine {
	var out []logLine
	for _, l := range r.lines() {
		if l.Msg == "leasefence write" && l.Term != nil {
			out = append(out, l)
		}
	}
	return out
}

// holds tells whether the Lease record names this replica as its holder:
// by its identity when known, else by its pod's name before the "_<uuid>"
// of controller-runtime's identity.
func (r *replica) holds(l harness.LeaseRecord) bool {
	if r.identity != "" {
		return l.Holder == r.identity
	}
	return strings.HasPrefix(l.Holder, r.pod+"_")
}

func (r *replica) pause() error  { return r.cmd.Process.Signal(syscall.SIGSTOP) }
func (r *replica) resume() error { return r.cmd.Process.Signal(syscall.SIGCONT) }

func (r *replica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to end by itself.
func (r *replica) waitExit(ctx context.Context, timeout time.Duration) error {
	select {
	case <-r.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("operator %s still runs after %v", r.pod, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *replica) kill() {
	if !r.exited() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
	r.gate.Close()
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no time")
	}
	return time.Parse(time.RFC3339Nano, s)
}
