// Package fencing_test proves leasefence's guarantees against a real
// kube-apiserver with the real webhook registered: split brain with real
// electors, every kind of write, the edge cases of the protocol, and
// randomised trials.
package fencing_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
)

// One control plane and one webhook for the package; each test works in a
// namespace of its own.
var (
	cp         *cluster.Cluster
	wh         *harness.Webhook
	electorBin string
	workDir    string
	registered bool // false under LF_NO_WEBHOOK=1
)

// webhookArgs: the electors use a 4 s Lease duration. The webhook judges a
// Lease expired at renewTime + duration - tolerance (protocol section 6);
// with the default 2 s tolerance a leader that renews every 500 ms would
// already be fenced 2 s into each renewal, i.e. a healthy leader could be
// denied whenever a renewal is late by more than 1.5 s. Here every process
// shares one host clock, so a 500 ms tolerance is honest and leaves 3.5 s.
var webhookArgs = []string{"--clock-skew-tolerance=500ms"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := harness.BuildDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	var err error
	if workDir, err = os.MkdirTemp("", "lf-fencing-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if electorBin, err = harness.BuildElector(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cp, err = cluster.Start(ctx, cluster.Options{}); err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	if err := cp.InstallWidgetCRD(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if wh, err = harness.StartWebhook(ctx, harness.WebhookOptions{
		Cluster: cp, Dir: filepath.Join(workDir, "webhook"), Args: webhookArgs,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// LF_NO_WEBHOOK=1 leaves the webhook unregistered, to check that these
	// tests can fail: every fenced expectation must then break.
	registered = os.Getenv("LF_NO_WEBHOOK") != "1"
	if registered {
		if err := harness.Register(ctx, cp, wh); err != nil {
			fmt.Fprintln(os.Stderr, err)
			wh.Stop()
			return 1
		}
	}
	return harness.RunTests(m, wh, workDir)
}

// testCtx bounds one test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// withoutWebhook unregisters the webhook for the rest of the test and
// registers it again afterwards (unless LF_NO_WEBHOOK=1).
func withoutWebhook(t *testing.T, ctx context.Context) {
	if !registered {
		return
	}
	if err := harness.Unregister(ctx, cp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := harness.Register(context.Background(), cp, wh); err != nil {
			t.Errorf("registering the webhook again: %v", err)
		}
	})
}
