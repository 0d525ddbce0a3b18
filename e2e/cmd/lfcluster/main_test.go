package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as lfcluster when this variable is set, so the
// tests run the real command, signals included.
func TestMain(m *testing.M) {
	if os.Getenv("LF_RUN_LFCLUSTER") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func lfcluster(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LF_RUN_LFCLUSTER=1")
	return cmd
}

func TestHelpAndUsageErrors(t *testing.T) {
	out, err := lfcluster("--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lfcluster up --dir DIR") {
		t.Errorf("--help: %v: %s", err, out)
	}
	for _, args := range [][]string{{}, {"down"}, {"up"}, {"up", "--dir", t.TempDir(), "--full", "--nodes", "0"}} {
		err := lfcluster(args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("lfcluster %v: want exit 2, got %v", args, err)
		}
	}
}

func TestUpUntilInterrupted(t *testing.T) {
	dir := t.TempDir()
	cmd := lfcluster("up", "--dir", dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Read until it says it is ready; the reader ends if it exits first.
	var pids []string
	ready := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pids:"); ok {
			pids = strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		}
		if strings.Contains(line, "press Ctrl-C") {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("lfcluster exited before it was ready")
	}
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil || !strings.Contains(string(env), "KUBECONFIG="+filepath.Join(dir, "kubeconfig")) {
		t.Errorf("env file: %v: %q", err, env)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); err != nil {
		t.Errorf("kubeconfig: %v", err)
	}
	if len(pids) != 2 {
		t.Fatalf("pids line not understood: %v", pids)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("lfcluster after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lfcluster did not stop within 30s of SIGINT")
	}
	for _, p := range pids {
		if _, err := os.Stat("/proc/" + p); err == nil {
			stat, _ := os.ReadFile("/proc/" + p + "/stat")
			if !strings.Contains(string(stat), ") Z ") {
				t.Errorf("pid %s still running after lfcluster stopped", p)
			}
		}
	}
}
