package operator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"leasefence.io/e2e/cluster"
)

// The API server's audit log is the record of who wrote each version of a
// summary, and when each write arrived. An operator that does not stamp
// leaves nothing on the object that names its writer (a client.MergeFrom
// patch carries forward whatever the cached copy held), and a paused
// replica may never log the answer to a write it sent; the API server
// records both before it answers.
const auditBarrier = "audit-barrier" // a ConfigMap the test writes last

// auditPolicy logs, with their answers, the writes of service accounts
// (the replicas) to ConfigMaps, and the barrier's patch. A rule cannot name
// the summary: a create's URL holds no name, and resourceNames match the
// URL's.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: RequestResponse
  userGroups: ["system:serviceaccounts"]
  verbs: ["create", "update", "patch", "delete"]
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
  verbs: ["patch"]
  resources:
  - group: ""
    resources: ["configmaps"]
    resourceNames: ["` + auditBarrier + `"]
- level: None
`

// auditArgs writes the policy into dir and returns the API server flags
// that turn the audit log on, and the log's path.
func auditArgs(dir string) ([]string, string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "audit.log")
	// The log backend writes each event before the request's handler
	// returns (--audit-log-mode=blocking, the default).
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + path, "--audit-log-mode=blocking",
		"--audit-log-maxsize=0"}, path, nil
}

// auditWrite is one write to a summary as the API server answered it.
type auditWrite struct {
	Verb     string
	Pod      string // the requester's service account, named after its pod here
	Arrived  time.Time
	Answered time.Time
	Code     int32
	Message  string
	RV       int64 // of the version written; 0 when none was
}

func (w auditWrite) denied() bool { return strings.Contains(w.Message, "denied the request") }

// unanswered: the write got no verdict (its client went away, or the API
// server timed out), so it may or may not have committed.
func (w auditWrite) unanswered() bool { return w.RV == 0 && (w.Code == 0 || w.Code >= 500) }

type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
	} `json:"responseStatus"`
	ResponseObject struct {
		Kind     string `json:"kind"`
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	} `json:"responseObject"`
	RequestReceived metav1.MicroTime `json:"requestReceivedTimestamp"`
	Completed       metav1.MicroTime `json:"stageTimestamp"`
}

// readAudit returns the completed writes to the summary of namespace ns
// made by a service account of ns, and whether the barrier's write is in
// the log.
func readAudit(path, ns string) ([]auditWrite, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var out []auditWrite
	barrier := false
	prefix := "system:serviceaccount:" + ns + ":"
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"namespace":"`+ns+`"`) {
			continue
		}
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, false, fmt.Errorf("%s: %v", path, err)
		}
		if e.Stage != "ResponseComplete" || e.ObjectRef.Namespace != ns {
			continue
		}
		if e.ObjectRef.Name == auditBarrier {
			barrier = true
			continue
		}
		if e.ObjectRef.Name != summaryName || !strings.HasPrefix(e.User.Username, prefix) {
			continue
		}
		w := auditWrite{Verb: e.Verb, Pod: strings.TrimPrefix(e.User.Username, prefix),
			Arrived: e.RequestReceived.Time, Answered: e.Completed.Time,
			Code: e.ResponseStatus.Code, Message: e.ResponseStatus.Message}
		if e.ResponseStatus.Code < 300 && e.ResponseObject.Kind == "ConfigMap" {
			w.RV, _ = strconv.ParseInt(e.ResponseObject.Metadata.ResourceVersion, 10, 64)
		}
		out = append(out, w)
	}
	return out, barrier, sc.Err()
}

// auditAfterBarrier, called once the replicas are stopped, patches the
// barrier ConfigMap in ns, awaits the summary's newest version on its watch
// (versions), and returns the summary's writes once the log holds the
// barrier's event and an event for each version (every version of the
// summary is a replica's write). The replicas sent every request before
// they were stopped, so a write of theirs still missing from the log then
// was not answered before the barrier's. One exception: a write whose
// client was killed while the API server committed it is logged with the
// cancellation (a 504), not the version it wrote; its version is then left
// to judgeIdentity to attribute.
func auditAfterBarrier(ctx context.Context, path, ns string, versions func() []version) ([]version, []auditWrite, error) {
	cms := cp.Client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: auditBarrier}}, metav1.CreateOptions{}); err != nil {
		return nil, nil, err
	}
	if _, err := cms.Patch(ctx, auditBarrier, types.MergePatchType, []byte(`{"data":{"done":"true"}}`), metav1.PatchOptions{}); err != nil {
		return nil, nil, err
	}
	summary, err := cms.Get(ctx, summaryName, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	newest, _ := strconv.ParseInt(summary.ResourceVersion, 10, 64)
	if err := awaitVersion(ctx, versions, newest); err != nil {
		return nil, nil, err
	}
	vs := versions()
	var writes []auditWrite
	err = cluster.Poll(ctx, 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, string, error) {
		var barrier bool
		var err error
		writes, barrier, err = readAudit(path, ns)
		if err != nil || !barrier {
			return false, "waiting for the barrier's audit event", err
		}
		logged := map[int64]bool{}
		unanswered := false
		for _, w := range writes {
			logged[w.RV] = true
			unanswered = unanswered || w.unanswered()
		}
		for _, v := range vs {
			if !logged[v.rv] && !unanswered {
				return false, fmt.Sprintf("the summary's version %d has no audit event", v.rv), nil
			}
		}
		return true, "", nil
	})
	return vs, writes, err
}
