package kubernetes

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/workflows/instance"
)

// kubelet plays the Deployment controller and the kubelet for the fake cluster: a Deployment that wants a
// replica gets one pod, whose container either becomes ready or crash-loops; one scaled to zero loses it.
type kubelet struct {
	c     *cluster
	mu    sync.Mutex
	crash bool
}

func startKubelet(t *testing.T, c *cluster) *kubelet {
	k := &kubelet{c: c}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			k.reconcile()
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return k
}

func (k *kubelet) setCrash(crash bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.crash = crash
}

func (k *kubelet) reconcile() {
	ctx := context.Background()
	deps, err := k.c.cs.AppsV1().Deployments(testNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	pods := k.c.cs.CoreV1().Pods(testNamespace)
	for _, dep := range deps.Items {
		name := dep.Name + "-pod"
		if *dep.Spec.Replicas == 0 {
			_ = pods.Delete(ctx, name, metav1.DeleteOptions{})
			continue
		}
		k.mu.Lock()
		crash := k.crash
		k.mu.Unlock()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Labels: dep.Spec.Template.Labels,
			Annotations: dep.Spec.Template.Annotations}}
		if crash {
			waiting("CrashLoopBackOff", "", 3, &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"})(p)
		} else {
			running(true, 0)(p)
		}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			_, _ = pods.Update(ctx, p, metav1.UpdateOptions{})
		}
	}
}

// platform is a store with one instance row, as the API leaves it before provisioning.
type platform struct {
	store    *storage.Store
	sealer   *domain.Sealer
	instance *storage.Instance
	team     string
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	st := storagetest.New(t, "sqlite")
	require.NoError(t, st.SeedDefaults(ctx))
	sealer, err := domain.NewSealer("0123456789abcdef0123456789abcdef")
	require.NoError(t, err)
	teamTypes, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	types, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	require.NoError(t, err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	require.NoError(t, err)
	templates, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	require.NoError(t, err)
	team := &storage.Team{ID: domain.NewID(), Name: "Ops", Slug: "ops", TeamTypeID: teamTypes[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "plant"}
	require.NoError(t, st.InsertApplication(ctx, app))
	in := &storage.Instance{
		ID: domain.NewID(), Name: "boiler", ApplicationID: app.ID, TeamID: team.ID,
		InstanceTypeID: types[0].ID, StackID: stacks[0].ID, TemplateID: templates[0].ID,
		State: domain.InstanceProvisioning, DesiredState: domain.InstanceRunning,
		Settings: map[string]any{}, Env: []domain.EnvVar{{Name: "SITE", Value: "north"}}, Modules: map[string]string{},
		CredentialSecret: sealer.Seal("credential-secret"), AdminToken: sealer.Seal("admin-token-value"),
		ReadToken: sealer.Seal("read-token"), RuntimeToken: sealer.Seal("fyi_runtime"),
	}
	require.NoError(t, st.InsertInstance(ctx, in))
	return &platform{store: st, sealer: sealer, instance: in, team: team.ID}
}

// run executes one lifecycle action with the real activities on the Kubernetes driver.
func (p *platform) run(t *testing.T, d *Driver, action instance.Action) (instance.Result, error) {
	t.Helper()
	op := &storage.Operation{ID: domain.NewID(), Kind: string(action), SubjectType: "instance", SubjectID: p.instance.ID,
		TeamID: &p.team, Status: domain.OperationPending, WorkflowID: instance.WorkflowID(p.instance.ID)}
	_, _, err := p.store.InsertOperation(ctx, op)
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(instance.Lifecycle, workflow.RegisterOptions{Name: instance.WorkflowName})
	env.RegisterActivity(&activities.Instances{Store: p.store, Driver: d, Sealer: p.sealer, ForgeURL: "http://flowyard-api.flowyard.svc:8080"})
	env.ExecuteWorkflow(instance.Lifecycle, instance.Params{InstanceID: p.instance.ID, TeamID: p.team, OperationID: op.ID, Action: action})
	require.True(t, env.IsWorkflowCompleted())
	var res instance.Result
	err = env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return res, err
}

func (p *platform) row(t *testing.T) *storage.Instance {
	t.Helper()
	in, err := p.store.GetInstance(ctx, p.instance.ID)
	require.NoError(t, err)
	return in
}

func TestInstanceWorkflowRunsOnTheKubernetesDriver(t *testing.T) {
	c := newCluster(t)
	startKubelet(t, c)
	c.nodeRed.set("admin-token-value", "start")
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = 10 * time.Second })
	p := newPlatform(t)
	id := p.instance.ID

	res, err := p.run(t, d, instance.ActionProvision)
	require.NoError(t, err)
	assert.Equal(t, domain.InstanceRunning, res.State)
	in := p.row(t)
	assert.Equal(t, domain.InstanceRunning, in.State)
	assert.Equal(t, "http://nr-"+id+".flowyard-instances.svc:1880", in.RuntimeURL)
	dep := getDeployment(t, c, id)
	assert.Equal(t, int32(1), *dep.Spec.Replicas)
	assert.Equal(t, "nodered/node-red:"+storage.DefaultNodeRedVersion, dep.Spec.Template.Spec.Containers[0].Image)
	sec, err := c.cs.CoreV1().Secrets(testNamespace).Get(ctx, "nr-"+id, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "fyi_runtime", string(sec.Data["instance-token"]), "the storage plugin's token, opened from the store")

	res, err = p.run(t, d, instance.ActionStop)
	require.NoError(t, err)
	assert.Equal(t, domain.InstanceStopped, res.State)
	assert.Equal(t, int32(0), *getDeployment(t, c, id).Spec.Replicas)

	res, err = p.run(t, d, instance.ActionRestart)
	require.NoError(t, err)
	assert.Equal(t, domain.InstanceRunning, res.State)
	assert.Equal(t, domain.InstanceRunning, p.row(t).State)

	res, err = p.run(t, d, instance.ActionDelete)
	require.NoError(t, err)
	assert.Equal(t, domain.InstanceDeleted, res.State)
	st, err := d.Status(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "missing", string(st.State))
	_, err = p.store.GetInstance(ctx, id)
	assert.True(t, domain.IsKind(err, domain.KindNotFound), "the row is gone: %v", err)
}

func TestInstanceWorkflowEndsInErrorWhenThePodCrashLoops(t *testing.T) {
	c := newCluster(t)
	k := startKubelet(t, c)
	k.setCrash(true)
	c.setLogs(true, "2026-01-02T03:04:05Z Error: Cannot find module 'node-red-contrib-gone'")
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = 10 * time.Second })
	p := newPlatform(t)

	_, err := p.run(t, d, instance.ActionProvision)
	require.Error(t, err)
	in := p.row(t)
	assert.Equal(t, domain.InstanceError, in.State)
	assert.Contains(t, in.StateReason, "CrashLoopBackOff: exited with code 1 (Error), restarted 3 times")
	assert.Contains(t, in.StateReason, "Cannot find module 'node-red-contrib-gone'", "the user sees the pod's last words")
}
