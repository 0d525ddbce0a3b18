// Command lfcluster runs the e2e control plane (etcd and kube-apiserver on
// loopback), or with --full the fuller cluster (kube-controller-manager,
// kube-scheduler and kwok nodes too), until it is interrupted, for trying
// things by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"leasefence.io/e2e/cluster"
)

const usage = `lfcluster runs a local Kubernetes control plane (etcd + kube-apiserver)
on 127.0.0.1 for leasefence's tests and for trying things by hand.

Usage:
  lfcluster up --dir DIR [--bin-dir BIN] [--timeout 90s] [--full [--nodes N]]

up starts the control plane with its data, certificates and logs in DIR,
writes DIR/kubeconfig (cluster admin) and DIR/env (KUBECONFIG=...), prints
them, and runs until SIGINT or SIGTERM, then stops everything.

--full adds kube-controller-manager (its default controllers, each with its
own service-account credentials), kube-scheduler and N kwok nodes (default
1) that take Pods to Running and Ready; up returns once the nodes are Ready
and the controllers run (default --timeout then 180s).

  source DIR/env && kubectl get --raw /readyz

The binaries come from --bin-dir, else $LF_KUBE_BIN_DIR, else the folder
e2e/build.sh builds into for the current pins.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Print(usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	if os.Args[1] != "up" {
		fmt.Fprintf(os.Stderr, "lfcluster: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	dir := fs.String("dir", "", "folder for data, logs, kubeconfig and env (required)")
	binDir := fs.String("bin-dir", "", "folder holding kube-apiserver, etcd and kubectl")
	timeout := fs.Duration("timeout", 0, "how long to wait for the cluster to be ready (default 90s, 180s with --full)")
	full := fs.Bool("full", false, "also run kube-controller-manager, kube-scheduler and kwok nodes")
	nodes := fs.Int("nodes", 1, "kwok nodes with --full")
	if err := fs.Parse(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if *dir == "" {
		fmt.Fprintf(os.Stderr, "lfcluster up: --dir is required\n\n%s", usage)
		os.Exit(2)
	}
	if *nodes < 1 {
		fmt.Fprintf(os.Stderr, "lfcluster up: --nodes must be at least 1\n")
		os.Exit(2)
	}
	opts := cluster.Options{Dir: *dir, BinDir: *binDir, StartTimeout: *timeout, Full: *full, Nodes: *nodes}
	if err := up(opts); err != nil {
		fmt.Fprintf(os.Stderr, "lfcluster: %v\n", err)
		os.Exit(1)
	}
}

func up(opts cluster.Options) error {
	// Catch signals before starting, so an early Ctrl-C still stops cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	c, err := cluster.Start(context.Background(), opts)
	if err != nil {
		return err
	}
	envPath := filepath.Join(c.Dir, "env")
	env := fmt.Sprintf("KUBECONFIG=%s\nexport KUBECONFIG\n", c.KubeconfigPath)
	if err := os.WriteFile(envPath, []byte(env), 0o644); err != nil {
		c.Stop()
		return err
	}
	etcdPID, apiPID := c.PIDs()
	fmt.Printf("control plane ready at %s\n", c.Host)
	fmt.Printf("kubeconfig: %s\n", c.KubeconfigPath)
	fmt.Printf("env:        %s   (source it, then use %s)\n", envPath, c.KubectlPath())
	fmt.Printf("logs:       %s  %s\n", c.APIServerLog, c.EtcdLog)
	fmt.Printf("pids:       etcd %d, kube-apiserver %d\n", etcdPID, apiPID)
	if opts.Full {
		pids := c.FullPIDs()
		fmt.Printf("nodes:      %s\n", strings.Join(c.Nodes, " "))
		fmt.Printf("more logs:  %s  %s  %s\n", c.ControllerManagerLog, c.SchedulerLog, c.KwokLog)
		fmt.Printf("more pids:  kube-controller-manager %d, kube-scheduler %d, kwok %d\n",
			pids["kube-controller-manager"], pids["kube-scheduler"], pids["kwok"])
	}
	fmt.Printf("press Ctrl-C to stop\n")

	s := <-sigs
	fmt.Printf("%s: stopping\n", s)
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Println("stopped")
	return nil
}
