package deploycheck_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/drivers/kubernetes"
)

// permission is what one API call needs: a verb on a resource (with subresource) of an API group.
type permission struct{ group, resource, verb string }

// used turns the fake clientset's recorded calls into the permissions they need. A server-side apply is
// a patch that may create the object, so it needs create as well.
func used(actions []k8stesting.Action) []permission {
	var out []permission
	add := func(p permission) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, a := range actions {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		p := permission{group: a.GetResource().Group, resource: res, verb: a.GetVerb()}
		add(p)
		if pa, ok := a.(k8stesting.PatchAction); ok && pa.GetPatchType() == "application/apply-patch+yaml" {
			p.verb = "create"
			add(p)
		}
	}
	return out
}

func allows(role *rbacv1.Role, p permission) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, p.group) && slices.Contains(r.Resources, p.resource) && slices.Contains(r.Verbs, p.verb) {
			return true
		}
	}
	return false
}

func granted(role *rbacv1.Role) []permission {
	var out []permission
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, permission{g, res, v})
				}
			}
		}
	}
	return out
}

func spec() drivers.InstanceSpec {
	return drivers.InstanceSpec{InstanceID: "i1", Name: "kitchen", NodeRedVersion: "4.1.15", MemoryMB: 256, CPUPercent: 50,
		AdminToken: "admin", CredentialSecret: "cred", ForgeURL: "http://api:8080", InstanceToken: "fyi_x",
		Modules: map[string]string{"node-red-dashboard": "3.6.6"}}
}

// TestWorkerRoleGrantsExactlyWhatTheDriverUses runs every driver operation against the fake clientset and
// checks that the chart's worker Role allows each call, and grants nothing the driver never uses.
func TestWorkerRoleGrantsExactlyWhatTheDriverUses(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	role := roleOf(t, objs, "prod-flowyard-worker")

	cs := fake.NewClientset()
	mc := metricsfake.NewSimpleClientset()
	d, err := kubernetes.New(kubernetes.Config{Client: cs, Metrics: mc, Namespace: "nodered",
		ReadyTimeout: 50 * time.Millisecond, PollInterval: 5 * time.Millisecond, OnExit: func(string, drivers.Status) {}})
	require.NoError(t, err)
	defer d.Close()
	ctx := context.Background()
	_, err = d.Start(ctx, spec())
	require.NoError(t, err)
	created := len(cs.Actions())
	podOf(t, cs, true)
	mark := len(cs.Actions())
	_, _ = d.WaitReady(ctx, "i1") // reads the Secret and the log; Node-RED itself is not reachable here
	_, err = d.Status(ctx, "i1")
	require.NoError(t, err)
	_, err = d.Logs(ctx, "i1", time.Time{}, 10)
	require.NoError(t, err)
	_, err = d.Running(ctx)
	require.NoError(t, err)
	_, err = d.Usage(ctx)
	require.NoError(t, err)
	require.NoError(t, d.Stop(ctx, "i1"))
	require.NoError(t, d.Remove(ctx, "i1"))

	// Everything but the test's own stand-in for the Deployment controller (between the two marks).
	need := used(append(append(slices.Clone(cs.Actions()[:created]), cs.Actions()[mark:]...), mc.Actions()...))
	for _, p := range need {
		assert.True(t, allows(role, p), "worker Role lacks %+v", p)
	}
	for _, g := range granted(role) {
		assert.True(t, slices.Contains(need, g), "worker Role grants %+v, which the driver never uses", g)
	}
	assert.False(t, allows(role, permission{"", "secrets", "list"}), "the worker cannot list every Secret")
}

// TestAPIRoleCoversReadingLogs: `flowyard serve` reads instance logs through the driver, and nothing more.
func TestAPIRoleCoversReadingLogs(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	role := roleOf(t, objs, "prod-flowyard-api")
	cs := fake.NewClientset()
	worker, err := kubernetes.New(kubernetes.Config{Client: cs, Namespace: "nodered"})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = worker.Start(ctx, spec())
	require.NoError(t, err)
	podOf(t, cs, false)
	mark := len(cs.Actions())

	api, err := kubernetes.New(kubernetes.Config{Client: cs, Namespace: "nodered"})
	require.NoError(t, err)
	lines, err := api.Logs(ctx, "i1", time.Time{}, 100)
	require.NoError(t, err)
	assert.NotEmpty(t, lines)
	need := used(cs.Actions()[mark:])
	require.NotEmpty(t, need)
	for _, p := range need {
		assert.True(t, allows(role, p), "API Role lacks %+v", p)
	}
	for _, g := range granted(role) {
		assert.True(t, slices.Contains(need, g), "API Role grants %+v beyond reading logs", g)
	}
}

// podOf creates instance i1's pod from its Deployment's template, as the Deployment controller would.
func podOf(t *testing.T, cs *fake.Clientset, ready bool) {
	t.Helper()
	ctx := context.Background()
	dep, err := cs.AppsV1().Deployments("nodered").Get(ctx, "nr-i1", metav1.GetOptions{})
	require.NoError(t, err)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "nr-i1-x", Namespace: "nodered", Labels: dep.Spec.Template.Labels,
		Annotations: dep.Spec.Template.Annotations},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "node-red", Ready: ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	_, err = cs.CoreV1().Pods("nodered").Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
}
