package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
)

// shared is one control plane for the helper tests in this package; the tests
// about starting and stopping make their own.
var shared *cluster.Cluster

func TestMain(m *testing.M) {
	// The child half of TestTestProcessDeathKillsControlPlane.
	if os.Getenv("LF_CLUSTER_CHILD") == "1" {
		runChild()
		return
	}
	ctx := context.Background()
	var err error
	shared, err = cluster.Start(ctx, cluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := shared.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// runChild starts a control plane, reports its PIDs on stdout and waits to be
// killed without ever calling Stop.
func runChild() {
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: os.Getenv("LF_CLUSTER_CHILD_DIR")})
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(1)
	}
	etcd, api := c.PIDs()
	fmt.Printf("PIDS %d %d\n", etcd, api)
	select {}
}

// processGone reports whether pid no longer runs. A zombie counts as gone:
// it has exited and only waits for whoever adopted it to reap it.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// processesUsing lists the pids whose command line mentions dir: after a
// failed Start, none of the binaries it launched with data in dir may remain.
func processesUsing(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || processGone(pid) {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitGone(t *testing.T, what string, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still running after %s", what, pid, within)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	dir := t.TempDir()
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	etcd, api := c.PIDs()
	if etcd == 0 || api == 0 || processGone(etcd) || processGone(api) {
		t.Fatalf("expected both processes running, got etcd=%d kube-apiserver=%d", etcd, api)
	}
	if _, err := os.Stat(c.KubeconfigPath); err != nil {
		t.Errorf("kubeconfig not written: %v", err)
	}
	stopStart := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %s", time.Since(stopStart))
	// Stop waits for both to be reaped, so they must be gone at once.
	if !processGone(etcd) || !processGone(api) {
		t.Errorf("after Stop: etcd gone=%v kube-apiserver gone=%v", processGone(etcd), processGone(api))
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestTestProcessDeathKillsControlPlane(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LF_CLUSTER_CHILD=1", "LF_CLUSTER_CHILD_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child said nothing: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "PIDS" {
		t.Fatalf("child: %s", line)
	}
	etcd, _ := strconv.Atoi(f[1])
	api, _ := strconv.Atoi(f[2])
	if processGone(etcd) || processGone(api) {
		t.Fatalf("child's control plane not running: %s", line)
	}
	// SIGKILL: the child gets no chance to clean up; only Pdeathsig can.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, "etcd", etcd, 10*time.Second)
	waitGone(t, "kube-apiserver", api, 10*time.Second)
}

func TestMissingBinary(t *testing.T) {
	empty := t.TempDir()
	_, err := cluster.Start(context.Background(), cluster.Options{BinDir: empty, Dir: t.TempDir()})
	if err == nil {
		t.Fatal("Start succeeded with no binaries")
	}
	t.Logf("error as reported: %v", err)
	for _, want := range []string{"binary not found", empty, "e2e/build.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRequestedPortInUse(t *testing.T) {
	port := shared.APIServerPort() // certainly taken
	_, err := cluster.Start(context.Background(), cluster.Options{Dir: t.TempDir(), APIServerPort: port})
	if err == nil {
		t.Fatal("Start succeeded on a port in use")
	}
	t.Logf("error as reported: %v", err)
	if want := fmt.Sprintf("127.0.0.1:%d is already in use", port); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// A port taken between the check and the bind surfaces from the binary's log.
func TestAPIServerBindFailureNamesCauseAndLog(t *testing.T) {
	dir := t.TempDir()
	_, err := cluster.Start(context.Background(), cluster.Options{
		Dir:                dir,
		ExtraAPIServerArgs: []string{fmt.Sprintf("--secure-port=%d", shared.APIServerPort())},
	})
	if err == nil {
		t.Fatal("Start succeeded on a port in use")
	}
	t.Logf("error as reported: %v", err)
	for _, want := range []string{"kube-apiserver exited", "port already in use", dir + "/kube-apiserver.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if left := processesUsing(dir); len(left) != 0 {
		t.Errorf("processes left after a failed Start: %v", left)
	}
}

func TestUnhealthyAPIServerTimesOut(t *testing.T) {
	dir := t.TempDir()
	// An "etcd" that accepts connections and never answers: the API server
	// cannot reach storage and never becomes ready.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed := silent.Addr().(*net.TCPAddr).Port
	start := time.Now()
	_, err = cluster.Start(context.Background(), cluster.Options{
		Dir:                dir,
		StartTimeout:       8 * time.Second,
		StopGrace:          2 * time.Second,
		ExtraAPIServerArgs: []string{fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", closed)},
	})
	if err == nil {
		t.Fatal("Start succeeded without etcd")
	}
	t.Logf("error as reported: %v", err)
	if !strings.Contains(err.Error(), dir+"/kube-apiserver.log") {
		t.Errorf("error %q does not name the log", err)
	}
	if !strings.Contains(err.Error(), "not ready") && !strings.Contains(err.Error(), "exited") {
		t.Errorf("error %q says neither 'not ready' nor 'exited'", err)
	}
	if left := processesUsing(dir); len(left) != 0 {
		t.Errorf("processes left after a failed Start: %v", left)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Start took %s despite an 8s bound", d)
	}
}
