package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// process is one control-plane binary running in its own process group, with
// its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error
}

// startProcess runs bin with args, output to logPath.
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%s binary not found or not executable at %s: run e2e/build.sh and set LF_KUBE_BIN_DIR to the folder it prints", name, bin)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own lets Stop signal everything the binary may have
		// spawned, and keeps a terminal's Ctrl-C from reaching it before we do.
		Setpgid: true,
		// If the test process dies without calling Stop, the kernel kills the
		// child. Pdeathsig fires when the creating OS thread exits, not the
		// process, hence startOnSpawnerThread.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := startOnSpawnerThread(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w (log: %s)", name, err, logPath)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// spawnRequests feeds the one goroutine that starts every child process.
var spawnRequests = make(chan spawnRequest)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func init() {
	go func() {
		// Locked and never unlocked, this goroutine keeps its OS thread until
		// the process exits, so Pdeathsig cannot fire while we still run.
		runtime.LockOSThread()
		for r := range spawnRequests {
			r.done <- r.cmd.Start()
		}
	}()
}

func startOnSpawnerThread(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL if it has not exited
// within grace. It returns once the process has been reaped.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	pgid := p.pid() // Setpgid makes the group id equal to the pid.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, p.pid())
		}
	}
	// No group-wide kill after the reap: the id could by then belong to
	// someone else's group. etcd and kube-apiserver start no children.
	return nil
}

// exitError describes a process that exited before it became ready, naming the
// likeliest cause found in its log.
func (p *process) exitError() error {
	cause := logCause(p.logPath)
	return fmt.Errorf("%s exited before it was ready (%v): %s; log: %s", p.name, p.waitErr, cause, p.logPath)
}

// logCause picks the most telling line from a failed process's log: a bind
// failure first, then the last fatal or error line, then the last line.
func logCause(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	var last, lastErr, inUse string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		last = line
		switch {
		case strings.Contains(line, "address already in use"):
			inUse = line
		case strings.HasPrefix(line, "E") || strings.HasPrefix(line, "F") ||
			strings.Contains(line, `"level":"fatal"`) || strings.Contains(line, `"level":"error"`) ||
			strings.HasPrefix(line, "Error:"):
			lastErr = line
		}
	}
	switch {
	case inUse != "":
		return "port already in use: " + shorten(inUse)
	case lastErr != "":
		return shorten(lastErr)
	case last != "":
		return shorten(last)
	}
	return "empty log"
}

func shorten(s string) string {
	const max = 400
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// freePorts asks the kernel for n distinct unused loopback ports, holding
// each open until all are chosen so none is handed out twice. Another process
// can still take one before the binary binds it; that case is reported from
// the binary's log as "port already in use".
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// checkPortFree fails clearly when a port the caller asked for is taken.
func checkPortFree(what string, port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s port 127.0.0.1:%d is already in use", what, port)
		}
		return fmt.Errorf("%s port 127.0.0.1:%d: %w", what, port, err)
	}
	return l.Close()
}
