package fencing_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// Identity fencing (docs/protocol.md, section 7a): objects protected with
// "identity:<lease>" admit the guarded controller's writes without a stamp
// when they come from the Lease holder's pod.

// TestIdentityFencingSplitBrain: the elector with stamping switched off (a
// controller that calls no helper) on a ConfigMap fenced by identity. Its
// writes while it leads land; once ctrl-b took over, every write the resumed
// ctrl-a sends is denied, because its pod is no longer the holder.
func TestIdentityFencingSplitBrain(t *testing.T) {
	r := splitBrain(t, "idfence-split", "--no-stamp", "--fencing=identity")
	if len(r.StaleAdmitted) != 0 {
		t.Errorf("%d stale writes of ctrl-a were admitted: %+v", len(r.StaleAdmitted), r.StaleAdmitted)
	}
	if len(r.StaleDenied) != len(r.StaleWrites) {
		t.Errorf("of %d stale writes, %d were denied: %+v", len(r.StaleWrites), len(r.StaleDenied), r.StaleWrites)
	}
	for _, w := range r.StaleDenied {
		for _, want := range []string{"(IdentityMismatch)", `pod "ctrl-a"`, "Lease idfence-split/ctrl",
			fmt.Sprintf("held by %q in term %d", r.B.Identity, r.TermB)} {
			if !strings.Contains(w.Message, want) {
				t.Errorf("denial %q does not contain %q", w.Message, want)
			}
		}
	}
	// Each elector's writes while it led landed without a stamp: all of
	// ctrl-b's, and ctrl-a's answered before it was paused (one it began
	// just before the pause may have gone out only after the resume).
	for _, w := range append(r.BWrites, r.AWrites...) {
		if w.Identity == r.A.Identity && !w.Done.Before(r.PausedAt) {
			continue
		}
		if w.Result != "admitted" {
			t.Errorf("%s's write in its own term was not admitted: %+v", w.Identity, w)
		} else if w.Stored != "" {
			t.Errorf("%s's write stored a stamp %q, but it sends none", w.Identity, w.Stored)
		}
	}
	t.Logf("%d stale writes, %d denied, %d admitted; ctrl-a wrote %d times, ctrl-b %d",
		len(r.StaleWrites), len(r.StaleDenied), len(r.StaleAdmitted), len(r.AWrites), len(r.BWrites))
}

// TestIdentityFencingSplitBrainUnfenced is the control: without the webhook
// the same unstamped ex-leader's writes land after the takeover.
func TestIdentityFencingSplitBrainUnfenced(t *testing.T) {
	withoutWebhook(t, testCtx(t, time.Minute))
	r := splitBrain(t, "idfence-unfenced", "--no-stamp", "--fencing=identity")
	if len(r.StaleAdmitted) == 0 {
		t.Fatalf("no stale write of ctrl-a landed without the webhook: %+v", r.StaleWrites)
	}
	if landed := r.StaleAdmitted[0]; landed.Writer != r.A.Identity {
		t.Errorf("after the stale write the object holds writer %q; want ctrl-a's %q", landed.Writer, r.A.Identity)
	}
	t.Logf("%d of %d stale writes of ctrl-a landed after ctrl-b took over in term %d",
		len(r.StaleAdmitted), len(r.StaleWrites), r.TermB)
}

// identityCM creates, as the admin (a writer other than the controller,
// which may add protection), a ConfigMap fenced by identity.
func identityCM(e *env, name string) {
	e.t.Helper()
	if _, err := cp.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{harness.AnnotationLease: "identity:ctrl"}},
		Data:       map[string]string{"writer": "admin"},
	}, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("the admin creates the ConfigMap fenced by identity: %v", err)
	}
}

// writeCM is a read-modify-write of ConfigMap name, as a controller that
// calls no helper makes it (fieldManager "" means none), carrying forward
// whatever annotations the object holds.
func writeCM(e *env, client kubernetes.Interface, name, value, fieldManager string) error {
	cms := client.CoreV1().ConfigMaps(e.ns)
	cm, err := cms.Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cm.Data["writer"] = value
	_, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}

// TestIdentityFencingWriters, on the real API server with the Lease set by
// hand: the holder's pod writes without a stamp; another pod of the
// controller is denied IdentityMismatch; the controller's service account
// without a pod-bound token is denied IdentityRequired with how to fix it; a
// holder that names no pod (a bare UUID, as client-go's example -id) is
// denied UnboundHolder; and a mixed object, written by the same controller
// stamped and unstamped: a stamp, when sent, is still judged (StaleTerm), and
// an unstamped write carries the stored stamp forward.
func TestIdentityFencingWriters(t *testing.T) {
	e := newEnv(t, "idfence-writers")
	holder, _ := e.pod("ctrl-0")
	replica, _ := e.pod("ctrl-1")
	s := e.setLease("ctrl-0_7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", 2)
	identityCM(e, "cm")

	admitted(t, "the holder's pod, no stamp", writeCM(e, holder.Client, "cm", "ctrl-0", ""))
	err := writeCM(e, replica.Client, "cm", "ctrl-1", "")
	denied(t, "another pod of the controller, no stamp", err, "IdentityMismatch")
	if err != nil && !strings.Contains(err.Error(), `pod "ctrl-1"`) {
		t.Errorf("the denial does not name the requester's pod: %v", err)
	}

	// The same service account as the holder's pod, with a token bound to
	// no pod (TokenRequest without a boundObjectRef).
	tr, err := cp.Client.CoreV1().ServiceAccounts(e.ns).CreateToken(e.ctx, "ctrl-0",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := kubernetes.NewForConfig(cp.TokenConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	err = writeCM(e, unbound, "cm", "no-pod", "")
	denied(t, "the controller's service account without pod identity", err, "IdentityRequired")
	for _, want := range []string{"no pod identity", "projected", "fieldManager=lf1:"} {
		if err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("the IdentityRequired denial does not say %q: %v", want, err)
		}
	}

	// Mixed: the holder moves up to stamps; a stamped write is judged by its
	// stamp, an unstamped one by identity, on the same object.
	stamped := func(client kubernetes.Interface, st fencing.Stamp, value string) error {
		cms := client.CoreV1().ConfigMaps(e.ns)
		cm, err := cms.Get(e.ctx, "cm", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Annotations[harness.AnnotationStamp] = st.String()
		cm.Data["writer"] = value
		_, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{FieldManager: st.FieldManager()})
		return err
	}
	admitted(t, "the holder's stamped write", stamped(holder.Client, s, "ctrl-0 stamped"))
	admitted(t, "the holder's unstamped write, carrying the stamp forward", writeCM(e, holder.Client, "cm", "ctrl-0 again", ""))
	cm, err := cp.Client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Annotations[harness.AnnotationStamp]; got != s.String() {
		t.Errorf("after the unstamped write the stored stamp is %q; want %q carried forward", got, s.String())
	}
	old := s
	old.Term = 1
	denied(t, "the holder's pod with a stamp of an older term", stamped(holder.Client, old, "old term"), "StaleTerm")
	denied(t, "another pod presenting the holder's stamp", stamped(replica.Client, s, "copied"), "IdentityMismatch")

	// A holder identity that names no pod.
	e.setLease("7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", 3)
	err = writeCM(e, holder.Client, "cm", "uuid holder", "")
	denied(t, "a write while the holder is a bare UUID", err, "UnboundHolder")
	if err != nil && !strings.Contains(err.Error(), "names no pod or node") {
		t.Errorf("the UnboundHolder denial does not say why: %v", err)
	}
}

// TestIdentityFencingHostNetwork: a hostNetwork holder's identity is
// <node>_<uuid>; on an object fenced by identity, an unstamped write from a
// pod of the Lease's namespace on that node is admitted, one from a pod on
// another node is denied.
func TestIdentityFencingHostNetwork(t *testing.T) {
	e := newEnv(t, "idfence-hostnet")
	onHolderNode := scheduledWriter(t, e, e.ns, "ctrl-5f6d-q8r2w", "node-1")
	onOtherNode := scheduledWriter(t, e, e.ns, "ctrl-5f6d-z9y8x", "node-2")
	e.setLease("node-1_2d4e6f80", 1)
	identityCM(e, "cm")
	admitted(t, "a pod on the holder's node, no stamp", writeCM(e, onHolderNode, "cm", "node-1", ""))
	err := writeCM(e, onOtherNode, "cm", "node-2", "")
	denied(t, "a pod on another node, no stamp", err, "IdentityMismatch")
	if err != nil && !strings.Contains(err.Error(), `node "node-2"`) {
		t.Errorf("the denial does not name the requester's node: %v", err)
	}
}
