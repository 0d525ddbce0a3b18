package fencing_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// protectedCM is a ConfigMap guarded by Lease ctrl, stamped with s (none
// when s is nil).
func protectedCM(name string, s *fencing.Stamp, data map[string]string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{harness.AnnotationLease: "ctrl"}},
		Data:       data,
	}
	if s != nil {
		fencing.StampObject(cm, *s)
	}
	return cm
}

func mergePatch(t *testing.T, c kubernetes.Interface, ns, name string, body string, s fencing.Stamp) error {
	t.Helper()
	p, err := fencing.MergePatch([]byte(body), s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CoreV1().ConfigMaps(ns).Patch(t.Context(), name, types.MergePatchType, p, fencing.PatchOptions(s, metav1.PatchOptions{}))
	return err
}

// createOpts carries s as the per-request stamp; none when s is nil.
func createOpts(s *fencing.Stamp) metav1.CreateOptions {
	if s == nil {
		return metav1.CreateOptions{}
	}
	return fencing.CreateOptions(*s, metav1.CreateOptions{})
}

// TestLeaseRecreated: a Lease deleted and re-created under the same name
// starts again at term 0 with a new uid; a stamp naming the old uid is
// denied even though holder and term match.
func TestLeaseRecreated(t *testing.T) {
	e := newEnv(t, "recreated")
	id, _ := e.pod("ctrl-w")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	before := e.setLease("ctrl-w_1", 0)
	_, err := cms.Create(e.ctx, protectedCM("cm", &before, nil), createOpts(&before))
	admitted(t, "create in the first Lease", err)

	if err := cp.Client.CoordinationV1().Leases(e.ns).Delete(e.ctx, "ctrl", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	after := e.setLease("ctrl-w_1", 0)
	if after.LeaseUID == before.LeaseUID {
		t.Fatal("the re-created Lease kept its uid")
	}
	denied(t, "write stamped with the deleted Lease's uid", mergePatch(t, id.Client, e.ns, "cm", `{"data":{"k":"old"}}`, before), "LeaseRecreated")
	admitted(t, "write stamped with the new Lease", mergePatch(t, id.Client, e.ns, "cm", `{"data":{"k":"new"}}`, after))
}

// TestLeaseExpired: the holder stopped renewing and nobody took over; its
// writes are fenced anyway (G3).
func TestLeaseExpired(t *testing.T) {
	e := newEnv(t, "expired")
	id, _ := e.pod("ctrl-w")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	s := e.setLeaseAt("ctrl-w_1", 4, nowMinus(60), 10)
	_, err := cms.Create(e.ctx, protectedCM("cm", &s, nil), createOpts(&s))
	denied(t, "write by a holder whose Lease expired", err, "LeaseExpired")
	s = e.setLease("ctrl-w_1", 4) // renewed: the same term is good again
	_, err = cms.Create(e.ctx, protectedCM("cm", &s, nil), createOpts(&s))
	admitted(t, "write after the renewal", err)
}

// TestMissingStamp: the controller's own identity (a service account of the
// Lease's namespace) writing without a per-request stamp: a create, an
// update that drops the stored stamp, and a write that keeps the current
// stored stamp but sends none per request, as a read-modify-write or
// client.MergeFrom does; the stored stamp is never enough.
func TestMissingStamp(t *testing.T) {
	e := newEnv(t, "missing")
	id, _ := e.pod("ctrl-w")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	s := e.setLease("ctrl-w_1", 1)
	_, err := cms.Create(e.ctx, protectedCM("unstamped", nil, nil), metav1.CreateOptions{})
	denied(t, "unstamped create", err, "MissingStamp")
	cm, err := cms.Create(e.ctx, protectedCM("cm", &s, nil), createOpts(&s))
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"k": "v"}
	_, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{})
	denied(t, "update with the current stored stamp but none per request", err, "MissingStamp")
	_, err = cms.Update(e.ctx, cm, fencing.UpdateOptions(s, metav1.UpdateOptions{}))
	admitted(t, "the same update with the per-request stamp", err)
	cm, err = cms.Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(cm.Annotations, harness.AnnotationStamp)
	_, err = cms.Update(e.ctx, cm, fencing.UpdateOptions(s, metav1.UpdateOptions{}))
	denied(t, "update that drops the stored stamp", err, "MissingStamp")
}

// TestCarriedForwardStamp: the old leader reads the object the new leader
// wrote and writes it back, carrying the new leader's stamp forward. The
// stamp alone looks current; the pod identity of the request gives it away.
func TestCarriedForwardStamp(t *testing.T) {
	e := newEnv(t, "carried")
	a, _ := e.pod("ctrl-a")
	b, _ := e.pod("ctrl-b")
	sa := e.setLease("ctrl-a_1", 1)
	_, err := a.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, protectedCM("cm", &sa, map[string]string{"by": "a"}), createOpts(&sa))
	admitted(t, "ctrl-a writes in its term", err)
	sb := e.setLease("ctrl-b_1", 2)
	admitted(t, "ctrl-b writes in its term", mergePatch(t, b.Client, e.ns, "cm", `{"data":{"by":"b"}}`, sb))

	cms := a.Client.CoreV1().ConfigMaps(e.ns)
	cm, err := cms.Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Annotations[harness.AnnotationStamp] != sb.String() {
		t.Fatalf("stored stamp %q, want ctrl-b's %q", cm.Annotations[harness.AnnotationStamp], sb)
	}
	cm.Data["by"] = "a, carrying b's stamp"
	_, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{})
	denied(t, "read-modify-write by the old leader's pod, no per-request stamp", err, "MissingStamp")
	_, err = cms.Update(e.ctx, cm, fencing.UpdateOptions(sa, metav1.UpdateOptions{}))
	denied(t, "read-modify-write by the old leader's pod with its own per-request stamp", err, "StaleTerm")
	_, err = cms.Update(e.ctx, cm, fencing.UpdateOptions(sb, metav1.UpdateOptions{}))
	denied(t, "read-modify-write by the old leader's pod copying b's stamp per request", err, "IdentityMismatch")
}

// TestShedProtection: the old leader cannot remove the protection
// annotation (G6); the current leader can.
func TestShedProtection(t *testing.T) {
	e := newEnv(t, "shed")
	a, _ := e.pod("ctrl-a")
	b, _ := e.pod("ctrl-b")
	sa := e.setLease("ctrl-a_1", 1)
	_, err := a.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, protectedCM("cm", &sa, nil), createOpts(&sa))
	admitted(t, "create", err)
	sb := e.setLease("ctrl-b_1", 2)

	denied(t, "old leader removes leasefence.io/lease with its stamp",
		mergePatch(t, a.Client, e.ns, "cm", `{"metadata":{"annotations":{"leasefence.io/lease":null}}}`, sa), "StaleTerm")
	_, err = a.Client.CoreV1().ConfigMaps(e.ns).Patch(e.ctx, "cm", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"leasefence.io/lease":null,"leasefence.io/stamp":null}}}`), metav1.PatchOptions{})
	denied(t, "old leader removes both annotations", err, "MissingStamp")
	cm, err := cp.Client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil || cm.Annotations[harness.AnnotationLease] != "ctrl" {
		t.Fatalf("the protection is gone: %v %v", cm.Annotations, err)
	}
	admitted(t, "current leader removes the protection",
		mergePatch(t, b.Client, e.ns, "cm", `{"metadata":{"annotations":{"leasefence.io/lease":null}}}`, sb))
}

// TestPersonWithKubectl: an operator edits a protected object with kubectl
// (admin credentials: not a service account of the Lease's namespace, no
// per-request stamp), so the webhook judges the write as another writer's,
// not as the leader's. annotate, label and apply keep the protection and
// the stored stamp and are admitted, before and after the term moved on.
// Removing the protection while the controller leads is denied with the one
// thing that gets it through; once the Lease is released it is admitted.
func TestPersonWithKubectl(t *testing.T) {
	e := newEnv(t, "person")
	id, _ := e.pod("ctrl-w")
	s := e.setLease("ctrl-w_1", 1)
	if _, err := id.Client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, protectedCM("cm", &s, map[string]string{"k": "v"}), createOpts(&s)); err != nil {
		t.Fatal(err)
	}
	manifest := func(v string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":%q,
"annotations":{"leasefence.io/lease":"ctrl"}},"data":{"k":%q}}`, e.ns, v)
	}
	edits := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"kubectl annotate", "", []string{"-n", e.ns, "annotate", "--overwrite", "configmap", "cm", "note=checked"}},
		{"kubectl label", "", []string{"-n", e.ns, "label", "--overwrite", "configmap", "cm", "tier=gold"}},
		{"kubectl apply", manifest("by-hand"), []string{"apply", "-f", "-"}},
	}
	run := func(when string) {
		for i, ed := range edits {
			if ed.stdin != "" {
				ed.stdin = manifest(fmt.Sprintf("%s-%d", when, i))
			} else {
				ed.args[len(ed.args)-1] += "-" + when
			}
			out, err := cp.Kubectl(e.ctx, strings.NewReader(ed.stdin), ed.args...)
			if err != nil {
				t.Errorf("%s %s: %v: %s", ed.name, when, err, out)
			}
		}
	}
	run("while-current")
	e.setLease("ctrl-w_2", 2)
	run("after-the-term-moved-on")
	got, err := cp.Client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil || got.Annotations[harness.AnnotationStamp] != s.String() || got.Annotations[harness.AnnotationLease] != "ctrl" {
		t.Fatalf("the person's edits changed the fencing annotations: %v %v", got.Annotations, err)
	}
	if n, err := wh.Requests(e.ctx, map[string]string{"decision": "allowed", "reason": "OtherWriter"}); err != nil || n < 6 {
		t.Errorf("admitted as another writer's: %v, %v; want at least 6", n, err)
	}

	out, err := cp.Kubectl(e.ctx, nil, "-n", e.ns, "annotate", "configmap", "cm", harness.AnnotationLease+"-")
	if err == nil {
		t.Fatalf("removing the protection while the controller leads was admitted: %s", out)
	}
	for _, want := range []string{
		`admission webhook "fence.leasefence.io" denied the request`,
		"leasefence denied the UPDATE of configmaps " + e.ns + "/cm (ProtectionChange)",
		"Lease " + e.ns + "/ctrl", "Stop the controller",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl annotate %s- printed %q; want it to contain %q", harness.AnnotationLease, out, want)
		}
	}
	// Released, as client-go's ReleaseOnCancel leaves it.
	l, err := cp.Client.CoordinationV1().Leases(e.ns).Get(e.ctx, "ctrl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	none, one := "", int32(1)
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &none, &one
	if _, err := cp.Client.CoordinationV1().Leases(e.ns).Update(e.ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Kubectl(e.ctx, nil, "-n", e.ns, "annotate", "configmap", "cm", harness.AnnotationLease+"-"); err != nil {
		t.Errorf("removing the protection once the Lease is released: %v: %s", err, out)
	}
}

// TestDryRun: a dry run is judged exactly like the real write and changes
// nothing, through kubectl --dry-run=server and client-go's DryRun.
func TestDryRun(t *testing.T) {
	e := newEnv(t, "dryrun")
	id, _ := e.pod("ctrl-w")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	old := e.setLease("ctrl-w_1", 1)
	if _, err := cms.Create(e.ctx, protectedCM("cm", &old, map[string]string{"k": "v"}), createOpts(&old)); err != nil {
		t.Fatal(err)
	}
	cur := e.setLease("ctrl-w_2", 2)
	stored, err := cms.Get(e.ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		now, err := cms.Get(e.ctx, "cm", metav1.GetOptions{})
		if err != nil || now.ResourceVersion != stored.ResourceVersion || now.Data["k"] != "v" {
			t.Errorf("%s changed the object: rv %s -> %s, data %v (%v)", what, stored.ResourceVersion, now.ResourceVersion, now.Data, err)
		}
	}

	// client-go
	write := func(s fencing.Stamp, dry bool) error {
		cm := stored.DeepCopy()
		cm.Data["k"] = "changed"
		fencing.StampObject(cm, s)
		opts := fencing.UpdateOptions(s, metav1.UpdateOptions{})
		if dry {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err := cms.Update(e.ctx, cm, opts)
		return err
	}
	dryErr := write(old, true)
	denied(t, "dry-run update, stale", dryErr, "StaleTerm")
	realErr := write(old, false)
	denied(t, "real update, stale", realErr, "StaleTerm")
	// The message says "dry-run UPDATE" for the dry run; otherwise the two
	// are the same decision.
	if dryErr != nil && realErr != nil && strings.Replace(dryErr.Error(), "dry-run UPDATE", "UPDATE", 1) != realErr.Error() {
		t.Errorf("dry run and real write judged differently:\n dry:  %v\n real: %v", dryErr, realErr)
	}
	admitted(t, "dry-run update, current", write(cur, true))
	unchanged("client-go dry runs")

	// kubectl apply --dry-run=server, as the admin, carrying a stamp per
	// request (--field-manager) and on the object.
	manifest := func(s fencing.Stamp) string {
		b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "cm", "namespace": e.ns, "annotations": map[string]string{
				harness.AnnotationLease: "ctrl", harness.AnnotationStamp: s.String()}},
			"data": map[string]string{"k": "applied"}})
		return string(b)
	}
	out, err := cp.Kubectl(e.ctx, strings.NewReader(manifest(old)), "apply", "--dry-run=server", "--field-manager="+old.FieldManager(), "-f", "-")
	if err == nil || !strings.Contains(string(out), "denied the request") || !strings.Contains(string(out), "(StaleTerm)") {
		t.Errorf("kubectl apply --dry-run=server, stale: want a StaleTerm denial, got %v: %s", err, out)
	}
	out, err = cp.Kubectl(e.ctx, strings.NewReader(manifest(cur)), "apply", "--dry-run=server", "--field-manager="+cur.FieldManager(), "-f", "-")
	if err != nil || !strings.Contains(string(out), "(server dry run)") {
		t.Errorf("kubectl apply --dry-run=server, current: want admitted, got %v: %s", err, out)
	}
	unchanged("kubectl dry runs")
}

// TestUnprotectedNotSent: writes to objects without the protection
// annotation never reach the webhook (matchConditions): across them and one
// protected write, the request counter moves by exactly one.
func TestUnprotectedNotSent(t *testing.T) {
	e := newEnv(t, "unprotected")
	id, _ := e.pod("ctrl-w")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	e.setLease("ctrl-w_1", 1)
	before, err := wh.Requests(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, metav1.CreateOptions{})
	admitted(t, "unprotected create", err)
	if err == nil {
		cm.Data = map[string]string{"k": "v"}
		_, err = cms.Update(e.ctx, cm, metav1.UpdateOptions{})
		admitted(t, "unprotected update", err)
		admitted(t, "unprotected delete", cms.Delete(e.ctx, "free", metav1.DeleteOptions{}))
	}
	// The control: one protected write reaches the webhook. A review is
	// counted a moment after its answer, so the count is awaited; once the
	// control is counted, reviews of the earlier writes would have been too.
	_, err = cms.Create(e.ctx, protectedCM("guarded", nil, nil), metav1.CreateOptions{})
	denied(t, "protected unstamped create", err, "MissingStamp")
	after, err := wh.WaitRequests(e.ctx, nil, before+1)
	if err != nil {
		t.Fatalf("the protected write was not counted: %v", err)
	}
	if after != before+1 {
		t.Errorf("unprotected writes reached the webhook: leasefence_requests_total %v -> %v across them and one protected write", before, after)
	}
}
