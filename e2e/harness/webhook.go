package harness

import (
	"bufio"
	"context"
	"encoding/json"
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
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"leasefence.io/e2e/cluster"
)

// The webhook's own identity in the cluster, as manifests/base installs it.
const (
	WebhookNamespace      = "leasefence"
	WebhookServiceAccount = "leasefence-webhook"
	WebhookClusterRole    = "leasefence-webhook-leases"
)

// WebhookOptions configures StartWebhook.
type WebhookOptions struct {
	// Cluster is the control plane the webhook reads Leases from. Required
	// for the kube sources.
	Cluster *cluster.Cluster
	// Dir receives certificates, the kubeconfig and the log. Required.
	Dir string
	// LeaseSource is --lease-source: "kube" (default), "kube-cached" or
	// "file:DIR".
	LeaseSource string
	// Certs, when nil, are made by Certs(Dir/certs).
	Certs *CertFiles
	// Args are extra flags, passed through as given.
	Args []string
	// ReadyTimeout bounds the wait for /readyz. Default 30s.
	ReadyTimeout time.Duration
	// APIServer, when set, is the host:port the webhook's kubeconfig sends
	// it to instead of the API server's own (a Proxy in front of it).
	APIServer string
}

// Webhook is a running leasefence-webhook process.
type Webhook struct {
	Port       int // HTTPS, serving /validate
	HealthPort int // plain HTTP: /healthz, /readyz, /metrics
	Certs      *CertFiles
	Kubeconfig string // the webhook's own pod-bound kubeconfig ("" for file:)
	LogPath    string // stderr (JSON lines) and stdout
	Args       []string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

var webhookSeq atomic.Int32

// StartWebhook runs build/webhook/leasefence-webhook on 127.0.0.1 with free
// ports and returns once /readyz answers 200. For the kube sources it first
// gives the webhook an identity like the one the manifests install: the
// ServiceAccount leasefence/leasefence-webhook, bound to a ClusterRole that
// allows get/list/watch on Leases and create/patch on Events (the
// manifests' two roles), with a token bound to a Pod of its own, so the
// webhook's requests are held to realistic RBAC.
func StartWebhook(ctx context.Context, opts WebhookOptions) (*Webhook, error) {
	bin, err := Binary("webhook/leasefence-webhook")
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("StartWebhook: Dir is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if opts.LeaseSource == "" {
		opts.LeaseSource = "kube"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	seq := webhookSeq.Add(1)
	w := &Webhook{Certs: opts.Certs, LogPath: filepath.Join(opts.Dir, fmt.Sprintf("webhook-%d.log", seq))}
	if w.Certs == nil {
		if w.Certs, err = Certs(filepath.Join(opts.Dir, "certs")); err != nil {
			return nil, err
		}
	}
	if strings.HasPrefix(opts.LeaseSource, "kube") {
		if opts.Cluster == nil {
			return nil, errors.New("StartWebhook: a kube lease source needs Cluster")
		}
		w.Kubeconfig = filepath.Join(opts.Dir, fmt.Sprintf("webhook-%d.kubeconfig", seq))
		if err := webhookIdentity(ctx, opts.Cluster, fmt.Sprintf("leasefence-webhook-%d", seq), w.Kubeconfig, opts.APIServer); err != nil {
			return nil, err
		}
	}
	// A port taken between FreePorts and the bind makes the webhook exit 1;
	// a new pair of ports is then tried.
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(2)
		if err != nil {
			return nil, err
		}
		w.Port, w.HealthPort = ports[0], ports[1]
		w.Args = []string{
			"--bind-address", "127.0.0.1", "--port", strconv.Itoa(w.Port),
			"--health-bind-address", "127.0.0.1", "--health-port", strconv.Itoa(w.HealthPort),
			"--tls-cert-file", w.Certs.TLSCert, "--tls-private-key-file", w.Certs.TLSKey,
			"--lease-source", opts.LeaseSource,
		}
		if w.Kubeconfig != "" {
			w.Args = append(w.Args, "--kubeconfig", w.Kubeconfig)
		}
		w.Args = append(w.Args, opts.Args...)
		err = w.start(ctx, bin, opts.ReadyTimeout)
		if err == nil {
			return w, nil
		}
		if attempt >= 3 || !w.exited() || !strings.Contains(lastLines(w.LogPath, 20), "in use") {
			return nil, err
		}
	}
}

func (w *Webhook) start(ctx context.Context, bin string, readyTimeout time.Duration) error {
	logFile, err := os.OpenFile(w.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "# %s %s\n", bin, strings.Join(w.Args, " "))
	w.cmd = exec.Command(bin, w.Args...)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	w.done = make(chan struct{})
	if err := StartChild(w.cmd); err != nil {
		logFile.Close()
		return fmt.Errorf("start leasefence-webhook: %w", err)
	}
	go func() {
		w.waitErr = w.cmd.Wait()
		logFile.Close()
		close(w.done)
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	err = cluster.Poll(ctx, readyTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		if w.exited() {
			return false, "", fmt.Errorf("leasefence-webhook exited before it was ready (%v): %s", w.waitErr, lastLines(w.LogPath, 5))
		}
		resp, err := client.Get(w.HealthURL("/readyz"))
		if err != nil {
			return false, err.Error(), nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprintf("/readyz %d %s", resp.StatusCode, strings.TrimSpace(string(body))), nil
	})
	if err != nil {
		w.kill()
		return fmt.Errorf("%w (log: %s)", err, w.LogPath)
	}
	return nil
}

// webhookIdentity creates (once per cluster) the namespace, ServiceAccount,
// ClusterRole and ClusterRoleBinding, and for each webhook process a Pod and
// a token bound to it, written as a kubeconfig (that names server instead of
// the API server's address when server is set).
func webhookIdentity(ctx context.Context, c *cluster.Cluster, podName, kubeconfig, server string) error {
	ignoreExists := func(err error) error {
		// The errors are wrapped; IsAlreadyExists looks through (errors.As).
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	if _, err := c.CreateNamespace(ctx, WebhookNamespace, nil); ignoreExists(err) != nil {
		return fmt.Errorf("webhook namespace: %w", err)
	}
	if _, err := c.CreateServiceAccount(ctx, WebhookNamespace, WebhookServiceAccount, nil); ignoreExists(err) != nil {
		return err
	}
	_, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookClusterRole},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"coordination.k8s.io"},
			Resources: []string{"leases"},
			Verbs:     []string{"get", "list", "watch"},
		}, {
			// The Warning Event on each denied write (manifests/base/rbac.yaml).
			APIGroups: []string{"events.k8s.io"},
			Resources: []string{"events"},
			Verbs:     []string{"create", "patch"},
		}},
	}, metav1.CreateOptions{})
	if ignoreExists(err) != nil {
		return fmt.Errorf("webhook cluster role: %w", err)
	}
	_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookClusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: WebhookClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: WebhookNamespace, Name: WebhookServiceAccount}},
	}, metav1.CreateOptions{})
	if ignoreExists(err) != nil {
		return fmt.Errorf("webhook cluster role binding: %w", err)
	}
	var pod *corev1.Pod
	pod, err = c.CreatePod(ctx, WebhookNamespace, podName, WebhookServiceAccount)
	if err != nil && apierrors.IsAlreadyExists(err) {
		pod, err = c.Client.CoreV1().Pods(WebhookNamespace).Get(ctx, podName, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	token, err := c.PodToken(ctx, pod, 0)
	if err != nil {
		return err
	}
	if err := c.WriteTokenKubeconfig(kubeconfig, podName, token); err != nil || server == "" {
		return err
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return err
	}
	for _, cl := range cfg.Clusters {
		cl.Server = "https://" + server
	}
	return clientcmd.WriteToFile(*cfg, kubeconfig)
}

func (w *Webhook) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Kill ends the webhook like a crash (SIGKILL to its process group) and
// waits for it.
func (w *Webhook) Kill() { w.kill() }

func (w *Webhook) kill() {
	if w.cmd != nil && w.cmd.Process != nil && !w.exited() {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.done
	}
}

// Addr is the host:port of /validate.
func (w *Webhook) Addr() string { return fmt.Sprintf("127.0.0.1:%d", w.Port) }

// URL is the address the API server calls.
func (w *Webhook) URL() string { return fmt.Sprintf("https://127.0.0.1:%d/validate", w.Port) }

// HealthURL is path on the health port.
func (w *Webhook) HealthURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", w.HealthPort, path)
}

// PID is the webhook's process id.
func (w *Webhook) PID() int { return w.cmd.Process.Pid }

// Stop sends SIGTERM and waits (up to 20 s, then SIGKILL). It returns an
// error unless the webhook exited 0: a clean stop is part of its contract.
// Safe to call more than once.
func (w *Webhook) Stop() error {
	w.stopOnce.Do(func() {
		if w.exited() {
			w.stopErr = fmt.Errorf("leasefence-webhook had already exited (%v): %s", w.waitErr, lastLines(w.LogPath, 5))
			return
		}
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(20 * time.Second):
			w.kill()
			w.stopErr = fmt.Errorf("leasefence-webhook did not stop within 20 s of SIGTERM; killed (log: %s)", w.LogPath)
			return
		}
		if w.waitErr != nil {
			w.stopErr = fmt.Errorf("leasefence-webhook exited with %v after SIGTERM (log: %s)", w.waitErr, w.LogPath)
		}
	})
	return w.stopErr
}

// LogLines returns the webhook's JSON log lines, parsed (other lines are
// skipped).
func (w *Webhook) LogLines() ([]map[string]any, error) {
	f, err := os.Open(w.LogPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// RunTests runs a package's tests with wh serving them, then stops wh and
// removes dir when everything passed (its logs are kept, and said so, when
// anything failed). It returns the exit code for TestMain.
func RunTests(m interface{ Run() int }, wh *Webhook, dir string) int {
	code := m.Run()
	if err := wh.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", dir)
	}
	return code
}
