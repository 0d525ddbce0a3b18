// Package harness runs leasefence's own parts next to the control plane of
// package cluster: certificates (leasefence-certs), the webhook binary with a
// realistic identity of its own, its registration with the API server, its
// metrics, and child processes (electors) that die with the test.
package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// BuildDirEnv names the environment variable that points at the CMake build
// folder holding the C binaries (test.sh sets it).
const BuildDirEnv = "LF_BUILD_DIR"

// BuildDir returns $LF_BUILD_DIR, or an error that says how to build.
func BuildDir() (string, error) {
	d := os.Getenv(BuildDirEnv)
	if d == "" {
		return "", errors.New(BuildDirEnv + " is not set: build the C parts with " +
			"`cmake -S . -B build && cmake --build build` at the repository root and set " +
			BuildDirEnv + "=$PWD/build (./test.sh does both)")
	}
	return d, nil
}

// Binary returns the path of a C binary in the build folder, relative to it
// (e.g. "webhook/leasefence-webhook"), checking that it exists.
func Binary(rel string) (string, error) {
	d, err := BuildDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, rel)
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s not found or not executable (%s=%s): build with "+
			"`cmake -S . -B build && cmake --build build` at the repository root", p, BuildDirEnv, d)
	}
	return p, nil
}

// StartChild starts cmd so that it cannot outlive the test process: it gets
// its own process group (a terminal's Ctrl-C reaches us first; Stop can
// signal the group) and Pdeathsig SIGKILL. Pdeathsig fires when the creating
// OS thread exits, not the process, so every child is started from one
// goroutine locked to its thread for the life of the process.
func StartChild(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

var spawnRequests = make(chan spawnRequest)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range spawnRequests {
			r.done <- r.cmd.Start()
		}
	}()
}

// FreePorts returns n distinct loopback ports that were free a moment ago.
// Another process can still take one before the child binds it; StartWebhook
// retries on that.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
