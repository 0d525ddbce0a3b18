// Command writebench measures what fencing adds to a write, end to end,
// through a real kube-apiserver: the same ConfigMap updates with no
// admission, with leasefence (strong and cached Lease reads), and with a
// ValidatingAdmissionPolicy that compares the stamp with its Lease param
// (CEL has no clock, so that policy cannot judge expiry, and its params come
// from the API server's informer cache: see docs/benchmarks.md).
//
//	go run ./cmd/writebench [-n 300] [-workers 1,8] [-rounds 5] [-reads 200] [-alt BUILD]
//
// Every mode has a namespace of its own (its Lease, its protected
// ConfigMaps, its webhook configuration or policy binding), and all of them
// are installed at once, so the modes are measured interleaved: each round
// runs a slice of every mode's writes, in an order that rotates from round
// to round, and neighbours on a shared machine weigh on every mode alike.
// The ratios against no admission and against the policy are printed from
// the same run. For each mode it also prints where a write's time goes, as
// means from the API server's and the webhook's own metrics (the webhook
// call as the API server times it, the webhook's own time, the Lease read as
// the webhook times it and as the API server serves it, etcd's part).
//
// -reads N then measures the ways to read a Lease consistently, side by
// side, from a client-go client while ConfigMaps are written beside it (as
// fenced writes do): a quorum GET; a LIST of that one Lease by field
// selector with no resourceVersion (a consistent read the API server
// answers from its watch cache once the cache has caught up with etcd's
// current revision); and a read barrier shared by all Leases (a write to a
// barrier object, then waiting until the client's own watch delivers it).
//
// It needs LF_BUILD_DIR (the C build) and the Kubernetes binaries of
// e2e/build.sh (LF_KUBE_BIN_DIR, or the default cache).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

const (
	holder   = "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001"
	policyNm = "leasefence-stamp"
)

// mode is one way of admitting the writes, in its own namespace.
type mode struct {
	key    string // short name, and the namespace's suffix
	title  string
	source string // leasefence's --lease-source; "" for none and the policy
	build  string // the C build to run the webhook from; "" for LF_BUILD_DIR
	ns     string
	stamp  string
	wh     *harness.Webhook
	vwc    string // the webhook configuration's name
}

// sample is what one mode's writes at one number of writers gave, summed
// over the rounds.
type sample struct {
	lat     []time.Duration
	elapsed time.Duration
	// Deltas of the API server's and the webhook's metrics over the runs.
	metrics map[string]float64
}

func main() {
	n := flag.Int("n", 300, "updates per writer and mode at each number of writers")
	workersFlag := flag.String("workers", "1,8", "comma-separated numbers of concurrent writers")
	rounds := flag.Int("rounds", 5, "interleaved rounds (each runs n/rounds updates per writer of every mode)")
	reads := flag.Int("reads", 200, "Lease reads per alternative in the read comparison (0: skip it)")
	alt := flag.String("alt", "", "another C build folder: adds a mode running its webhook with the strong source, to compare a change side by side")
	flag.Parse()
	if err := run(*n, *workersFlag, *rounds, *reads, *alt); err != nil {
		fmt.Fprintln(os.Stderr, "writebench:", err)
		os.Exit(1)
	}
}

func run(n int, workersFlag string, rounds, reads int, alt string) error {
	var workers []int
	for _, f := range strings.Split(workersFlag, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			return fmt.Errorf("-workers: %q is not a positive number", f)
		}
		workers = append(workers, w)
	}
	if rounds < 1 || n < rounds {
		return fmt.Errorf("-rounds must be between 1 and -n")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "lf-writebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	c, err := cluster.Start(ctx, cluster.Options{Dir: dir + "/cp"})
	if err != nil {
		return err
	}
	defer c.Stop()
	maxW := 0
	for _, w := range workers {
		maxW = max(maxW, w)
	}
	modes := []*mode{
		{key: "none", title: "none"},
		{key: "policy", title: "ValidatingAdmissionPolicy"},
		{key: "strong", title: "leasefence kube", source: "kube"},
		{key: "cached", title: "leasefence kube-cached", source: "kube-cached"},
	}
	if alt != "" {
		modes = append(modes, &mode{key: "alt", title: "leasefence kube, -alt", source: "kube", build: alt})
	}
	for _, m := range modes {
		m.ns = "wb-" + m.key
		if err := setupMode(ctx, c, dir, m, maxW); err != nil {
			return fmt.Errorf("%s: %w", m.title, err)
		}
		if m.wh != nil {
			defer m.wh.Stop()
		}
	}

	fmt.Printf("machine: %d CPUs; API server, etcd, webhooks and writers share them; %s\n", runtime.NumCPU(), loadavg())
	results := map[string]map[int]*sample{}
	for _, m := range modes {
		results[m.key] = map[int]*sample{}
		for _, w := range workers {
			results[m.key][w] = &sample{metrics: map[string]float64{}}
		}
	}
	per := n / rounds
	for _, w := range workers {
		for r := 0; r < rounds; r++ {
			for i := range modes {
				m := modes[(i+r)%len(modes)]
				s := results[m.key][w]
				before, err := scrape(ctx, c, m)
				if err != nil {
					return err
				}
				t0 := time.Now()
				lat, err := updates(ctx, c, m.ns, w, per)
				s.elapsed += time.Since(t0)
				if err != nil {
					return fmt.Errorf("%s: %w", m.title, err)
				}
				s.lat = append(s.lat, lat...)
				after, err := scrape(ctx, c, m)
				if err != nil {
					return err
				}
				for k, v := range after {
					s.metrics[k] += v - before[k]
				}
			}
		}
	}
	fmt.Printf("after the writes: %s\n\n", loadavg())
	report(modes, workers, results)
	if reads > 0 {
		return compareReads(ctx, c, reads)
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	return "load average " + strings.Join(f[:3], " ")
}

// setupMode makes the mode's namespace, Lease (renewed every second, as a
// holder does, so the cached source sees it change as in a real cluster)
// and ConfigMaps, and installs its admission.
func setupMode(ctx context.Context, c *cluster.Cluster, dir string, m *mode, writers int) error {
	if _, err := c.CreateNamespace(ctx, m.ns, nil); err != nil {
		return err
	}
	leases := c.Client.CoordinationV1().Leases(m.ns)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ctrl"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](3600),
			LeaseTransitions: ptr.To[int32](3), AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	m.stamp = fmt.Sprintf("lf1:3:%s:%s", lease.UID, holder)
	// The renewals update from the copy they last wrote (no GET), so that
	// the API server's count of Lease GETs is the webhook's alone.
	go func(l *coordinationv1.Lease) {
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			t := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &t
			if next, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
				l = next
			} else if cur, err := leases.Get(ctx, "ctrl", metav1.GetOptions{}); err == nil {
				l = cur
			}
		}
	}(lease)
	for i := 0; i < writers; i++ {
		_, err := c.Client.CoreV1().ConfigMaps(m.ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Annotations: map[string]string{
				harness.AnnotationLease: "ctrl", harness.AnnotationStamp: m.stamp}},
			Data: map[string]string{"k": "0"},
		}, metav1.CreateOptions{FieldManager: m.stamp})
		if err != nil {
			return err
		}
	}
	switch {
	case m.key == "policy":
		return installPolicy(ctx, c, m.ns)
	case m.source != "":
		if m.build != "" {
			prev := os.Getenv(harness.BuildDirEnv)
			os.Setenv(harness.BuildDirEnv, m.build)
			defer os.Setenv(harness.BuildDirEnv, prev)
		}
		m.wh, err = harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: c, Dir: dir + "/" + m.key,
			LeaseSource: m.source, Args: []string{"-v", "0"}})
		if err != nil {
			return err
		}
		m.vwc = "fence-" + m.key + ".leasefence.io"
		if _, err := c.RegisterWebhook(ctx, cluster.Webhook{
			Name: m.vwc, Port: m.wh.Port, Path: "/validate", CABundle: m.wh.Certs.CAPEM,
			Rules:         []admissionregistrationv1.RuleWithOperations{harness.Rule("", "v1", "configmaps")},
			FailurePolicy: admissionregistrationv1.Fail, TimeoutSeconds: 3,
			MatchConditions: harness.MatchConditions(), NamespaceSelector: onlyNamespace(m.ns),
		}); err != nil {
			return err
		}
		return awaitRefusal(ctx, c, m.ns, "leasefence")
	}
	return nil
}

func onlyNamespace(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
}

// awaitRefusal waits until a dry-run update of cm-0 in ns with a wrong stamp
// is refused with a message containing want: the admission is in force.
func awaitRefusal(ctx context.Context, c *cluster.Cluster, ns, want string) error {
	return cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "cm-0", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		cm.Annotations[harness.AnnotationStamp] = "lf1:0:wrong:wrong"
		_, err = c.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{
			DryRun: []string{metav1.DryRunAll}, FieldManager: "lf1:0:wrong:wrong"})
		return err != nil && strings.Contains(err.Error(), want), fmt.Sprint(err), nil
	})
}

// installPolicy checks the same stamp with CEL against the Lease of ns as
// the policy's param, and waits until a wrong stamp is refused.
func installPolicy(ctx context.Context, c *cluster.Cluster, ns string) error {
	expr := `!has(object.metadata.annotations) || !('leasefence.io/lease' in object.metadata.annotations) || ` +
		`(has(object.metadata.annotations) && 'leasefence.io/stamp' in object.metadata.annotations && ` +
		`object.metadata.annotations['leasefence.io/stamp'] == 'lf1:' + string(params.spec.leaseTransitions) + ':' + ` +
		`params.metadata.uid + ':' + params.spec.holderIdentity)`
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyNm},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
						Resources: []string{"configmaps"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: expr, Message: "stale stamp"}},
		},
	}
	if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
		return err
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyNm},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyNm,
			ParamRef:          &admissionregistrationv1.ParamRef{Name: "ctrl", Namespace: ns, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources:    &admissionregistrationv1.MatchResources{NamespaceSelector: onlyNamespace(ns)},
		},
	}
	if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return err
	}
	return awaitRefusal(ctx, c, ns, "stale stamp")
}

// updates runs `workers` writers in ns, each updating its own ConfigMap n
// times (read-modify-write with the stored stamp, sent per request too), and
// returns every update's latency.
func updates(ctx context.Context, c *cluster.Cluster, ns string, workers, n int) ([]time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cms := c.Client.CoreV1().ConfigMaps(ns)
			cm, err := cms.Get(ctx, fmt.Sprintf("cm-%d", w), metav1.GetOptions{})
			lat := make([]time.Duration, 0, n)
			for i := 0; i < n && err == nil; i++ {
				cm.Data["k"] = strconv.Itoa(i)
				t0 := time.Now()
				cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: cm.Annotations[harness.AnnotationStamp]})
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(w)
	}
	wg.Wait()
	return all, firstErr
}

// series names the histogram sums and counts the breakdown reads.
var series = []struct {
	key, name string
	labels    func(m *mode) map[string]string
	webhook   bool // from the webhook's /metrics rather than the API server's
}{
	{"put", "apiserver_request_duration_seconds", func(m *mode) map[string]string {
		return map[string]string{"verb": "PUT", "resource": "configmaps"}
	}, false},
	{"call", "apiserver_admission_webhook_admission_duration_seconds", func(m *mode) map[string]string {
		return map[string]string{"name": m.vwc}
	}, false},
	{"validate", "apiserver_admission_step_admission_duration_seconds", func(m *mode) map[string]string {
		return map[string]string{"type": "validate"}
	}, false},
	{"leaseget", "apiserver_request_duration_seconds", func(m *mode) map[string]string {
		return map[string]string{"verb": "GET", "resource": "leases"}
	}, false},
	{"etcdget", "etcd_request_duration_seconds", func(m *mode) map[string]string {
		return map[string]string{"operation": "get", "group": "coordination.k8s.io", "resource": "leases"}
	}, false},
	{"server", "leasefence_request_duration_seconds", nil, true},
	{"read", "leasefence_lease_read_duration_seconds", nil, true},
}

// scrape reads the sums and counts of the series above (each as key+"_sum"
// and key+"_count").
func scrape(ctx context.Context, c *cluster.Cluster, m *mode) (map[string]float64, error) {
	api, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server /metrics: %w", err)
	}
	var wh string
	if m.wh != nil {
		if wh, err = m.wh.Metrics(ctx); err != nil {
			return nil, err
		}
	}
	out := map[string]float64{}
	if m.wh != nil {
		// Connections the API server opened to the webhook: with keep-alive
		// working, a handful for the whole run.
		if out["accepted"], err = harness.ParseCounter(wh, "leasefence_connections_accepted_total", nil); err != nil {
			return nil, err
		}
	}
	for _, s := range series {
		text := string(api)
		var labels map[string]string
		if s.webhook {
			if m.wh == nil {
				continue
			}
			text = wh
		} else {
			labels = s.labels(m)
		}
		for _, part := range []string{"_sum", "_count"} {
			v, err := harness.ParseCounter(text, s.name+part, labels)
			if err != nil {
				return nil, err
			}
			out[s.key+part] = v
		}
	}
	return out, nil
}

func report(modes []*mode, workers []int, results map[string]map[int]*sample) {
	fmt.Printf("%-26s %7s %9s %8s %8s %8s %11s %11s %11s %11s\n", "admission", "writers", "writes/s", "p50_ms",
		"p99_ms", "mean_ms", "p50/none", "p50/policy", "rate/none", "rate/policy")
	for _, w := range workers {
		none, pol := results["none"][w], results["policy"][w]
		for _, m := range modes {
			s := results[m.key][w]
			fmt.Printf("%-26s %7d %9.0f %8.2f %8.2f %8.2f %11.2f %11.2f %11.2f %11.2f\n", m.title, w, rate(s),
				pct(s.lat, 50), pct(s.lat, 99), mean(s.lat), pct(s.lat, 50)/pct(none.lat, 50),
				pct(s.lat, 50)/pct(pol.lat, 50), rate(s)/rate(none), rate(s)/rate(pol))
		}
	}
	fmt.Printf("\nwhere a write's time goes (means in ms per write, from the API server's and the webhook's metrics):\n")
	fmt.Printf("%-26s %7s %8s %8s %9s %9s %9s %9s %9s %9s %10s %10s\n", "admission", "writers", "client", "apiPUT",
		"validate", "whCall", "whServer", "leaseRead", "apiGET", "etcdGET", "reads/wr", "conns/wr")
	for _, w := range workers {
		for _, m := range modes {
			s := results[m.key][w]
			writes := float64(len(s.lat))
			per := func(key string) string {
				cnt := s.metrics[key+"_count"]
				if cnt == 0 {
					return "-"
				}
				return fmt.Sprintf("%.3f", 1000*s.metrics[key+"_sum"]/cnt)
			}
			readsPer, connsPer := "-", "-"
			if m.wh != nil {
				readsPer = fmt.Sprintf("%.3f", s.metrics["read_count"]/writes)
				connsPer = fmt.Sprintf("%.4f", s.metrics["accepted"]/writes)
			}
			get, etcd := "-", "-"
			if m.source != "" {
				get, etcd = per("leaseget"), per("etcdget")
			}
			fmt.Printf("%-26s %7d %8.3f %8s %9s %9s %9s %9s %9s %9s %10s %10s\n", m.title, w, mean(s.lat), per("put"),
				per("validate"), per("call"), per("server"), per("read"), get, etcd, readsPer, connsPer)
		}
	}
}

func rate(s *sample) float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(len(s.lat)) / s.elapsed.Seconds()
}

// compareReads measures the ways of reading a Lease consistently, side by
// side and interleaved, first on a quiet API server and then while another
// client updates a ConfigMap in a loop (every fenced write is such an
// update, and it moves etcd's revision past the Leases' own).
func compareReads(ctx context.Context, c *cluster.Cluster, n int) error {
	const ns = "wb-reads"
	if _, err := c.CreateNamespace(ctx, ns, nil); err != nil {
		return err
	}
	leases := c.Client.CoordinationV1().Leases(ns)
	for _, name := range []string{"ctrl", "barrier"} {
		if _, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "churn"}},
		metav1.CreateOptions{}); err != nil {
		return err
	}
	// The barrier's watch: every Lease of the namespace, as the webhook's
	// cache would watch them; seen holds the highest resourceVersion
	// delivered.
	list, err := leases.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	wi, err := leases.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		return err
	}
	defer wi.Stop()
	var seenMu sync.Mutex
	seenCond := sync.NewCond(&seenMu)
	var seen int64
	go func() {
		for ev := range wi.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && ev.Type != watch.Error {
				rv, _ := strconv.ParseInt(l.ResourceVersion, 10, 64)
				seenMu.Lock()
				seen = max(seen, rv)
				seenCond.Broadcast()
				seenMu.Unlock()
			}
		}
	}()
	alts := []struct {
		name string
		read func(i int) error
	}{
		{"quorum GET", func(int) error {
			_, err := leases.Get(ctx, "ctrl", metav1.GetOptions{})
			return err
		}},
		{"consistent LIST, one Lease", func(int) error {
			l, err := leases.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=ctrl"})
			if err == nil && len(l.Items) != 1 {
				err = fmt.Errorf("LIST found %d Leases", len(l.Items))
			}
			return err
		}},
		{"barrier: write, own watch", func(i int) error {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"barrier":"%d"}}}`, i)
			l, err := leases.Patch(ctx, "barrier", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
			if err != nil {
				return err
			}
			want, _ := strconv.ParseInt(l.ResourceVersion, 10, 64)
			seenMu.Lock()
			defer seenMu.Unlock()
			for seen < want {
				seenCond.Wait()
			}
			return nil
		}},
	}
	fmt.Printf("\nconsistent Lease reads from a client-go client (HTTP/2, JSON), interleaved, %d each:\n", n)
	fmt.Printf("%-28s %-16s %8s %8s %8s %8s %9s\n", "read", "beside", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "p50/GET")
	for _, churn := range []bool{false, true} {
		cctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		beside := "nothing"
		if churn {
			beside = "ConfigMap writes"
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; cctx.Err() == nil; i++ {
					_, _ = c.Client.CoreV1().ConfigMaps(ns).Patch(cctx, "churn", "application/merge-patch+json",
						[]byte(fmt.Sprintf(`{"data":{"k":"%d"}}`, i)), metav1.PatchOptions{})
				}
			}()
		}
		lat := make([][]time.Duration, len(alts))
		for i := 0; i < n; i++ {
			for j := range alts {
				a := alts[(i+j)%len(alts)]
				t0 := time.Now()
				if err := a.read(i); err != nil {
					stop()
					wg.Wait()
					return fmt.Errorf("%s: %w", a.name, err)
				}
				lat[(i+j)%len(alts)] = append(lat[(i+j)%len(alts)], time.Since(t0))
			}
		}
		stop()
		wg.Wait()
		for j, a := range alts {
			fmt.Printf("%-28s %-16s %8.2f %8.2f %8.2f %8.2f %9.2f\n", a.name, beside, pct(lat[j], 50), pct(lat[j], 90),
				pct(lat[j], 99), mean(lat[j]), pct(lat[j], 50)/pct(lat[0], 50))
		}
	}
	fmt.Printf("after the reads: %s\n", loadavg())
	return nil
}

func pct(d []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return float64(s[int(float64(len(s)-1)*p/100)].Microseconds()) / 1000
}

func mean(d []time.Duration) float64 {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	if len(d) == 0 {
		return 0
	}
	return float64(t.Microseconds()) / 1000 / float64(len(d))
}
