package cluster

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// PodNameExtraKey is the userInfo.extra key in which the API server names the
// pod a service-account token is bound to.
const PodNameExtraKey = "authentication.kubernetes.io/pod-name"

// CreateNamespace creates a namespace with the given labels.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels map[string]string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	return c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
}

// CreateServiceAccount creates a ServiceAccount and, when rules is not empty,
// a Role with those rules and a RoleBinding of it to the ServiceAccount, all
// named name in namespace ns.
func (c *Cluster) CreateServiceAccount(ctx context.Context, ns, name string, rules []rbacv1.PolicyRule) (*corev1.ServiceAccount, error) {
	sa, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create service account %s/%s: %w", ns, name, err)
	}
	if len(rules) == 0 {
		return sa, nil
	}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      rules,
	}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create role %s/%s: %w", ns, name, err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create role binding %s/%s: %w", ns, name, err)
	}
	return sa, nil
}

// CreatePod creates a Pod that runs as serviceAccount. With no scheduler or
// kubelet it stays Pending forever, which is all a pod identity needs.
func (c *Cluster) CreatePod(ctx context.Context, ns, name, serviceAccount string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccount,
			// The test process uses a TokenRequest token instead; nothing would
			// mount this one anyway.
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name:  "main",
				Image: "pause", // never pulled: no kubelet
			}},
		},
	}
	p, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	return p, nil
}

// PodToken requests a token for the pod's service account, bound to the pod
// (TokenRequest with a Pod boundObjectRef carrying its uid). The API server
// rejects the token once the pod is deleted, and reports the pod's name and
// uid in the userInfo.extra of requests made with it. The API server enforces
// a minimum lifetime of 10 minutes; 0 means one hour.
func (c *Cluster) PodToken(ctx context.Context, pod *corev1.Pod, lifetime time.Duration) (string, error) {
	if lifetime == 0 {
		lifetime = time.Hour
	}
	tr, err := c.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(int64(lifetime / time.Second)),
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				Kind:       "Pod",
				APIVersion: "v1",
				Name:       pod.Name,
				UID:        pod.UID,
			},
		}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return tr.Status.Token, nil
}

// WriteTokenKubeconfig writes a kubeconfig that reaches this cluster with a
// bearer token, for a separate process (or kubectl) to act with that identity.
func (c *Cluster) WriteTokenKubeconfig(path, user, token string) error {
	return writeKubeconfig(path, c.Host, c.CACertPEM, user, &clientcmdapi.AuthInfo{Token: token})
}

// TokenConfig returns a rest.Config that acts with the given bearer token.
func (c *Cluster) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CACertPEM},
		BearerToken:     token,
		QPS:             -1,
		Burst:           -1,
	}
}

// PodIdentity is a pod-bound service-account identity usable from the test
// process or, through Kubeconfig, from another process.
type PodIdentity struct {
	Namespace      string
	ServiceAccount string
	Pod            *corev1.Pod
	Token          string
	Kubeconfig     string // path of a kubeconfig that uses Token
	Config         *rest.Config
	Client         kubernetes.Interface
}

// NewPodIdentity creates, in namespace ns, a ServiceAccount named
// serviceAccount with a Role holding rules, a Pod named podName bound to it,
// a token bound to that Pod, and a kubeconfig using the token at
// kubeconfigPath (or <Dir>/kubeconfig-<ns>-<pod> when empty).
func (c *Cluster) NewPodIdentity(ctx context.Context, ns, serviceAccount, podName string, rules []rbacv1.PolicyRule, kubeconfigPath string) (*PodIdentity, error) {
	if _, err := c.CreateServiceAccount(ctx, ns, serviceAccount, rules); err != nil {
		return nil, err
	}
	pod, err := c.CreatePod(ctx, ns, podName, serviceAccount)
	if err != nil {
		return nil, err
	}
	token, err := c.PodToken(ctx, pod, 0)
	if err != nil {
		return nil, err
	}
	if kubeconfigPath == "" {
		kubeconfigPath = fmt.Sprintf("%s/kubeconfig-%s-%s", c.Dir, ns, podName)
	}
	if err := c.WriteTokenKubeconfig(kubeconfigPath, podName, token); err != nil {
		return nil, err
	}
	cfg := c.TokenConfig(token)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &PodIdentity{
		Namespace:      ns,
		ServiceAccount: serviceAccount,
		Pod:            pod,
		Token:          token,
		Kubeconfig:     kubeconfigPath,
		Config:         cfg,
		Client:         client,
	}, nil
}

// WhoAmI asks the API server how it authenticates client (a
// SelfSubjectReview) and returns the user it sees, extra included.
func WhoAmI(ctx context.Context, client kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("self subject review: %w", err)
	}
	return r.Status.UserInfo, nil
}
