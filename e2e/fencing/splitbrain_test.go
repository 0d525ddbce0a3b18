package fencing_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"leasefence.io/e2e/harness"
)

// splitBrain plays harness.SplitBrain in namespace ns, with electorArgs
// given to both electors.
func splitBrain(t *testing.T, ns string, electorArgs ...string) *harness.SplitBrainResult {
	ctx := testCtx(t, 2*time.Minute)
	r, err := harness.SplitBrain(ctx, harness.SplitBrainOptions{
		Cluster: cp, ElectorBn: electorBin, Dir: workDir, Namespace: ns, ElectorArgs: electorArgs,
		Progress: func(s string) { t.Log(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.StaleWrites) == 0 {
		t.Fatalf("ctrl-a sent no write after it was resumed; its log: %s", r.A.LogPath)
	}
	return r
}

// TestSplitBrainFenced: every write the resumed ex-leader sends with its old
// term is denied, and the denial names the Lease and both terms.
func TestSplitBrainFenced(t *testing.T) {
	r := splitBrain(t, "split-fenced")
	if len(r.StaleAdmitted) != 0 {
		t.Errorf("%d stale writes of ctrl-a were admitted: %+v", len(r.StaleAdmitted), r.StaleAdmitted)
	}
	if len(r.StaleDenied) != len(r.StaleWrites) {
		t.Errorf("of %d stale writes, %d were denied: %+v", len(r.StaleWrites), len(r.StaleDenied), r.StaleWrites)
	}
	for _, w := range r.StaleDenied {
		for _, want := range []string{
			"StaleTerm",
			"Lease split-fenced/ctrl",
			fmt.Sprintf("term %d", r.TermA),
			fmt.Sprintf("term %d", r.TermB),
			`denied the request`,
		} {
			if !strings.Contains(w.Message, want) {
				t.Errorf("denial %q does not contain %q", w.Message, want)
			}
		}
	}
	// B's writes in its own term all landed.
	for _, w := range r.BWrites {
		if w.Result != "admitted" {
			t.Errorf("ctrl-b's write was not admitted: %+v", w)
		}
	}
	if len(r.StaleDenied) > 0 {
		t.Logf("%d stale writes, %d denied; first denial: %s", len(r.StaleWrites), len(r.StaleDenied), r.StaleDenied[0].Message)
	}
}

// TestSplitBrainUnfenced is the control: without the webhook the same
// scenario lets the ex-leader's stale writes land, and the object then holds
// its old term's stamp and data.
func TestSplitBrainUnfenced(t *testing.T) {
	withoutWebhook(t, testCtx(t, time.Minute))
	r := splitBrain(t, "split-unfenced")
	if len(r.StaleAdmitted) == 0 {
		t.Fatalf("no stale write of ctrl-a landed without the webhook: %+v", r.StaleWrites)
	}
	landed := r.StaleAdmitted[0]
	if landed.Writer != r.A.Identity || !strings.HasPrefix(landed.Stored, fmt.Sprintf("lf1:%d:", r.TermA)) {
		t.Errorf("after the stale write the object holds writer %q stamp %q; want ctrl-a's data and a term-%d stamp",
			landed.Writer, landed.Stored, r.TermA)
	}
	t.Logf("%d stale writes of ctrl-a landed in term %d after ctrl-b took over in term %d",
		len(r.StaleAdmitted), r.TermA, r.TermB)
}
