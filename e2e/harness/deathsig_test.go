package harness_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

func TestMain(m *testing.M) {
	// The child half of TestWebhookDiesWithTestProcess.
	if os.Getenv("LF_HARNESS_CHILD") == "1" {
		dir := os.Getenv("LF_HARNESS_CHILD_DIR")
		leases := filepath.Join(dir, "leases")
		_ = os.MkdirAll(leases, 0o755)
		wh, err := harness.StartWebhook(context.Background(), harness.WebhookOptions{Dir: dir, LeaseSource: "file:" + leases})
		if err != nil {
			fmt.Printf("ERROR %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("PID %d\n", wh.PID())
		select {}
	}
	os.Exit(m.Run())
}

// TestWebhookDiesWithTestProcess: a test process killed without stopping its
// webhook leaves no webhook behind (Pdeathsig).
func TestWebhookDiesWithTestProcess(t *testing.T) {
	if _, err := harness.BuildDir(); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), "LF_HARNESS_CHILD=1", "LF_HARNESS_CHILD_DIR="+t.TempDir())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PID ") {
		t.Fatalf("child said %q (%v)", line, err)
	}
	var pid int
	fmt.Sscanf(line, "PID %d", &pid)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	err = cluster.Poll(context.Background(), 10*time.Second, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		return gone(pid), fmt.Sprintf("webhook pid %d still runs", pid), nil
	})
	if err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal(err)
	}
}

// gone: no such process, or a zombie (exited, waiting to be reaped by
// whoever adopted it).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}
