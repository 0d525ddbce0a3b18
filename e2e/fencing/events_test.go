package fencing_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

// TestDenialEvents: a stale ex-leader's denied write becomes a Warning Event
// on the object, found where people look (the Events API as `kubectl
// describe` queries it, `kubectl describe`, `kubectl get events`), with the
// denial's reason and the writer; its repeats fold into the same Event's
// count; a denied dry run leaves no Event.
func TestDenialEvents(t *testing.T) {
	if !registered {
		t.Skip("LF_NO_WEBHOOK=1: no webhook, no Events")
	}
	e := newEnv(t, "events")
	id, _ := e.pod("ctrl-a")
	cms := id.Client.CoreV1().ConfigMaps(e.ns)
	old := e.setLease("ctrl-a_1", 3)
	objects := map[string]*corev1.ConfigMap{}
	for _, name := range []string{"dry-only", "shard-map"} {
		cm, err := cms.Create(e.ctx, protectedCM(name, &old, map[string]string{"k": "v"}), fencing.CreateOptions(old, metav1.CreateOptions{}))
		if err != nil {
			t.Fatalf("the leader's create of %s: %v", name, err)
		}
		objects[name] = cm
	}
	e.setLease("ctrl-b_2", 4) // another replica took over
	// The webhook's own account of it, read before and awaited after (the
	// Event counters move after the API server answers the webhook).
	staleByController := map[string]string{"verdict": "denied", "reason": "StaleTerm", "requester": "guarded-controller"}
	counters := map[string]map[string]string{
		"leasefence_decisions_total":         staleByController,
		"leasefence_events_posted_total":     {"verb": "create"},
		"leasefence_events_aggregated_total": nil,
	}
	before := map[string]float64{}
	for name, labels := range counters {
		n, err := wh.Counter(e.ctx, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = n
	}
	patchesBefore, err := wh.Counter(e.ctx, "leasefence_events_posted_total", map[string]string{"verb": "patch"})
	if err != nil {
		t.Fatal(err)
	}
	awaitCounter := func(name string, labels map[string]string, n float64) {
		t.Helper()
		if _, err := wh.WaitCounter(e.ctx, name, labels, n); err != nil {
			t.Error(err)
		}
	}
	// The old leader, still believing it leads, writes with its stamp.
	stale := func(name string, dry bool) error {
		cm := objects[name].DeepCopy()
		cm.Data["k"] = "stale"
		fencing.StampObject(cm, old)
		opts := fencing.UpdateOptions(old, metav1.UpdateOptions{})
		if dry {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err := cms.Update(e.ctx, cm, opts)
		return err
	}
	// The dry run goes first: the webhook's sender takes denials in order,
	// so once a later denial's Event is there, the dry run's would be too.
	denied(t, "the stale leader's dry run", stale("dry-only", true), "StaleTerm")
	denied(t, "the stale leader's write", stale("shard-map", false), "StaleTerm")
	if t.Failed() {
		return
	}

	writer := fmt.Sprintf("Writer: system:serviceaccount:%s:ctrl-a (pod %s/ctrl-a).", e.ns, e.ns)
	ev, err := harness.AwaitDenialEvent(e.ctx, cp.Client, e.ns, "ConfigMap", "shard-map", "StaleTerm", 30*time.Second, nil)
	if err != nil {
		t.Fatalf("no Event for the denied write: %v", err)
	}
	for what, bad := range map[string]bool{
		"type Warning":                           ev.Type != corev1.EventTypeWarning,
		"the object's uid (kubectl describe)":    ev.InvolvedObject.UID != objects["shard-map"].UID,
		"the object's kind and namespace":        ev.InvolvedObject.Kind != "ConfigMap" || ev.InvolvedObject.Namespace != e.ns,
		"the denial's message":                   !strings.Contains(ev.Message, "leasefence denied the UPDATE of configmaps "+e.ns+"/shard-map (StaleTerm)"),
		"the writer":                             !strings.HasSuffix(ev.Message, writer),
		"the writer's Pod as the related object": ev.Related == nil || ev.Related.Kind != "Pod" || ev.Related.Name != "ctrl-a",
		"the operation as the action":            ev.Action != "UPDATE",
		"no count yet":                           ev.Series != nil,
	} {
		if bad {
			t.Errorf("the Event lacks %s: %+v", what, ev)
		}
	}
	if dry, err := harness.DenialEvents(e.ctx, cp.Client, e.ns, "ConfigMap", "dry-only"); err != nil || len(dry) != 0 {
		t.Errorf("a denied dry run left Events (%v): %+v", err, dry)
	}

	// Both denials are decisions of the guarded controller's writer; one
	// Event was created.
	awaitCounter("leasefence_decisions_total", staleByController, before["leasefence_decisions_total"]+2)
	awaitCounter("leasefence_events_posted_total", counters["leasefence_events_posted_total"], before["leasefence_events_posted_total"]+1)

	// kubectl, as a person would look.
	out, err := cp.Kubectl(e.ctx, nil, "-n", e.ns, "describe", "configmap", "shard-map")
	if err != nil || !regexp.MustCompile(`Warning\s+StaleTerm\s+.*leasefence\.io/webhook\s+leasefence denied the UPDATE`).Match(out) {
		t.Errorf("kubectl describe shows no Warning StaleTerm from leasefence.io/webhook (%v):\n%s", err, out)
	}
	out, err = cp.Kubectl(e.ctx, nil, "-n", e.ns, "get", "events", "--field-selector", "type=Warning")
	if err != nil || !regexp.MustCompile(`Warning\s+StaleTerm\s+configmap/shard-map\s+leasefence denied`).Match(out) {
		t.Errorf("kubectl get events shows no Warning StaleTerm for configmap/shard-map (%v):\n%s", err, out)
	}

	// A controller retrying: four more denials, one Event, counted.
	for i := 0; i < 4; i++ {
		denied(t, "the stale leader's retry", stale("shard-map", false), "StaleTerm")
	}
	ev, err = harness.AwaitDenialEvent(e.ctx, cp.Client, e.ns, "ConfigMap", "shard-map", "StaleTerm", 45*time.Second,
		func(ev corev1.Event) (bool, string) {
			if ev.Series == nil {
				return false, "no series yet"
			}
			return ev.Series.Count == 5, fmt.Sprintf("series count %d", ev.Series.Count)
		})
	if err != nil {
		t.Fatalf("the retries were not counted on the Event: %v", err)
	}
	awaitCounter("leasefence_events_aggregated_total", nil, before["leasefence_events_aggregated_total"]+4)
	awaitCounter("leasefence_events_posted_total", map[string]string{"verb": "patch"}, patchesBefore+1)
	all, err := harness.DenialEvents(e.ctx, cp.Client, e.ns, "ConfigMap", "shard-map")
	if err != nil || len(all) != 1 {
		t.Errorf("want one Event for five denials of one writer, got %d (%v)", len(all), err)
	}
	out, err = cp.Kubectl(e.ctx, nil, "-n", e.ns, "describe", "configmap", "shard-map")
	if err != nil || !regexp.MustCompile(`StaleTerm\s+\S+ \(x5 over \S+\)`).Match(out) {
		t.Errorf("kubectl describe does not show the count x5 (%v):\n%s", err, out)
	}
}
