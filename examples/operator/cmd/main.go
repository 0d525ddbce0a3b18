// Command operator is leasefence's example operator, laid out as kubebuilder
// scaffolds one: a manager with leader election and one reconciler
// (internal/controller) that keeps a summary ConfigMap for each input
// ConfigMap. The summaries are protected by the manager's own Lease; the one
// leasefence change to this file is crfencing.NewManager in place of
// ctrl.NewManager, after which every write of the reconciler is stamped.
//
// With --fencing=identity the operator is the unchanged kubebuilder one:
// ctrl.NewManager, controller-runtime's own leader election and identity
// ("<hostname>_<uuid>"), no stamps; the summaries' protection reads
// "identity:<namespace>/<lease>", and the webhook admits the writes of the
// pod that holds the Lease (docs/protocol.md, section 7a).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"leasefence.io/examples/operator/internal/controller"
	fencing "leasefence.io/fencing/go"
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
	var metricsAddr, probeAddr, leaseNamespace, leaseID, watchNamespace, fencingMode string
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to (0 disables it).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to (0 disables it).")
	flag.StringVar(&leaseNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's).")
	flag.StringVar(&leaseID, "leader-election-id", "summary.example.leasefence.io", "Name of the leader-election Lease.")
	flag.StringVar(&watchNamespace, "watch-namespace", "", "Only watch this namespace (default: all).")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second, "Lease duration.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "Renew deadline.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "Retry period.")
	flag.StringVar(&fencingMode, "fencing", "stamp", "How the summaries are fenced: stamp (every write stamped through crfencing) or identity (no stamps: the webhook binds the writer's pod to the Lease's holder).")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	var cacheOpts cache.Options
	if watchNamespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	options := ctrl.Options{
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
	}
	var mgr manager.Manager
	var protection string
	var err error
	switch fencingMode {
	case "stamp":
		// leasefence: crfencing.NewManager in place of ctrl.NewManager. The
		// manager elects on a fencing Lock and its client stamps every
		// write to a protected object. Leader election is required.
		var fence *crfencing.Fence
		mgr, fence, err = crfencing.NewManager(ctrl.GetConfigOrDie(), options)
		if err == nil {
			protection = fence.Lock().Describe() // the summaries are guarded by this manager's Lease
			setupLog.Info("starting manager", "identity", fence.Lock().Identity(), "lease", protection)
		}
	case "identity":
		// No leasefence code: controller-runtime's manager as kubebuilder
		// scaffolds it. Only the summaries' protection names the mode.
		mgr, err = ctrl.NewManager(ctrl.GetConfigOrDie(), options)
		if err == nil {
			protection, err = identityProtection(leaseNamespace, leaseID)
		}
		if err == nil {
			setupLog.Info("starting manager", "lease", protection)
		}
	default:
		err = fmt.Errorf("--fencing=%q: want stamp or identity", fencingMode)
	}
	if err != nil {
		setupLog.Error(err, "unable to start manager")
		os.Exit(1)
	}

	if err := (&controller.SummaryReconciler{
		Client: mgr.GetClient(),
		Scheme: mgr.GetScheme(),
		Lease:  protection,
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

	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// identityProtection gives the summaries' protection annotation for
// identity fencing: "identity:<namespace>/<lease>", the namespace being
// controller-runtime's default for the Lease, the pod's own, when
// --leader-election-namespace is not given.
func identityProtection(namespace, lease string) (string, error) {
	if namespace == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return "", errors.New("not running in a pod: set --leader-election-namespace")
		}
		namespace = strings.TrimSpace(string(b))
	}
	p, err := fencing.ParseProtection("identity:"+namespace+"/"+lease, "")
	if err != nil {
		return "", err
	}
	return p.String(), nil
}
