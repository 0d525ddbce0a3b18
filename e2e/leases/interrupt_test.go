package leases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// ---------------------------------------------------------------------------
// Restarting kube-apiserver
//
// Package cluster has no restart: Stop stops etcd too, and Start generates a
// new CA, serving certificate and service-account key each time, so a
// control plane started again on the same Dir and ports would not be trusted
// by the webhook's kubeconfig, nor accept its token. What we can do without
// touching package cluster is stop only the kube-apiserver process (its pid
// is public) and start the same binary with the same command line, which
// cluster writes as the first line of its log: same ports, same
// certificates, same service-account keys, same etcd.

var restarted struct {
	sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// restartAPIServer stops the running kube-apiserver (SIGTERM, SIGKILL after
// 30 s), waits until its port is free, starts it again with the same
// arguments and returns once /readyz is ok. down runs while it is stopped.
func restartAPIServer(ctx context.Context, down func()) error {
	data, err := os.ReadFile(c.APIServerLog)
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if !strings.HasPrefix(first, "# ") {
		return fmt.Errorf("%s does not start with the command line", c.APIServerLog)
	}
	argv := strings.Fields(strings.TrimPrefix(first, "# "))
	if len(argv) < 2 || filepath.Base(argv[0]) != "kube-apiserver" {
		return fmt.Errorf("unexpected command line in %s: %q", c.APIServerLog, first)
	}

	restarted.Lock()
	defer restarted.Unlock()
	if restarted.cmd != nil {
		// Ours from an earlier restart.
		if err := stopOurAPIServer(); err != nil {
			return err
		}
	} else {
		_, pid := c.PIDs()
		_ = syscall.Kill(-pid, syscall.SIGTERM) // its own process group (Setpgid)
		gone := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
			return processGone(pid), "kube-apiserver still running", nil
		})
		if gone != nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", c.APIServerPort())
	if err := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false, err.Error(), nil
		}
		l.Close()
		return true, "", nil
	}); err != nil {
		return err
	}
	if down != nil {
		down()
	}
	logf, err := os.Create(filepath.Join(c.Dir, "kube-apiserver-restarted.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := harness.StartChild(cmd); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	restarted.cmd, restarted.done = cmd, done
	return cluster.Poll(ctx, 90*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-done:
			return false, "", errors.New("the restarted kube-apiserver exited; log: " + logf.Name())
		default:
		}
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Sprintf("%v %s", err, body), nil
		}
		return true, "", nil
	})
}

func stopOurAPIServer() error {
	if restarted.cmd == nil {
		return nil
	}
	pid := restarted.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-restarted.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-restarted.done
	}
	restarted.cmd = nil
	return nil
}

func stopRestartedAPIServer() error {
	restarted.Lock()
	defer restarted.Unlock()
	return stopOurAPIServer()
}

// processGone: no such process, or a zombie (exited, not yet reaped).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// ---------------------------------------------------------------------------
// A TCP proxy between the webhook and the API server
//
// TLS passes through untouched (the API server's certificate is for
// 127.0.0.1, whatever the port). It can cut every open connection, or freeze
// them: bytes from the API server are held back, so a watch open at that
// moment receives nothing more, exactly like a wedged connection. A frozen
// connection on which the client sends anything is a pooled connection
// taken up again for a new request, not a stream: it thaws and works
// normally. So only the silent stream (the watch) stays wedged.
//
// (A first version closed such a pooled connection instead. The webhook
// then failed that Lease read, "HTTP/2 stream N was not closed cleanly
// before end of the underlying stream", and denied the write with
// LeaseUnavailable: a dead pooled connection costs one fail-closed decision;
// the read is not retried on a fresh connection.)

type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
}

type proxyConn struct {
	client, server net.Conn
	mu             sync.Mutex
	frozen         bool
	closeOnce      sync.Once
}

func (pc *proxyConn) close() {
	pc.closeOnce.Do(func() { pc.client.Close(); pc.server.Close() })
}

func (pc *proxyConn) isFrozen() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.frozen
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) URL() string { return "https://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		sv, err := net.Dial("tcp", p.target)
		if err != nil {
			cl.Close()
			continue
		}
		pc := &proxyConn{client: cl, server: sv}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		go func() { // client -> server
			buf := make([]byte, 32*1024)
			for {
				n, err := cl.Read(buf)
				if n > 0 {
					// The client speaks: this is not a silent stream but
					// a pooled connection taken up again. Let it work.
					pc.mu.Lock()
					pc.frozen = false
					pc.mu.Unlock()
					if _, werr := sv.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			p.drop(pc)
		}()
		go func() { // server -> client
			buf := make([]byte, 32*1024)
			for {
				n, err := sv.Read(buf)
				if n > 0 {
					for pc.isFrozen() {
						// Hold the bytes back until the connection is closed.
						time.Sleep(20 * time.Millisecond)
					}
					if _, werr := cl.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						break
					}
					break
				}
			}
			p.drop(pc)
		}()
	}
}

func (p *proxy) drop(pc *proxyConn) {
	pc.close()
	pc.mu.Lock()
	pc.frozen = false // lets a held-back writer see the closed socket
	pc.mu.Unlock()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// Freeze wedges every connection open now; it returns how many.
func (p *proxy) Freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.mu.Lock()
		pc.frozen = true
		pc.mu.Unlock()
	}
	return len(p.conns)
}

// Cut closes every connection open now; it returns how many.
func (p *proxy) Cut() int {
	p.mu.Lock()
	var all []*proxyConn
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		p.drop(pc)
	}
	return len(all)
}

func (p *proxy) Close() {
	p.ln.Close()
	p.Cut()
}
