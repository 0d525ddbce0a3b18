package harness_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// backend answers each connection with its name and a newline, then echoes.
func backend(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.WriteString(c, name+"\n"); err == nil {
					_, _ = io.Copy(c, c)
				}
			}()
		}
	}()
	return ln
}

// via connects through p and returns the connection and the backend's name.
func via(t *testing.T, p *harness.Proxy) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer through the proxy: %v", err)
	}
	return c, name[:len(name)-1]
}

// TestProxy: connections go to the backends in turn; a backend that refuses
// is skipped; Cut closes the open connections to one backend only;
// SetBackends swaps a backend in.
func TestProxy(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	defer a.Close()
	defer b.Close()
	p, err := harness.NewProxy(a.Addr().String(), b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	seen := map[string]int{}
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		c, name := via(t, p)
		conns = append(conns, c)
		seen[name]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("four connections went to %v, want two each", seen)
	}
	if n := p.Cut(b.Addr().String()); n != 2 {
		t.Errorf("Cut(b) closed %d connections, want 2", n)
	}
	for _, c := range conns {
		c.Close()
	}
	// Every connection is counted once its two copies have ended.
	want := harness.ProxyStats{Accepted: 4, Cut: 2, EndedByClient: 2}
	if err := cluster.Poll(context.Background(), 5*time.Second, 5*time.Millisecond, func(context.Context) (bool, string, error) {
		st := p.Stats()
		return st == want, fmt.Sprintf("stats %+v, want %+v", st, want), nil
	}); err != nil {
		t.Error(err)
	}

	b.Close() // refuses from now on
	for i := 0; i < 3; i++ {
		c, name := via(t, p)
		c.Close()
		if name != "a" {
			t.Errorf("with b refusing, a connection went to %q", name)
		}
	}
	c2 := backend(t, "c")
	defer c2.Close()
	p.SetBackends(c2.Addr().String())
	c, name := via(t, p)
	c.Close()
	if name != "c" {
		t.Errorf("after SetBackends(c), a connection went to %q", name)
	}
}
