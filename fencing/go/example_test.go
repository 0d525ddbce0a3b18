package fencing_test

import (
	"context"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"

	fencing "leasefence.io/fencing/go"
)

// A controller runs client-go's leader election on a fencing Lock and stamps
// every write with lock.Stamp().
func Example() {
	config, err := rest.InClusterConfig()
	if err != nil {
		panic(err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	hostname, _ := os.Hostname() // in a pod: the pod's name
	identity := hostname + "_" + string(uuid.NewUUID())

	lock := fencing.NewLeaseLock("kube-ops", "my-controller", identity, client.CoordinationV1(), nil)
	leaderelection.RunOrDie(context.Background(), leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { runController(ctx, client, lock) },
			OnStoppedLeading: func() { os.Exit(0) },
		},
	})
}

func runController(ctx context.Context, client kubernetes.Interface, lock *fencing.Lock) {}

// Main resource writes carry the stamp as an annotation.
func ExampleStampObject() {
	var (
		ctx    context.Context
		client kubernetes.Interface
		lock   *fencing.Lock
		cm     *corev1.ConfigMap
	)
	s, err := lock.Stamp()
	if err != nil {
		return // not the leader (fencing.ErrNotLeader): do not write
	}
	fencing.StampObject(cm, s)
	_, err = client.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	_ = err // a stale ex-leader's write is denied here (Forbidden)
}

// Patches get the stamp merged in.
func ExampleMergePatch() {
	var (
		ctx    context.Context
		client kubernetes.Interface
		lock   *fencing.Lock
	)
	s, err := lock.Stamp()
	if err != nil {
		return
	}
	patch, err := fencing.MergePatch([]byte(`{"data":{"shards":"4"}}`), s)
	if err != nil {
		return
	}
	_, err = client.CoreV1().ConfigMaps("default").Patch(ctx, "shard-map", types.MergePatchType, patch, metav1.PatchOptions{})
	_ = err
}

// Status writes carry the stamp in fieldManager.
func ExampleUpdateOptions() {
	var (
		ctx    context.Context
		client kubernetes.Interface
		lock   *fencing.Lock
		deploy *appsv1.Deployment
	)
	s, err := lock.Stamp()
	if err != nil {
		return
	}
	_, err = client.AppsV1().Deployments(deploy.Namespace).UpdateStatus(ctx, deploy, fencing.UpdateOptions(s, metav1.UpdateOptions{}))
	_ = err
}

// Deletes stamp the object first, then delete exactly the stamped version.
func ExampleDelete() {
	var (
		ctx  context.Context
		dyn  dynamic.Interface
		lock *fencing.Lock
	)
	s, err := lock.Stamp()
	if err != nil {
		return
	}
	widgets := schema.GroupVersionResource{Group: "example.io", Version: "v1", Resource: "widgets"}
	err = fencing.Delete(ctx, dyn.Resource(widgets).Namespace("default"), "w1", s)
	_ = err
}

// Typed clients use DeleteTyped.
func ExampleDeleteTyped() {
	var (
		ctx    context.Context
		client kubernetes.Interface
		lock   *fencing.Lock
	)
	s, err := lock.Stamp()
	if err != nil {
		return
	}
	err = fencing.DeleteTyped(ctx, client.CoreV1().ConfigMaps("default"), "shard-map", s, metav1.DeleteOptions{})
	_ = err
}
