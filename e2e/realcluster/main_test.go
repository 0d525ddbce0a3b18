// Package realcluster_test runs leasefence in the fuller cluster
// (cluster.Options.Full): kube-controller-manager with per-controller
// service-account credentials, kube-scheduler and kwok nodes, with the
// webhook run with the flags of manifests/base's Deployment and registered
// with manifests/base's ValidatingWebhookConfiguration. The writes to
// protected objects are made by the real controllers, by real pod-bound
// identities and by kubectl; where the cluster cannot make a write, the test
// impersonates the writer and says why.
package realcluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"leasefence.io/e2e/cluster"
	"leasefence.io/e2e/harness"
	fencing "leasefence.io/fencing/go"
)

var (
	cp *cluster.Cluster
	wh *harness.Webhook
)

// adminGroup is the group the webhook exempts (--exempt-group), as
// docs/install.md advises for cluster administrators who must be able to
// fix anything; a person in it is "an exempt admin" below.
const adminGroup = "leasefence:admins"

// leaseDuration keeps the tests' Leases from expiring while a rollout runs.
const leaseDuration = 3600

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	// Two nodes: the hostNetwork test needs a pod on a node other than the
	// holder's.
	cp, err = cluster.Start(ctx, cluster.Options{Full: true, Nodes: 2})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the fuller cluster: %v\n", err)
		return 1
	}
	defer cp.Stop()
	dir, err := os.MkdirTemp("", "leasefence-realcluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if wh, err = startWebhook(ctx, dir); err != nil {
		fmt.Fprintf(os.Stderr, "webhook: %v\n", err)
		return 1
	}
	defer wh.Stop()
	return m.Run()
}

// startWebhook runs the webhook with the flags of manifests/base's
// Deployment (plus the exempt admin group), gives its service account the
// RBAC of manifests/base and components/scale, and registers manifests/base's
// webhook configuration pointed at it. dir receives its certificates,
// kubeconfig and log.
func startWebhook(ctx context.Context, dir string) (*harness.Webhook, error) {
	args, err := harness.BaseDeploymentArgs()
	if err != nil {
		return nil, err
	}
	args = append(args, "--exempt-group="+adminGroup)
	w, err := harness.StartWebhook(ctx, harness.WebhookOptions{Cluster: cp, Dir: dir, Args: args})
	if err != nil {
		return nil, err
	}
	mdir, err := harness.ManifestsDir()
	if err == nil {
		_, err = cp.Kubectl(ctx, nil, "apply", "-f", mdir+"/base/rbac.yaml", "-f", mdir+"/components/scale/rbac.yaml")
	}
	if err == nil {
		// The exempt admins are cluster admins.
		_, err = cp.Kubectl(ctx, nil, "create", "clusterrolebinding", "leasefence-admins", "--clusterrole=cluster-admin", "--group="+adminGroup)
	}
	if err == nil {
		err = harness.RegisterManifests(ctx, cp, w)
	}
	if err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// env is one namespace with a Lease "ctrl" that the test drives as the
// admin: a leader change is an update of the Lease's holder and term, as
// client-go's elector would write it.
type env struct {
	t   *testing.T
	ctx context.Context
	ns  string
}

// newEnv creates namespace ns, opted into /scale fencing
// (leasefence.io/fence-scale=true) so that /scale writes reach the webhook.
func newEnv(t *testing.T, ns string) *env {
	ctx := testCtx(t, 4*time.Minute)
	if _, err := cp.CreateNamespace(ctx, ns, map[string]string{"leasefence.io/fence-scale": "true"}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, ns: ns}
}

// controllerRules let the guarded controller (and the tools) write what the
// tests protect.
func controllerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/status", "deployments/scale", "statefulsets", "statefulsets/status", "replicasets"}, Verbs: []string{"*"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "jobs/status"}, Verbs: []string{"*"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch"}},
	}
}

// controller is a pod-bound identity of the guarded controller: a service
// account of the Lease's namespace, a Pod (scheduled to a kwok node and run
// there) and a token bound to it.
func (e *env) controller(pod string) *cluster.PodIdentity {
	e.t.Helper()
	id, err := cp.NewPodIdentity(e.ctx, e.ns, pod, pod, controllerRules(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// tool is a pod-bound identity in a namespace of its own (created if
// needed), allowed to write in e.ns what the controller may: GitOps, Helm, a
// backup tool, a reloader, an autoscaler.
func (e *env) tool(ns, name string) *cluster.PodIdentity {
	e.t.Helper()
	if _, err := cp.CreateNamespace(e.ctx, ns, nil); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
	id, err := cp.NewPodIdentity(e.ctx, ns, name, name, nil, "")
	if err != nil {
		e.t.Fatal(err)
	}
	roles := cp.Client.RbacV1()
	if _, err := roles.Roles(e.ns).Create(e.ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}, Rules: controllerRules(),
	}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := roles.RoleBindings(e.ns).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ns + "-" + name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// setLease makes holder the holder of Lease name in term, renewed now,
// creating the Lease if needed, and returns the holder's stamp.
func (e *env) setLease(name, holder string, term int32) fencing.Stamp {
	e.t.Helper()
	leases := cp.Client.CoordinationV1().Leases(e.ns)
	now := metav1.NewMicroTime(time.Now())
	spec := coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(leaseDuration)),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To(term),
	}
	l, err := leases.Get(e.ctx, name, metav1.GetOptions{})
	if err == nil {
		l.Spec = spec
		l, err = leases.Update(e.ctx, l, metav1.UpdateOptions{})
	} else {
		l, err = leases.Create(e.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := fencing.StampFromLease(l)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// release empties Lease name's holder, as client-go's ReleaseOnCancel does.
func (e *env) release(name string) {
	e.t.Helper()
	leases := cp.Client.CoordinationV1().Leases(e.ns)
	l, err := leases.Get(e.ctx, name, metav1.GetOptions{})
	if err == nil {
		l.Spec.HolderIdentity = ptr.To("")
		l.Spec.LeaseDurationSeconds = ptr.To(int32(1))
		_, err = leases.Update(e.ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// kubectl runs the admin's kubectl in e.ns (a person: not exempt).
func (e *env) kubectl(args ...string) (string, error) {
	out, err := cp.Kubectl(e.ctx, nil, append([]string{"-n", e.ns}, args...)...)
	return string(out), err
}

// kubectlAs runs kubectl in e.ns with the kubeconfig of a pod identity.
func (e *env) kubectlAs(id *cluster.PodIdentity, stdin string, args ...string) (string, error) {
	out, err := cluster.KubectlWith(e.ctx, cp.KubectlPath(), id.Kubeconfig, strings.NewReader(stdin), append([]string{"-n", e.ns}, args...)...)
	return string(out), err
}

// kubectlEnv runs the admin's kubectl in e.ns with extra environment
// variables (KUBE_EDITOR for kubectl edit).
func (e *env) kubectlEnv(envv []string, args ...string) (string, error) {
	cmd := exec.CommandContext(e.ctx, cp.KubectlPath(), append([]string{"--kubeconfig=" + cp.KubeconfigPath, "-n", e.ns}, args...)...)
	cmd.Env = append(os.Environ(), envv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// protection is the annotation set of an object guarded by Lease lease,
// stamped with s (no stamp when s is the zero Stamp).
func protection(lease string, s fencing.Stamp) map[string]string {
	a := map[string]string{harness.AnnotationLease: lease}
	if s != (fencing.Stamp{}) {
		a[harness.AnnotationStamp] = s.String()
	}
	return a
}

// podTemplate is a one-container Pod template; kwok runs it (the image is
// never pulled).
func podTemplate(app, image string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
		},
	}
}

// deployment is a protected Deployment (guarded by Lease "ctrl") stamped
// with s, with revisionHistoryLimit 0 so that the deployment controller
// deletes each old ReplicaSet once it is scaled down.
func deployment(name string, replicas int32, s fencing.Stamp) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: protection("ctrl", s)},
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To(replicas),
			RevisionHistoryLimit: ptr.To(int32(0)),
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:             podTemplate(name, "registry.k8s.io/pause:3.10", corev1.RestartPolicyAlways),
		},
	}
}

func statefulSet(name string, replicas int32, s fencing.Stamp) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: protection("ctrl", s)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name, "registry.k8s.io/pause:3.10", corev1.RestartPolicyAlways),
		},
	}
}

func job(name string, completions int32, s fencing.Stamp) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: protection("ctrl", s)},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions),
			Parallelism: ptr.To(completions),
			Template:    podTemplate(name, "registry.k8s.io/pause:3.10", corev1.RestartPolicyNever),
		},
	}
}

// createDeployment creates d as the controller id, stamped with s on the
// object and per request.
func (e *env) createDeployment(id *cluster.PodIdentity, d *appsv1.Deployment, s fencing.Stamp) {
	e.t.Helper()
	if _, err := id.Client.AppsV1().Deployments(e.ns).Create(e.ctx, d, fencing.CreateOptions(s, metav1.CreateOptions{})); err != nil {
		e.t.Fatalf("the controller's create of deployment %s: %v", d.Name, err)
	}
}

// rolloutStatus waits, as a person would, for kubectl rollout status.
func (e *env) rolloutStatus(what string) {
	e.t.Helper()
	if out, err := e.kubectl("rollout", "status", what, "--timeout=120s"); err != nil {
		e.t.Fatalf("kubectl rollout status %s did not finish: %v\n%s", what, err, e.denials())
	} else {
		e.t.Logf("kubectl rollout status %s: %s", what, strings.TrimSpace(out))
	}
}

// denials lists the webhook's denials in e.ns (from its log; admissions are
// not logged at the Deployment's log level), for failure messages: what
// kept a controller from progressing.
func (e *env) denials() string {
	n, text := e.denialLog()
	return fmt.Sprintf("webhook denials in %s: %d\n%s", e.ns, n, text)
}

// denialLog counts the webhook's denials in e.ns and describes the first ten.
func (e *env) denialLog() (int, string) {
	lines, err := wh.LogLines()
	if err != nil {
		return -1, "webhook log: " + err.Error()
	}
	var b strings.Builder
	n := 0
	for _, l := range lines {
		if l["namespace"] == e.ns && l["allowed"] == false {
			n++
			if n <= 10 {
				fmt.Fprintf(&b, "  %v %v %v: %v\n", l["operation"], l["resource"], l["name"], l["message"])
			}
		}
	}
	return n, b.String()
}

// await polls cond (bounded) and fails the test with its last note.
func (e *env) await(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	e.t.Helper()
	if err := cluster.Poll(e.ctx, timeout, 200*time.Millisecond, cond); err != nil {
		e.t.Fatalf("%s: %v\n%s", what, err, e.denials())
	}
}

// admitted fails the test when err is not nil.
func admitted(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want admitted, got %v", what, err)
	}
}

// denied fails the test unless err is leasefence's denial with reason and
// its message says each of hints (the one thing that gets the write
// through).
func denied(t *testing.T, what string, err error, reason string, hints ...string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: admitted, want denied (%s)", what, reason)
		return
	case !strings.Contains(err.Error(), "denied the request") || !strings.Contains(err.Error(), "leasefence"):
		t.Errorf("%s: want leasefence's denial (%s), got %v", what, reason, err)
		return
	case !strings.Contains(err.Error(), "("+reason+")"):
		t.Errorf("%s: want reason %s, got %v", what, reason, err)
		return
	}
	for _, h := range hints {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("%s: the denial does not say %q: %v", what, h, err)
		}
	}
}

// impersonating returns a client that acts as user in groups with extra,
// through the admin's impersonation rights, for writes this cluster cannot
// make with a real identity (each use says why).
func impersonating(t *testing.T, user string, groups []string, extra map[string][]string) kubernetes.Interface {
	t.Helper()
	cfg := *cp.Config
	cfg.Impersonate.UserName = user
	cfg.Impersonate.Groups = groups
	cfg.Impersonate.Extra = extra
	c, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exemptAdmin is a person in the exempt admin group (kubectl --as-group
// would do the same).
func exemptAdmin(t *testing.T) kubernetes.Interface {
	return impersonating(t, "alice", []string{adminGroup, "system:authenticated"}, nil)
}
