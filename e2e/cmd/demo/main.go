// Command demo plays a real leader-election split brain twice on a real
// kube-apiserver — without leasefence, then with it — and tells what
// happened. demo.sh at the repository root builds what it needs and runs it.
//
// It needs LF_BUILD_DIR (the C build folder) and LF_KUBE_BIN_DIR (the
// Kubernetes binaries from e2e/build.sh), and must run inside e2e/ (it
// builds cmd/elector). It exits 0 only when the outcome is the expected one:
// stale writes land without leasefence, and none land with it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// t0 is the start of the run being told; times are shown relative to it.
var t0 = time.Now()

// rel formats t relative to t0.
func rel(t time.Time) string { return fmt.Sprintf("%+7.2fs", t.Sub(t0).Seconds()) }

func main() {
	os.Exit(run())
}

func run() int {
	// client-go's own chatter (warnings, retries) is not part of the story.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	keep := len(os.Args) > 1 && os.Args[1] == "--keep"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interrupted = ctx.Done()

	dir, err := os.MkdirTemp("", "leasefence-demo-")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if keep {
			fmt.Printf("\nlogs kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if _, err := harness.BuildDir(); err != nil {
		return fail(err)
	}

	fmt.Println("leasefence demo: a leader-election split brain on a real kube-apiserver, without and with leasefence")
	fmt.Println()
	electorBin, err := harness.BuildElector(dir)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	cp, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		return fail(err)
	}
	defer cp.Stop()
	info(fmt.Sprintf("kube-apiserver v1.36.3 and etcd on %s (ready in %.1fs)", cp.Host, time.Since(start).Seconds()))
	wh, err := harness.StartWebhook(ctx, harness.WebhookOptions{
		Cluster: cp, Dir: filepath.Join(dir, "webhook"),
		// Same host clock for everyone, and 4 s Leases: see e2e/fencing.
		Args: []string{"--clock-skew-tolerance=500ms"},
	})
	if err != nil {
		return fail(err)
	}
	defer wh.Stop()
	info(fmt.Sprintf("leasefence-webhook on 127.0.0.1:%d, reading Leases with its own service account (get/list/watch leases only)", wh.Port))
	info("two replicas of a controller, ctrl-a and ctrl-b, each a separate process with its own pod identity:")
	info("client-go leader election on Lease ctrl (duration 4s, renew deadline 3s, retry 500ms); the leader")
	info("writes ConfigMap shard-map every 250 ms. Run 2 runs it unchanged (no leasefence call, the")
	info("ConfigMap fenced by identity: leasefence.io/lease: identity:<lease>); run 3 stamps each write")
	info("with its term (leaseTransitions), the stronger path (docs/protocol.md, section 7a).")

	runs := []struct {
		ns      string
		title   string
		fenced  bool
		args    []string // the electors'
		outcome func(*harness.SplitBrainResult) (string, bool)
	}{
		{"demo-without", "without leasefence", false, nil, unfencedOutcome},
		{"demo-identity", "with leasefence, the controller unchanged (fenced by identity, no stamps)", true,
			[]string{"--no-stamp", "--fencing=identity"}, fencedOutcome("with leasefence, fenced by identity")},
		{"demo-with", "with leasefence, the controller stamping its writes", true, nil,
			fencedOutcome("with leasefence, stamped")},
	}
	ok := true
	var finals []string
	for i, r := range runs {
		fmt.Printf("\n== run %d: %s\n", i+1, r.title)
		if r.fenced && i > 0 && runs[i-1].fenced {
			fmt.Println("   (webhook still registered)")
		} else if r.fenced {
			if err := harness.Register(ctx, cp, wh); err != nil {
				return fail(err)
			}
			fmt.Println("   (webhook registered: writes to objects annotated leasefence.io/lease go through it)")
		} else {
			fmt.Println("   (no webhook registered)")
		}
		fmt.Println()
		res, err := harness.SplitBrain(ctx, harness.SplitBrainOptions{
			Cluster: cp, ElectorBn: electorBin, Dir: dir, Namespace: r.ns, ElectorArgs: r.args,
		})
		if err != nil {
			return fail(err)
		}
		t0 = res.Start
		printTimeline(res)
		line, good := r.outcome(res)
		mark := "ok"
		if !good {
			mark = "UNEXPECTED"
			ok = false
		}
		fmt.Printf("\n   %s  [%s]\n", line, mark)
		finals = append(finals, line)
	}

	fmt.Println("\n== summary")
	for _, f := range finals {
		fmt.Println("   " + f)
	}
	if err := wh.Stop(); err != nil {
		return fail(err)
	}
	if err := cp.Stop(); err != nil {
		return fail(err)
	}
	if !ok {
		fmt.Println("\nthe outcome was not the expected one")
		return 1
	}
	return 0
}

func info(s string) { fmt.Println("   " + s) }

// interrupted is closed on Ctrl-C or SIGTERM; the deferred stops then end
// every process the demo started.
var interrupted <-chan struct{}

func fail(err error) int {
	select {
	case <-interrupted:
		err = context.Canceled
	default:
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "\ninterrupted; everything stopped")
		return 130
	}
	fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
	return 1
}

// short turns "ctrl-a_0a80b1ae-..." into "ctrl-a".
func short(identity string) string {
	if i := strings.IndexByte(identity, '_'); i > 0 {
		return identity[:i]
	}
	return identity
}

var reasonRE = regexp.MustCompile(`\(([A-Za-z]+)\):`)

func reason(msg string) string {
	if m := reasonRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return "?"
}

type event struct {
	at   time.Time
	who  string
	text string
	more string // printed indented below, wrapped
}

// printTimeline merges the Lease's history, both electors' logs and the
// harness's own actions into one account, folding runs of ordinary writes.
func printTimeline(r *harness.SplitBrainResult) {
	var evs []event
	add := func(at time.Time, who, text, more string) { evs = append(evs, event{at, who, text, more}) }

	prevHolder, prevTerm := "", int32(-1)
	for _, l := range r.History {
		if l.Holder != prevHolder || l.Term != prevTerm {
			// acquireTime is the new holder's clock just before it wrote the
			// record, which places the change before its own log lines.
			at := l.Observed
			if !l.AcquireTime.IsZero() && l.AcquireTime.Before(at) {
				at = l.AcquireTime
			}
			add(at, "Lease", fmt.Sprintf("held by %s, term %d", short(l.Holder), l.Term), "")
			prevHolder, prevTerm = l.Holder, l.Term
		}
	}
	add(r.PausedAt, "ctrl-a", "paused (SIGSTOP): no renewals, no writes, still believes it leads", "")
	add(r.ResumedAt, "ctrl-a", "resumed (SIGCONT): sends its in-flight writes at once", "")

	for _, e := range []*harness.Elector{r.A, r.B} {
		lines, _ := e.Lines()
		var run []harness.ElectorLine // a fold of consecutive alike writes
		flush := func() {
			if len(run) == 0 {
				return
			}
			f, l := run[0], run[len(run)-1]
			text := fmt.Sprintf("%d writes admitted (term %d), %s .. %s", len(run), *f.Term, strings.TrimSpace(rel(f.Time)), strings.TrimSpace(rel(l.Time)))
			if len(run) == 1 {
				text = fmt.Sprintf("write admitted (term %d)", *f.Term)
			}
			add(f.Time, e.Pod, text, "")
			run = nil
		}
		for _, l := range lines {
			switch l.Event {
			case "started_leading":
				flush()
				add(l.Time, e.Pod, "started leading", "")
			case "stopped_leading":
				flush()
				add(l.Time, e.Pod, "stopped leading (its elector saw the Lease held by another)", "")
			case "write":
				stale := e == r.A && l.Time.After(r.ResumedAt)
				if len(run) > 0 && run[0].Time.Before(r.ResumedAt) && l.Time.After(r.ResumedAt) {
					flush() // fold the writes before and after the resume apart
				}
				if !stale && l.Result == "admitted" {
					run = append(run, l)
					continue
				}
				flush()
				tag := ""
				if stale {
					tag = "STALE "
				}
				switch l.Result {
				case "admitted":
					stored := "no stamp"
					if s, err := fencing.ParseStamp(l.Stored); err == nil {
						stored = fmt.Sprintf("stamp term %d", s.Term)
					}
					add(l.Time, e.Pod, fmt.Sprintf("%swrite ADMITTED (term %d) -> the object now says writer=%s, %s",
						tag, *l.Term, short(l.Writer), stored), "")
				case "denied":
					add(l.Time, e.Pod, fmt.Sprintf("%swrite denied (term %d): %s", tag, *l.Term, reason(l.Message)), l.Message)
				default:
					add(l.Time, e.Pod, fmt.Sprintf("%swrite failed (term %d): %d %s", tag, *l.Term, l.Code, l.Message), "")
				}
			}
		}
		flush()
	}
	// The Lease's own record first, then the harness's actions, then the
	// electors' lines: that is the causal order of events within a millisecond.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	shownMessage := false
	for _, e := range evs {
		fmt.Printf("   %s  %-7s %s\n", rel(e.at), e.who, e.text)
		// One denial message in full is enough to read; the rest say the same.
		if e.more != "" && !shownMessage {
			shownMessage = true
			for _, w := range wrap(e.more, 88) {
				fmt.Printf("   %s  %-7s   | %s\n", strings.Repeat(" ", 8), "", w)
			}
		}
	}
}

func wrap(s string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			out = append(out, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

func unfencedOutcome(r *harness.SplitBrainResult) (string, bool) {
	n := len(r.StaleAdmitted)
	line := fmt.Sprintf("without leasefence: %d stale write%s from ctrl-a landed in term %d after ctrl-b took over in term %d",
		n, plural(n), r.TermA, r.TermB)
	return line, n > 0
}

// fencedOutcome judges a run with the webhook; label starts its line.
func fencedOutcome(label string) func(*harness.SplitBrainResult) (string, bool) {
	return func(r *harness.SplitBrainResult) (string, bool) { return fenced(label, r) }
}

func fenced(label string, r *harness.SplitBrainResult) (string, bool) {
	reasons := map[string]int{}
	for _, w := range r.StaleDenied {
		reasons[reason(w.Message)]++
	}
	var rs []string
	for k, v := range reasons {
		rs = append(rs, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(rs)
	line := fmt.Sprintf("%s: %d stale writes landed; %d denied (%s)", label,
		len(r.StaleAdmitted), len(r.StaleDenied), strings.Join(rs, ", "))
	return line, len(r.StaleAdmitted) == 0 && len(r.StaleDenied) > 0 && len(r.StaleDenied) == len(r.StaleWrites)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
