package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/flowyard/flowyard/drivers"
)

const testNamespace = "flowyard-instances"

// cluster is a fake clientset plus the parts of a cluster the driver talks to besides the API server: the
// kubelet's log API (scripted per pod) and Node-RED's admin API behind each instance's Service.
type cluster struct {
	t       *testing.T
	cs      *fake.Clientset
	nodeRed *nodeRedDouble

	// The fake's log action does not name the pod, so the scripted log is the current pod's, whichever it is.
	mu          sync.Mutex
	logs        []string // lines as the kubelet returns them (with timestamps)
	prev        []string // the previous container's lines
	logRequests []corev1.PodLogOptions
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, cs: fake.NewClientset()}
	c.cs.PrependReactor("get", "pods", c.reactLogs)
	c.nodeRed = newNodeRedDouble(t)
	return c
}

// reactLogs answers GetLogs like a kubelet: tail, since and previous are honoured.
func (c *cluster) reactLogs(action k8stesting.Action) (bool, runtime.Object, error) {
	if action.GetSubresource() != "log" {
		return false, nil, nil
	}
	opts := action.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logRequests = append(c.logRequests, *opts)
	src := c.logs
	if opts.Previous {
		src = c.prev
	}
	var lines []string
	for _, l := range src {
		ts, _, _ := strings.Cut(l, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if opts.SinceTime != nil && err == nil && t.Before(opts.SinceTime.Time) {
			continue
		}
		lines = append(lines, l)
	}
	if opts.TailLines != nil && int(*opts.TailLines) < len(lines) {
		lines = lines[len(lines)-int(*opts.TailLines):]
	}
	out := strings.Join(lines, "\n")
	if out != "" {
		out += "\n"
	}
	return true, &runtime.Unknown{Raw: []byte(out)}, nil
}

func (c *cluster) setLogs(previous bool, lines ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if previous {
		c.prev = lines
	} else {
		c.logs = lines
	}
}

// driver builds a driver on the fake cluster whose HTTP client reaches the Node-RED double for every host.
func (c *cluster) driver(mutate ...func(*Config)) *Driver {
	c.t.Helper()
	addr := strings.TrimPrefix(c.nodeRed.srv.URL, "http://")
	dialer := &net.Dialer{}
	cfg := Config{
		Client: c.cs, Namespace: testNamespace, PollInterval: 5 * time.Millisecond, ReadyTimeout: 2 * time.Second,
		HTTPClient: &http.Client{Timeout: time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			}}},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := New(cfg)
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = d.Close() })
	return d
}

// pod creates (or replaces) the instance's pod as the Deployment controller and kubelet would, from the
// Deployment's current template, then lets mutate set its status.
func (c *cluster) pod(id, name string, created time.Time, mutate func(*corev1.Pod)) *corev1.Pod {
	c.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Labels: instanceLabels(id),
			UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created)},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	ctx := context.Background()
	if dep, err := c.cs.AppsV1().Deployments(testNamespace).Get(ctx, objectName(id), metav1.GetOptions{}); err == nil {
		p.Annotations = dep.Spec.Template.Annotations // as the ReplicaSet controller copies them
	}
	if mutate != nil {
		mutate(p)
	}
	pods := c.cs.CoreV1().Pods(testNamespace)
	if _, err := pods.Get(ctx, name, metav1.GetOptions{}); err == nil {
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		require.NoError(c.t, err)
		return p
	}
	_, err := pods.Create(ctx, p, metav1.CreateOptions{})
	require.NoError(c.t, err)
	return p
}

// running makes the node-red container run, ready or not.
func running(ready bool, restarts int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Ready: ready, RestartCount: restarts,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(1700000000, 0))}}}}
	}
}

// dump returns every object the driver may have written, as JSON, to compare before and after.
func (c *cluster) dump() map[string]string {
	c.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	add := func(kind string, list any, err error) {
		require.NoError(c.t, err)
		// The items only: a list's own resourceVersion is the tracker's counter, bumped by any write.
		b, err := json.Marshal(reflect.ValueOf(list).Elem().FieldByName("Items").Interface())
		require.NoError(c.t, err)
		out[kind] = string(b)
	}
	deps, err := c.cs.AppsV1().Deployments(testNamespace).List(ctx, metav1.ListOptions{})
	add("deployments", deps, err)
	secrets, err := c.cs.CoreV1().Secrets(testNamespace).List(ctx, metav1.ListOptions{})
	add("secrets", secrets, err)
	cms, err := c.cs.CoreV1().ConfigMaps(testNamespace).List(ctx, metav1.ListOptions{})
	add("configmaps", cms, err)
	svcs, err := c.cs.CoreV1().Services(testNamespace).List(ctx, metav1.ListOptions{})
	add("services", svcs, err)
	claims, err := c.cs.CoreV1().PersistentVolumeClaims(testNamespace).List(ctx, metav1.ListOptions{})
	add("persistentvolumeclaims", claims, err)
	return out
}

// writes lists the mutating API calls recorded since the index from.
func (c *cluster) writes(from int) []string {
	var out []string
	for _, a := range c.cs.Actions()[from:] {
		if !slices.Contains([]string{"get", "list", "watch"}, a.GetVerb()) {
			out = append(out, fmt.Sprintf("%s %s", a.GetVerb(), a.GetResource().Resource))
		}
	}
	return out
}

// nodeRedDouble answers GET /admin/flows/state like Node-RED with a token.
type nodeRedDouble struct {
	srv   *httptest.Server
	mu    sync.Mutex
	token string
	state string
	hosts []string
}

func newNodeRedDouble(t *testing.T) *nodeRedDouble {
	n := &nodeRedDouble{state: "start"}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.hosts = append(n.hosts, r.Host)
		if r.URL.Path != drivers.AdminRoot+"flows/state" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+n.token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"state":%q}`, n.state)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *nodeRedDouble) set(token, state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.token, n.state = token, state
}

func testSpec(id string) drivers.InstanceSpec {
	return drivers.InstanceSpec{
		InstanceID: id, Name: "kitchen", NodeRedVersion: "4.1.15", MemoryMB: 256, CPUPercent: 50,
		Env:      map[string]string{"GREETING": "hello", "FLOWYARD_SECRET_KEY": "smuggled"},
		Settings: map[string]any{"functionTimeout": 5}, CredentialSecret: "cred-secret-value",
		AdminToken: "admin-token-value", ReadToken: "read-token-value",
		ForgeURL: "http://flowyard-api.flowyard.svc:8080", InstanceToken: "fyi_instance-token-value",
	}
}
