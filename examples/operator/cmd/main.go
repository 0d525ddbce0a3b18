// Command operator is leasefence's example operator, laid out as kubebuilder
// scaffolds one: a manager with leader election and one reconciler
// (internal/controller) that keeps a summary ConfigMap for each input
// ConfigMap. The summaries are protected by the manager's own Lease; the one
// leasefence change to this file is crfencing.NewManager in place of
// ctrl.NewManager, after which every write of the reconciler is stamped.
package main

import (
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"leasefence.io/examples/operator/internal/controller"
	"leasefence.io/fencing/go/crfencing"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
}

func main() {
	var metricsAddr, probeAddr, leaseNamespace, leaseID, watchNamespace string
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to (0 disables it).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to (0 disables it).")
	flag.StringVar(&leaseNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's).")
	flag.StringVar(&leaseID, "leader-election-id", "summary.example.leasefence.io", "Name of the leader-election Lease.")
	flag.StringVar(&watchNamespace, "watch-namespace", "", "Only watch this namespace (default: all).")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second, "Lease duration.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "Renew deadline.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "Retry period.")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	var cacheOpts cache.Options
	if watchNamespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	// leasefence: crfencing.NewManager in place of ctrl.NewManager. The
	// manager elects on a fencing Lock and its client stamps every write to
	// a protected object. Leader election is required.
	mgr, fence, err := crfencing.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          true,
		LeaderElectionID:        leaseID,
		LeaderElectionNamespace: leaseNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
	})
	if err != nil {
		setupLog.Error(err, "unable to start manager")
		os.Exit(1)
	}

	if err := (&controller.SummaryReconciler{
		Client: mgr.GetClient(),
		Scheme: mgr.GetScheme(),
		Lease:  fence.Lock().Describe(), // the summaries are guarded by this manager's Lease
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "summary")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager", "identity", fence.Lock().Identity(), "lease", fence.Lock().Describe())
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}
