// Command writebench measures what fencing adds to a write, end to end,
// through a real kube-apiserver: the same ConfigMap updates with no
// admission, with leasefence (strong and cached Lease reads), and with a
// ValidatingAdmissionPolicy that compares the stamp with its Lease param
// (CEL has no clock, so that policy cannot judge expiry, and its params come
// from the API server's informer cache: see docs/benchmarks.md).
//
//	go run ./cmd/writebench [-n 500] [-workers 1,8]
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
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

const (
	ns       = "bench"
	holder   = "ctrl-a_aaaaaaaa-0000-4000-8000-000000000001"
	policyNm = "leasefence-stamp"
)

func main() {
	n := flag.Int("n", 400, "updates per worker in each run")
	workersFlag := flag.String("workers", "1,8", "comma-separated numbers of concurrent writers")
	flag.Parse()
	if err := run(*n, *workersFlag); err != nil {
		fmt.Fprintln(os.Stderr, "writebench:", err)
		os.Exit(1)
	}
}

func run(n int, workersFlag string) error {
	var workers []int
	for _, f := range strings.Split(workersFlag, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			return fmt.Errorf("-workers: %q is not a positive number", f)
		}
		workers = append(workers, w)
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
	if _, err := c.CreateNamespace(ctx, ns, nil); err != nil {
		return err
	}
	now := metav1.NewMicroTime(time.Now())
	lease, err := c.Client.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ctrl"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](3600),
			LeaseTransitions: ptr.To[int32](3), AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	stamp := fmt.Sprintf("lf1:3:%s:%s", lease.UID, holder)
	// Renew the Lease every second, as a holder does (every retryPeriod), so
	// the cached source sees it change as in a real cluster.
	go func() {
		for ctx.Err() == nil {
			l, err := c.Client.CoordinationV1().Leases(ns).Get(ctx, "ctrl", metav1.GetOptions{})
			if err == nil {
				t := metav1.NewMicroTime(time.Now())
				l.Spec.RenewTime = &t
				_, _ = c.Client.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{})
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	maxW := 0
	for _, w := range workers {
		maxW = max(maxW, w)
	}
	for i := 0; i < maxW; i++ {
		_, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Annotations: map[string]string{
				harness.AnnotationLease: "ctrl", harness.AnnotationStamp: stamp}},
			Data: map[string]string{"k": "0"},
		}, metav1.CreateOptions{FieldManager: stamp})
		if err != nil {
			return err
		}
	}

	fmt.Printf("machine: %d CPUs; API server, etcd, webhook and writers share them\n", runtime.NumCPU())
	fmt.Printf("%-24s %8s %10s %9s %9s %9s\n", "admission", "writers", "writes/s", "p50_ms", "p99_ms", "mean_ms")
	measure := func(name string) error {
		for _, w := range workers {
			lat, rate, err := updates(ctx, c, w, n)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Printf("%-24s %8d %10.0f %9.2f %9.2f %9.2f\n", name, w, rate, pct(lat, 50), pct(lat, 99), mean(lat))
		}
		return nil
	}

	if err := measure("none"); err != nil {
		return err
	}
	for _, source := range []string{"kube", "kube-cached"} {
		wh, err := harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: c, Dir: dir + "/" + source,
			LeaseSource: source, Args: []string{"-v", "0"}})
		if err != nil {
			return err
		}
		if err := harness.Register(ctx, c, wh); err != nil {
			wh.Stop()
			return err
		}
		err = measure("leasefence " + source)
		reads, _ := wh.Counter(ctx, "leasefence_lease_reads_total", map[string]string{"result": "ok"})
		reqs, _ := wh.Requests(ctx, map[string]string{"reason": "Current"})
		fmt.Printf("%-24s Lease GETs %.0f for %.0f admitted writes\n", "", reads, reqs)
		_ = harness.Unregister(ctx, c)
		wh.Stop()
		if err != nil {
			return err
		}
	}
	if err := installPolicy(ctx, c); err != nil {
		return err
	}
	return measure("ValidatingAdmissionPolicy")
}

// installPolicy checks the same stamp with CEL against the Lease as the
// policy's param, and waits until a wrong stamp is refused.
func installPolicy(ctx context.Context, c *cluster.Cluster) error {
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
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return err
	}
	return cluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "cm-0", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		cm.Annotations[harness.AnnotationStamp] = "lf1:0:wrong:wrong"
		_, err = c.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "stale stamp"), fmt.Sprint(err), nil
	})
}

// updates runs `workers` writers, each updating its own ConfigMap n times
// (read-modify-write with the stored stamp), and returns every update's
// latency and the total rate.
func updates(ctx context.Context, c *cluster.Cluster, workers, n int) ([]time.Duration, float64, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
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
				// The stamp per request, as the controller's writes carry it.
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
	return all, float64(len(all)) / time.Since(start).Seconds(), firstErr
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
