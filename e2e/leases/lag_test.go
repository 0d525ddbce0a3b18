package leases

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"leasefence.io/e2e/cluster"
)

// ---------------------------------------------------------------------------
// A lagging proxy between the webhook and the API server
//
// TLS ends here (the proxy has a certificate of its own, which the
// webhook's kubeconfig trusts) and requests go on to the API server with
// the webhook's own credentials. Every watch response opened while a lag is
// set reaches the webhook late: each piece of the stream, and its end, is
// passed on exactly `lag` after it arrived, in order. Every other request
// (the quorum GETs, the LIST) passes at once. So the webhook sees a watch
// that lags but keeps flowing, each copy freshly arrived and describing the
// Lease as it was `lag` ago. A TCP proxy cannot make this: the watch and
// the Lease GETs may share one connection.

type lagProxy struct {
	srv       *httptest.Server
	lag       atomic.Int64 // nanoseconds; 0: watches pass at once
	lagged    atomic.Int64 // watch streams opened with a lag
	delivered atomic.Int64 // bytes of lagged streams passed on
}

func newLagProxy(t *testing.T) *lagProxy {
	t.Helper()
	target, err := url.Parse(c.Host)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CACertPEM)
	p := &lagProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	rp.FlushInterval = -1 // pass each piece on as soon as it is due
	rp.ModifyResponse = func(r *http.Response) error {
		w := r.Request.URL.Query().Get("watch")
		lag := time.Duration(p.lag.Load())
		if (w == "1" || w == "true") && lag > 0 {
			p.lagged.Add(1)
			r.Body = newLaggingBody(r.Body, lag, &p.delivered)
		}
		return nil
	}
	p.srv = httptest.NewTLSServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *lagProxy) URL() string { return p.srv.URL }

func (p *lagProxy) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
}

// SetLag applies to watches opened from now on.
func (p *lagProxy) SetLag(d time.Duration) { p.lag.Store(int64(d)) }

// awaitLagged waits until a watch opened since SetLag delivers through the
// lag (the one open before it ends within the server's 5 s period).
func (p *lagProxy) awaitLagged(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := cluster.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		return p.lagged.Load() > 0 && p.delivered.Load() > 0,
			fmt.Sprintf("lagged watches %d, bytes delivered late %d", p.lagged.Load(), p.delivered.Load()), nil
	}); err != nil {
		t.Fatalf("the webhook's watch never went through the lag: %v", err)
	}
}

type lagChunk struct {
	data []byte
	err  error
	due  time.Time
}

// laggingBody passes on what up delivers, each piece lag after it arrived.
type laggingBody struct {
	up        io.ReadCloser
	chunks    chan lagChunk
	cur       []byte
	delivered *atomic.Int64
	done      chan struct{}
	once      sync.Once
}

func newLaggingBody(up io.ReadCloser, lag time.Duration, delivered *atomic.Int64) *laggingBody {
	b := &laggingBody{up: up, chunks: make(chan lagChunk, 4096), delivered: delivered, done: make(chan struct{})}
	send := func(ch lagChunk) bool {
		select {
		case b.chunks <- ch:
			return true
		case <-b.done:
			return false
		}
	}
	go func() {
		for {
			buf := make([]byte, 32*1024)
			n, err := up.Read(buf)
			due := time.Now().Add(lag)
			if n > 0 && !send(lagChunk{data: buf[:n], due: due}) {
				return
			}
			if err != nil {
				send(lagChunk{err: err, due: due})
				return
			}
		}
	}()
	return b
}

func (b *laggingBody) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		var ch lagChunk
		select {
		case ch = <-b.chunks:
		case <-b.done:
			return 0, io.ErrClosedPipe
		}
		// The lag itself: this piece is due `lag` after it arrived.
		timer := time.NewTimer(time.Until(ch.due))
		select {
		case <-timer.C:
		case <-b.done:
			timer.Stop()
			return 0, io.ErrClosedPipe
		}
		if ch.err != nil {
			return 0, ch.err
		}
		b.cur = ch.data
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	b.delivered.Add(int64(n))
	return n, nil
}

func (b *laggingBody) Close() error {
	b.once.Do(func() { close(b.done) })
	return b.up.Close()
}

// TestCacheLaggingWatch: a watch that lags behind the API server but keeps
// flowing. Every copy of the Lease arrives fresh, yet describes the Lease as
// it was `lag` ago. The cache's promise (docs/protocol.md, section 5a) is
// that a Lease released and taken over, or deleted and re-created, is no
// longer decided on from the cache later than --cache-max-staleness after
// the change (plus the holder's clock lead, nil here: one machine), however
// long the watch's lag. The lag is set well beyond that bound, so a cache
// that judged its copies by when they arrived would keep admitting the old
// holder for about the whole lag. Afterwards, with the lag gone, the cache
// serves again.
func TestCacheLaggingWatch(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	const (
		ns         = "lag"
		bound      = time.Second // --cache-max-staleness
		renewEvery = 200 * time.Millisecond
		// The server ends each watch after 5 s; lagged, its end must still
		// reach the webhook before the webhook's own 8 s limit, so that the
		// lagged watches follow one another as a steady stream.
		lag = 2 * time.Second
		// The last admission is timed when its answer came back, a round
		// trip after the decision.
		slack = 300 * time.Millisecond
	)
	newNamespace(ctx, t, ns)
	p := newLagProxy(t)
	_, token := leaseReader(ctx, t, "lf-readers", "reader-lag")
	kc := kubeconfigWithCA(t, filepath.Join(t.TempDir(), "kubeconfig"), p.URL(), p.CAPEM(), "", &clientcmdapi.AuthInfo{Token: token})
	wh := startWebhook(ctx, t, "kube-cached", "--kubeconfig", kc, "--cache-max-staleness="+bound.String())
	register(ctx, t, wh)
	a := newWriter(ctx, t, ns, "pod-a")
	b := newWriter(ctx, t, ns, "pod-b")

	l := setLease(ctx, t, ns, "ctrl", "pod-a_1", 0, time.Now())
	uid1 := l.UID
	stampA := stampOf(t, l)
	writeA := func(dryRun bool) error { return writeCM(ctx, a.Client, ns, "cm", "ctrl", stampA, "a", dryRun) }
	stop := keepRenewing(ctx, t, ns, "ctrl", renewEvery)
	waitCacheServes(ctx, t, wh, writeA)
	wantAdmitted(t, "the holder writes", writeA(false))

	// Lag every watch from now on, and wait until the webhook's watch is a
	// lagged one that delivers (the one open now ends within 5 s).
	p.SetLag(lag)
	p.awaitLagged(ctx, t)
	base := cacheLookups(ctx, t, wh)

	// Released (ReleaseOnCancel) and taken over by pod-b in term 1.
	stop()
	changed := time.Now()
	setLease(ctx, t, ns, "ctrl", "", 0, changed)
	l = setLease(ctx, t, ns, "ctrl", "pod-b_2", 1, time.Now())
	stampB := stampOf(t, l)
	stop = keepRenewing(ctx, t, ns, "ctrl", renewEvery)
	last, n := lastAdmission(ctx, t, changed, lag+time.Second, writeA, "LeaseReleased", "StaleTerm")
	t.Logf("released and taken over, watch %v behind: the old holder admitted %d times, the last answered %v after the release",
		lag, n, last.Round(time.Millisecond))
	if n > 0 && last > bound+slack {
		t.Errorf("the old holder was admitted %v after the release, beyond the %v bound", last, bound)
	}
	writeB := func(dryRun bool) error { return writeCM(ctx, b.Client, ns, "cm", "ctrl", stampB, "b", dryRun) }
	wantAdmitted(t, "the new holder writes, watch behind", writeB(true))

	// Deleted and re-created (a new uid; pod-a holds term 0 of it).
	stop()
	changed = time.Now()
	deleteLease(ctx, t, ns, "ctrl")
	l = setLease(ctx, t, ns, "ctrl", "pod-a_3", 0, time.Now())
	if l.UID == uid1 {
		t.Fatal("the re-created Lease kept its uid")
	}
	stop = keepRenewing(ctx, t, ns, "ctrl", renewEvery)
	last, n = lastAdmission(ctx, t, changed, lag+time.Second, writeB, "LeaseNotFound", "LeaseRecreated")
	t.Logf("deleted and re-created, watch %v behind: the old Lease's holder admitted %d times, the last answered %v after the delete",
		lag, n, last.Round(time.Millisecond))
	if n > 0 && last > bound+slack {
		t.Errorf("a stamp of the deleted Lease was admitted %v after the delete, beyond the %v bound", last, bound)
	}
	t.Logf("lookups while the watch lagged: %v", delta(cacheLookups(ctx, t, wh), base))

	// The lag gone, the cache serves the re-created Lease again.
	p.SetLag(0)
	stampA3 := stampOf(t, l)
	waitCacheServes(ctx, t, wh, func(dryRun bool) error { return writeCM(ctx, a.Client, ns, "cm", "ctrl", stampA3, "a3", dryRun) })
	stop()
}

// lastAdmission sends write (as a dry run) every 50 ms for window after
// since, and returns when the last admitted one's answer came back
// (measured from since) and how many were admitted. Every other answer must
// be a leasefence denial for one of reasons.
func lastAdmission(ctx context.Context, t *testing.T, since time.Time, window time.Duration, write func(bool) error, reasons ...string) (time.Duration, int) {
	t.Helper()
	var last time.Duration
	n := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Since(since) < window {
		err := write(true)
		answered := time.Since(since)
		switch {
		case err == nil:
			n++
			last = answered
		case !deniedFor(err, reasons):
			t.Fatalf("%v after the change: want admitted or denied for one of %v, got %v", answered, reasons, err)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
	return last, n
}

func deniedFor(err error, reasons []string) bool {
	for _, r := range reasons {
		if isDenial(err, r) {
			return true
		}
	}
	return false
}
