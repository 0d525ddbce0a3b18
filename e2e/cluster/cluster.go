// Package cluster runs a real Kubernetes control plane (etcd and
// kube-apiserver, built by e2e/build.sh) on loopback for tests, and offers
// helpers to set up what leasefence's tests need: namespaces, pod-bound
// service-account identities, webhook registrations and a test CRD.
//
// By default there is no kubelet, scheduler or controller manager: Pods stay
// Pending, and nothing garbage-collects. That is all the fencing tests need.
// Options.Full adds the rest of a cluster (full.go): kube-controller-manager,
// kube-scheduler and kwok's simulated nodes.
package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BinDirEnv names the environment variable that points at the folder holding
// kube-apiserver, etcd and kubectl.
const BinDirEnv = "LF_KUBE_BIN_DIR"

// Options configures Start. The zero value is usable.
type Options struct {
	// BinDir holds kube-apiserver, etcd and kubectl. Default: DefaultBinDir().
	BinDir string
	// Dir receives the data, certificates, logs and kubeconfig. Default: a new
	// temporary folder, removed by Stop.
	Dir string
	// APIServerPort and EtcdPort pin the ports; 0 picks a free one.
	APIServerPort int
	EtcdPort      int
	// StartTimeout bounds the wait for etcd and for /readyz. Default 90s.
	StartTimeout time.Duration
	// StopGrace is how long each process gets after SIGTERM before SIGKILL.
	// Default 10s.
	StopGrace time.Duration
	// ExtraAPIServerArgs are added to the kube-apiserver command line, in
	// --name=value form; a flag given here replaces the default of that name
	// (list flags such as --etcd-servers would otherwise accumulate).
	ExtraAPIServerArgs []string
	// Full starts the rest of a cluster once the API server is ready:
	// kube-controller-manager (default controllers, per-controller
	// service-account credentials), kube-scheduler and kwok with Nodes
	// simulated nodes; Start returns once every node is Ready and the
	// controllers run. The default StartTimeout becomes 180s.
	Full bool
	// Nodes is the number of kwok nodes with Full (default 1).
	Nodes int
}

// Cluster is a running control plane.
type Cluster struct {
	// Dir holds everything the control plane writes.
	Dir string
	// BinDir is where the binaries came from.
	BinDir string
	// Host is the API server's URL, https://127.0.0.1:<port>.
	Host string
	// KubeconfigPath is an admin (system:masters) kubeconfig.
	KubeconfigPath string
	// CACertPEM is the CA that signed the serving and admin certificates.
	CACertPEM []byte
	// Config, Client, Dynamic and APIExtensions act as the admin.
	Config        *rest.Config
	Client        kubernetes.Interface
	Dynamic       dynamic.Interface
	APIExtensions apiextensionsclient.Interface
	// EtcdLog and APIServerLog are the processes' log files.
	EtcdLog      string
	APIServerLog string
	// With Options.Full: the other components' log files and the kwok
	// nodes' names.
	ControllerManagerLog, SchedulerLog, KwokLog string
	Nodes                                       []string

	etcd, apiserver *process
	apiserverArgs   []string // for RestartAPIServer
	apiserverReady  func(ctx context.Context) error
	restarts        int
	full            fullParts
	ownDir          bool
	stopGrace       time.Duration
	stopOnce        sync.Once
	stopErr         error
}

// DefaultBinDir returns $LF_KUBE_BIN_DIR, or else the folder e2e/build.sh
// builds into for the pins in the enclosing e2e module's go.mod and go.sum.
func DefaultBinDir() string {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d
	}
	root := os.Getenv("LEASEFENCE_CACHE")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".cache", "leasefence")
	}
	modDir, err := moduleDir()
	if err != nil {
		return filepath.Join(root, "k8s-unknown")
	}
	// Same hash as build.sh: sha256 of go.mod, go.sum, then kwok's module's
	// go.mod and go.sum, first 16 hex digits.
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "tools/kwok/go.mod", "tools/kwok/go.sum"} {
		data, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			return filepath.Join(root, "k8s-unknown")
		}
		h.Write(data)
	}
	return filepath.Join(root, "k8s-"+hex.EncodeToString(h.Sum(nil))[:16])
}

// moduleDir finds the e2e module's root by walking up from the working folder.
func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module leasefence.io/e2e\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e go.mod not found")
		}
		dir = parent
	}
}

// Start runs etcd and kube-apiserver and returns once /readyz reports ok. On
// failure nothing is left running, and the error names the cause and the log
// file; the folder is kept so the log can be read.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.BinDir == "" {
		opts.BinDir = DefaultBinDir()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
		if opts.Full {
			opts.StartTimeout = 180 * time.Second
		}
	}
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	c := &Cluster{BinDir: opts.BinDir, Dir: opts.Dir, stopGrace: opts.StopGrace}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		p := filepath.Join(opts.BinDir, b)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s binary not found at %s: run e2e/build.sh and set %s to the folder it prints", b, p, BinDirEnv)
		}
	}
	var err error
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "leasefence-e2e-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return nil, err
	}
	// Whatever fails from here on, leave nothing running.
	started := false
	defer func() {
		if !started {
			c.stopProcesses()
		}
	}()

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	if opts.EtcdPort != 0 {
		etcdPort = opts.EtcdPort
		if err := checkPortFree("etcd client", etcdPort); err != nil {
			return nil, err
		}
	}
	if opts.APIServerPort != 0 {
		apiPort = opts.APIServerPort
		if err := checkPortFree("kube-apiserver", apiPort); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	if err := c.startEtcd(ctx, etcdPort, peerPort); err != nil {
		return nil, err
	}
	keys, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("generate certificates: %w", err)
	}
	c.CACertPEM = keys.caCertPEM
	c.Host = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := c.startAPIServer(ctx, keys, etcdPort, apiPort, opts.ExtraAPIServerArgs); err != nil {
		return nil, err
	}

	c.Config = &rest.Config{
		Host: c.Host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   keys.caCertPEM,
			CertData: keys.adminCertPEM,
			KeyData:  keys.adminKeyPEM,
		},
		// Tests create many objects quickly; client-side throttling would only
		// add noise to timings.
		QPS:   -1,
		Burst: -1,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if c.APIExtensions, err = apiextensionsclient.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	c.KubeconfigPath = filepath.Join(c.Dir, "kubeconfig")
	if err := writeKubeconfig(c.KubeconfigPath, c.Host, keys.caCertPEM, "admin", &clientcmdapi.AuthInfo{
		ClientCertificateData: keys.adminCertPEM,
		ClientKeyData:         keys.adminKeyPEM,
	}); err != nil {
		return nil, err
	}
	if opts.Full {
		if err := c.startFull(ctx, keys, opts.Nodes); err != nil {
			return nil, err
		}
	}
	started = true
	return c, nil
}

func (c *Cluster) startEtcd(ctx context.Context, clientPort, peerPort int) error {
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.EtcdLog = filepath.Join(c.Dir, "etcd.log")
	args := []string{
		"--name=leasefence-e2e",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		// The peer port must be set too: etcd's default (2380) would collide
		// between two clusters on one machine.
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=leasefence-e2e=" + peerURL,
		// Test data is thrown away; fsync only slows the tests down.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
	var err error
	if c.etcd, err = startProcess("etcd", filepath.Join(c.BinDir, "etcd"), args, c.EtcdLog); err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer yet"
	for {
		if c.etcd.exited() {
			return c.etcd.exitError()
		}
		resp, err := client.Get(clientURL + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("etcd not healthy at %s/health in time (last: %s); log: %s", clientURL, last, c.EtcdLog)
		}
	}
}

func (c *Cluster) startAPIServer(ctx context.Context, keys *pki, etcdPort, apiPort int, extra []string) error {
	c.APIServerLog = filepath.Join(c.Dir, "kube-apiserver.log")
	args := []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file=" + keys.servingCert,
		"--tls-private-key-file=" + keys.servingKey,
		"--client-ca-file=" + keys.caFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + c.Host,
		"--service-account-key-file=" + keys.saPublicFile,
		"--service-account-signing-key-file=" + keys.saPrivateFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		// No controller manager runs the endpoints for the kubernetes Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--v=1",
	}
	c.apiserverArgs = append(withoutFlags(args, extra), extra...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(keys.caCertPEM)
	c.apiserverReady = func(ctx context.Context) error { return c.waitAPIServerReady(ctx, pool) }
	var err error
	if c.apiserver, err = startProcess("kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"), c.apiserverArgs, c.APIServerLog); err != nil {
		return err
	}
	return c.apiserverReady(ctx)
}

// RestartAPIServer stops kube-apiserver (SIGTERM, SIGKILL after the stop
// grace) and starts it again with the same flags: same port, certificates,
// service-account keys and etcd, so every client's credentials stay good.
// It returns once /readyz is ok (within 90 s). Its log goes to a new file,
// which APIServerLog then names. Not to be called concurrently with Stop.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.apiserver.stop(c.stopGrace); err != nil {
		return err
	}
	c.restarts++
	c.APIServerLog = filepath.Join(c.Dir, fmt.Sprintf("kube-apiserver-restart-%d.log", c.restarts))
	var err error
	if c.apiserver, err = startProcess("kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"), c.apiserverArgs, c.APIServerLog); err != nil {
		return err
	}
	return c.apiserverReady(ctx)
}

// waitAPIServerReady polls /readyz until it answers 200, the process exits,
// or ctx ends.
func (c *Cluster) waitAPIServerReady(ctx context.Context, pool *x509.CertPool) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer client.CloseIdleConnections()
	last := "no answer yet"
	for {
		if c.apiserver.exited() {
			return c.apiserver.exitError()
		}
		if c.etcd.exited() {
			return c.etcd.exitError()
		}
		resp, err := client.Get(c.Host + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, failedChecks(string(body)))
		} else {
			last = err.Error()
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver not ready at %s/readyz in time (last: %s); log: %s", c.Host, last, c.APIServerLog)
		}
	}
}

// withoutFlags drops from args every --name=value whose name also appears in
// overrides.
func withoutFlags(args, overrides []string) []string {
	name := func(a string) string {
		n, _, _ := strings.Cut(a, "=")
		return n
	}
	drop := map[string]bool{}
	for _, o := range overrides {
		drop[name(o)] = true
	}
	var kept []string
	for _, a := range args {
		if !drop[name(a)] {
			kept = append(kept, a)
		}
	}
	return kept
}

// failedChecks keeps only the failing lines of a /readyz answer.
func failedChecks(body string) string {
	var failed []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, strings.TrimSpace(line))
		}
	}
	if len(failed) == 0 {
		return shorten(strings.TrimSpace(body))
	}
	return strings.Join(failed, ", ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PIDs returns the process ids of etcd and kube-apiserver (0 for one that
// never started); FullPIDs those of the fuller cluster's components.
func (c *Cluster) PIDs() (etcd, apiserver int) {
	if c.etcd != nil {
		etcd = c.etcd.pid()
	}
	if c.apiserver != nil {
		apiserver = c.apiserver.pid()
	}
	return etcd, apiserver
}

// FullPIDs returns the process ids of the fuller cluster's components by
// name (kube-controller-manager, kube-scheduler, kwok); empty without Full.
func (c *Cluster) FullPIDs() map[string]int {
	out := map[string]int{}
	for _, p := range []*process{c.full.kcm, c.full.scheduler, c.full.kwok} {
		if p != nil {
			out[p.name] = p.pid()
		}
	}
	return out
}

// Stop stops kwok, kube-scheduler and kube-controller-manager (when Full),
// then kube-apiserver, then etcd (SIGTERM, then SIGKILL after the grace
// period), waits for each to exit, and removes the folder if Start
// created it. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stopProcesses()
		if c.stopErr == nil && c.ownDir {
			c.stopErr = os.RemoveAll(c.Dir)
		}
	})
	return c.stopErr
}

func (c *Cluster) stopProcesses() error {
	var errs []error
	// The API server's clients first, then the API server, so that none logs
	// a storm of errors about the one stopped before it.
	for _, p := range []*process{c.full.kwok, c.full.scheduler, c.full.kcm, c.apiserver, c.etcd} {
		if p != nil {
			if err := p.stop(c.stopGrace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// KubectlPath is the kubectl built with the control plane.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.BinDir, "kubectl") }

// Kubectl runs kubectl as the admin and returns its combined output; a
// non-zero exit is an error that includes the output.
func (c *Cluster) Kubectl(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	return KubectlWith(ctx, c.KubectlPath(), c.KubeconfigPath, stdin, args...)
}

// KubectlWith runs the kubectl at path with the given kubeconfig (for
// example a pod identity's).
func KubectlWith(ctx context.Context, path, kubeconfig string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// writeKubeconfig writes a one-context kubeconfig for host.
func writeKubeconfig(path, host string, caPEM []byte, user string, auth *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["leasefence-e2e"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = auth
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "leasefence-e2e", AuthInfo: user}
	cfg.CurrentContext = user
	return clientcmd.WriteToFile(*cfg, path)
}

// APIServerPort returns the port kube-apiserver listens on.
func (c *Cluster) APIServerPort() int {
	i := strings.LastIndex(c.Host, ":")
	p, _ := strconv.Atoi(c.Host[i+1:])
	return p
}
