package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"leasefence.io/e2e/cluster"
)

// BuildElector compiles e2e/cmd/elector into dir and returns the binary's
// path. It runs `go build` in the e2e module, found from the working folder
// (tests run in their package folder, the demo in e2e/).
func BuildElector(dir string) (string, error) {
	mod, err := e2eModuleDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "elector")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/elector")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/elector: %v: %s", err, b)
	}
	return out, nil
}

func e2eModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module leasefence.io/e2e\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the e2e module (go.mod of leasefence.io/e2e) is not above %s", dir)
		}
		dir = parent
	}
}

// ElectorRules is what an elector's pod may do: run leader election on
// Leases and write ConfigMaps, nothing more.
func ElectorRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "patch"}},
	}
}

// ElectorOptions configures StartElector.
type ElectorOptions struct {
	Bin       string // from BuildElector
	Cluster   *cluster.Cluster
	Dir       string // receives the kubeconfig and logs
	Namespace string // of the Lease, the ConfigMap and the pod identity
	Pod       string // pod (and service account) name; the identity is <Pod>_<uuid>
	Lease     string // default "ctrl"
	ConfigMap string // default "shard-map"
	Args      []string
}

// ElectorLine is one line of an elector's output (see cmd/elector).
type ElectorLine struct {
	Time     time.Time `json:"time"`
	Identity string    `json:"identity"`
	Event    string    `json:"event"`
	Term     *int32    `json:"term"`
	LeaseUID string    `json:"leaseUID"`
	Op       string    `json:"op"`
	Trigger  string    `json:"trigger"`
	Seq      int64     `json:"seq"`
	Result   string    `json:"result"`
	Code     int32     `json:"code"`
	Message  string    `json:"message"`
	RV       string    `json:"rv"`
	Done     time.Time `json:"done"`
	Leader   string    `json:"leader"`
	Stored   string    `json:"stored"` // the stamp on the object after an admitted write
	Writer   string    `json:"writer"` // data.writer of the object after an admitted write
}

// Elector is a running elector process with a pod identity of its own.
type Elector struct {
	Pod      string
	Identity string // <pod>_<uuid>, known once the process is ready
	Pid      *cluster.PodIdentity
	LogPath  string // stdout: JSON lines
	ErrPath  string // stderr: client-go's logs

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
}

// StartElector creates the pod identity (ServiceAccount and Role named Pod,
// with ElectorRules; a Pod; a token bound to it) and starts the elector with
// it, returning once it has printed its identity.
func StartElector(ctx context.Context, o ElectorOptions) (*Elector, error) {
	if o.Lease == "" {
		o.Lease = "ctrl"
	}
	if o.ConfigMap == "" {
		o.ConfigMap = "shard-map"
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	id, err := o.Cluster.NewPodIdentity(ctx, o.Namespace, o.Pod, o.Pod, ElectorRules(),
		filepath.Join(o.Dir, "kubeconfig-"+o.Pod))
	if err != nil {
		return nil, err
	}
	e := &Elector{Pod: o.Pod, Pid: id,
		LogPath: filepath.Join(o.Dir, "elector-"+o.Pod+".jsonl"),
		ErrPath: filepath.Join(o.Dir, "elector-"+o.Pod+".stderr")}
	stdout, err := os.Create(e.LogPath)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(e.ErrPath)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	args := append([]string{"--kubeconfig", id.Kubeconfig, "--namespace", o.Namespace, "--pod", o.Pod,
		"--lease", o.Lease, "--configmap", o.ConfigMap}, o.Args...)
	e.cmd = exec.Command(o.Bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = stdout, stderr
	e.done = make(chan struct{})
	if err := StartChild(e.cmd); err != nil {
		stdout.Close()
		stderr.Close()
		return nil, err
	}
	go func() {
		_ = e.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(e.done)
	}()
	l, err := e.WaitLine(ctx, 20*time.Second, func(l ElectorLine) bool { return l.Event == "ready" })
	if err != nil {
		e.Kill()
		return nil, err
	}
	e.Identity = l.Identity
	return e, nil
}

// Lines parses the output so far.
func (e *Elector) Lines() ([]ElectorLine, error) {
	f, err := os.Open(e.LogPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ElectorLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var l ElectorLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		} // a partial last line is read again next time
	}
	return out, nil
}

// Writes returns the write lines, optionally only those of one trigger.
func (e *Elector) Writes(trigger string) []ElectorLine {
	lines, _ := e.Lines()
	var out []ElectorLine
	for _, l := range lines {
		if l.Event == "write" && (trigger == "" || l.Trigger == trigger) {
			out = append(out, l)
		}
	}
	return out
}

// WaitLine polls the output until a line satisfies match.
func (e *Elector) WaitLine(ctx context.Context, timeout time.Duration, match func(ElectorLine) bool) (ElectorLine, error) {
	var found ElectorLine
	err := cluster.Poll(ctx, timeout, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		lines, err := e.Lines()
		if err != nil {
			return false, err.Error(), nil
		}
		for _, l := range lines {
			if match(l) {
				found = l
				return true, "", nil
			}
		}
		if e.exited() {
			return false, "", fmt.Errorf("elector %s exited (stderr: %s)", e.Pod, lastLines(e.ErrPath, 5))
		}
		return false, fmt.Sprintf("elector %s: %d lines, none matching", e.Pod, len(lines)), nil
	})
	return found, err
}

// CountLines counts the lines that satisfy match.
func (e *Elector) CountLines(match func(ElectorLine) bool) int {
	lines, _ := e.Lines()
	n := 0
	for _, l := range lines {
		if match(l) {
			n++
		}
	}
	return n
}

// Pause stops the process (SIGSTOP): it neither renews nor writes, and
// keeps believing what it believed.
func (e *Elector) Pause() error { return e.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues it (SIGCONT); it then sends its burst of writes at once.
func (e *Elector) Resume() error { return e.cmd.Process.Signal(syscall.SIGCONT) }

// Exited tells whether the process has ended (client-go's elector returns,
// and the process exits, once it stopped leading).
func (e *Elector) Exited() bool { return e.exited() }

func (e *Elector) exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Kill ends the process like a crash (SIGKILL; it works on a stopped
// process too) and waits for it. The Lease is left to expire.
func (e *Elector) Kill() {
	if !e.exited() {
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.done
	}
}

// String is a one-line account of l, for test failures.
func (l ElectorLine) String() string {
	term := "-"
	if l.Term != nil {
		term = fmt.Sprint(*l.Term)
	}
	s := fmt.Sprintf("%s %s %s term=%s", l.Time.Format("15:04:05.000"), l.Identity, l.Event, term)
	if l.Event == "write" {
		s += fmt.Sprintf(" %s/%s seq=%d %s %d rv=%s", l.Op, l.Trigger, l.Seq, l.Result, l.Code, l.RV)
		if l.Message != "" {
			s += " " + l.Message
		}
	}
	return s
}
