package harness

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one or more backends. TLS
// passes through untouched (the certificates here are for 127.0.0.1,
// whatever the port).
//
// In front of several webhook replicas it plays their Service: each new
// connection goes to the next backend in turn, and a backend that refuses
// the connection is skipped, as if its endpoint had been removed at once
// (kube-proxy would keep it until the replica's readiness failed). A
// connection already open to a replica that dies breaks, and the API
// server's request on it fails. SetBackends swaps a replaced replica in, as
// the endpoints of its new pod.
//
// In front of the API server it is one process's path there: Cut closes
// every connection open through it, as a network fault would.
type Proxy struct {
	ln net.Listener

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[*proxyConn]struct{}
	stats    ProxyStats
}

// ProxyStats counts the connections through a Proxy and which side ended
// each: a backend that closes connections of its own accord (a timeout)
// shows in EndedByBackend.
type ProxyStats struct {
	Accepted, NoBackend                int
	EndedByClient, EndedByBackend, Cut int
}

type proxyConn struct {
	client, server net.Conn
	backend        string
	once           sync.Once
	endedBy        *int // the counter of the side that ended it first
}

func (pc *proxyConn) close(endedBy *int) {
	pc.once.Do(func() {
		pc.endedBy = endedBy
		pc.client.Close()
		pc.server.Close()
	})
}

// NewProxy listens on a free loopback port and forwards to backends
// (host:port).
func NewProxy(backends ...string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, backends: backends, conns: map[*proxyConn]struct{}{}}
	go p.serve()
	return p, nil
}

// Addr is host:port to connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the port it listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetBackends replaces the backends for new connections; open ones stay.
func (p *Proxy) SetBackends(backends ...string) {
	p.mu.Lock()
	p.backends = append([]string(nil), backends...)
	p.mu.Unlock()
}

// dial connects to the next backend that accepts, trying each once.
func (p *Proxy) dial() (net.Conn, string, error) {
	p.mu.Lock()
	order := make([]string, 0, len(p.backends))
	for i := range p.backends {
		order = append(order, p.backends[(p.next+i)%len(p.backends)])
	}
	p.next++
	p.mu.Unlock()
	err := errors.New("no backend")
	for _, b := range order {
		var c net.Conn
		if c, err = net.Dial("tcp", b); err == nil {
			return c, b, nil
		}
	}
	return nil, "", err
}

func (p *Proxy) serve() {
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			sv, backend, err := p.dial()
			p.mu.Lock()
			p.stats.Accepted++
			if err != nil {
				p.stats.NoBackend++
				p.mu.Unlock()
				cl.Close()
				return
			}
			pc := &proxyConn{client: cl, server: sv, backend: backend}
			p.conns[pc] = struct{}{}
			p.mu.Unlock()
			var wg sync.WaitGroup
			wg.Add(2)
			// One side ended: end both, as a broken path would.
			go func() {
				defer wg.Done()
				_, _ = io.Copy(sv, cl)
				pc.close(&p.stats.EndedByClient)
			}()
			go func() {
				defer wg.Done()
				_, _ = io.Copy(cl, sv)
				pc.close(&p.stats.EndedByBackend)
			}()
			wg.Wait()
			p.mu.Lock()
			*pc.endedBy++
			delete(p.conns, pc)
			p.mu.Unlock()
		}()
	}
}

// Cut closes every open connection to backend ("" for all) and returns how
// many it closed.
func (p *Proxy) Cut(backend string) int {
	p.mu.Lock()
	var cut []*proxyConn
	for pc := range p.conns {
		if backend == "" || pc.backend == backend {
			cut = append(cut, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range cut {
		pc.close(&p.stats.Cut)
	}
	return len(cut)
}

// Stats returns the counts so far.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut("")
}
