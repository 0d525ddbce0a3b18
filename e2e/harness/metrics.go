package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"leasefence.io/e2e/cluster"
)

// Metrics fetches the webhook's /metrics (Prometheus text format).
func (w *Webhook) Metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.HealthURL("/metrics"), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("/metrics: %d %s", resp.StatusCode, body)
	}
	return string(body), nil
}

// Counter scrapes /metrics and returns the sum of the series of name whose
// labels include every pair in labels (nil: all series of name). A series
// that has not counted anything yet is absent, which reads as 0.
func (w *Webhook) Counter(ctx context.Context, name string, labels map[string]string) (float64, error) {
	text, err := w.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	return ParseCounter(text, name, labels)
}

// Requests is Counter of leasefence_requests_total: the reviews the webhook
// answered.
func (w *Webhook) Requests(ctx context.Context, labels map[string]string) (float64, error) {
	return w.Counter(ctx, "leasefence_requests_total", labels)
}

// CounterWait bounds WaitCounter: a review is counted within milliseconds of
// its answer, so seconds only matter on a starved machine.
const CounterWait = 10 * time.Second

// WaitCounter waits until Counter(name, labels) is at least n and returns it.
// The webhook counts a review when its connection reports the request
// complete, a moment after the answer went out: a client whose write has just
// returned can still read the old count, so a test awaits the count instead
// of reading it once. It fails after CounterWait, naming the last count.
func (w *Webhook) WaitCounter(ctx context.Context, name string, labels map[string]string, n float64) (float64, error) {
	var got float64
	err := cluster.Poll(ctx, CounterWait, 10*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		var err error
		got, err = w.Counter(ctx, name, labels)
		return err == nil && got >= n, fmt.Sprintf("%s%v = %v (%v), want at least %v", name, labels, got, err, n), nil
	})
	return got, err
}

// WaitRequests is WaitCounter of leasefence_requests_total.
func (w *Webhook) WaitRequests(ctx context.Context, labels map[string]string, n float64) (float64, error) {
	return w.WaitCounter(ctx, "leasefence_requests_total", labels, n)
}

// ParseCounter sums, in Prometheus text exposition, the samples of name whose
// labels include labels.
func ParseCounter(text, name string, labels map[string]string) (float64, error) {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var got map[string]string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				return 0, fmt.Errorf("bad metrics line %q", line)
			}
			var err error
			if got, err = parseLabels(rest[1:end]); err != nil {
				return 0, fmt.Errorf("bad metrics line %q: %w", line, err)
			}
			rest = rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric whose name starts with name
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("bad metrics line %q: %w", line, err)
		}
		match := true
		for k, want := range labels {
			if got[k] != want {
				match = false
				break
			}
		}
		if match {
			sum += v
		}
	}
	return sum, nil
}

// parseLabels reads a="x",b="y" with the format's escapes (\\, \", \n).
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("label syntax at %q", s)
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated label value in %q", s)
		}
		out[key] = val.String()
		s = strings.TrimLeft(s[i+1:], ", ")
	}
	return out, nil
}
