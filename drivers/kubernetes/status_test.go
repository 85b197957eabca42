package kubernetes

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/drivers"
)

func waiting(reason, message string, restarts int32, last *corev1.ContainerStateTerminated) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		if last != nil {
			p.Status.Phase = corev1.PodRunning
		}
		cs := corev1.ContainerStatus{Name: containerName, RestartCount: restarts,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}
		if last != nil {
			cs.LastTerminationState.Terminated = last
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	}
}

func TestStatusMapsPodStatesToDriverStates(t *testing.T) {
	cases := []struct {
		name     string
		pod      func(*corev1.Pod)
		state    drivers.State
		reason   string
		exitCode int
	}{
		{"scheduled, no container yet", nil, drivers.StateStarting, "pod pending", -1},
		{"unschedulable", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient memory."}}
		}, drivers.StateStarting, "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.", -1},
		{"creating the container", waiting("ContainerCreating", "", 0, nil), drivers.StateStarting, "ContainerCreating", -1},
		{"first image pull error may recover", waiting("ErrImagePull", "rpc error: not found", 0, nil), drivers.StateStarting, "ErrImagePull: rpc error: not found", -1},
		{"image pull back-off", waiting("ImagePullBackOff", `Back-off pulling image "nodered/node-red:9.9.9"`, 0, nil),
			drivers.StateCrashed, `ImagePullBackOff: Back-off pulling image "nodered/node-red:9.9.9"`, -1},
		{"config error", waiting("CreateContainerConfigError", `secret "nr-i1" not found`, 0, nil),
			drivers.StateCrashed, `CreateContainerConfigError: secret "nr-i1" not found`, -1},
		{"running, probe not passed yet", running(false, 0), drivers.StateStarting, "waiting for the readiness probe", -1},
		{"running and ready", running(true, 0), drivers.StateRunning, "", -1},
		{"crash loop", waiting("CrashLoopBackOff", "back-off 40s restarting failed container", 3,
			&corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}),
			drivers.StateCrashed, "CrashLoopBackOff: exited with code 1 (Error), restarted 3 times", 1},
		{"killed for memory", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, drivers.StateCrashed, "exited with code 137 (OOMKilled)", 137},
		{"ready again after a restart keeps the last exit code", func(p *corev1.Pod) {
			running(true, 1)(p)
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2}
		}, drivers.StateRunning, "", 2},
		{"evicted", func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "Evicted", "The node was low on resource: ephemeral-storage."
		}, drivers.StateCrashed, "pod failed: Evicted: The node was low on resource: ephemeral-storage.", -1},
		{"installing modules", func(p *corev1.Pod) {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: initName,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}, drivers.StateStarting, "installing palette modules", -1},
		{"module install fails", func(p *corev1.Pod) {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: initName, RestartCount: 2,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}
		}, drivers.StateCrashed, "installing palette modules failed: CrashLoopBackOff: exited with code 1 (Error), restarted 2 times", -1},
		{"modules installed, node-red running", func(p *corev1.Pod) {
			running(true, 0)(p)
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: initName,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
		}, drivers.StateRunning, "", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			d := c.driver()
			_, err := d.Start(ctx, testSpec("i1"))
			require.NoError(t, err)
			c.pod("i1", "nr-i1-abc", time.Now(), tc.pod)
			c.setLogs(true, "2026-01-02T03:04:05.000000000Z previous run's last words")
			c.setLogs(false, "2026-01-02T03:05:05.000000000Z "+`{"level":"error","msg":"boom"}`)
			st, err := d.Status(ctx, "i1")
			require.NoError(t, err)
			assert.Equal(t, tc.state, st.State)
			assert.Equal(t, tc.reason, st.Reason)
			assert.Equal(t, tc.exitCode, st.ExitCode)
			if tc.state == drivers.StateRunning {
				assert.Equal(t, time.Unix(1700000000, 0), st.StartedAt.Local())
			}
			if tc.state == drivers.StateCrashed && tc.name == "crash loop" {
				assert.Equal(t, []string{"previous run's last words"}, st.LastLines, "a waiting container's lines are the previous run's")
			}
			if tc.name == "killed for memory" {
				assert.Equal(t, []string{"boom"}, st.LastLines, "a terminated container's own lines")
			}
		})
	}
}

func TestStatusUsesTheNewestPodNotOneBeingDeleted(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	now := time.Now()
	c.pod("i1", "nr-i1-old", now.Add(-time.Hour), running(true, 0))
	c.pod("i1", "nr-i1-new", now, waiting("ContainerCreating", "", 0, nil))
	c.pod("i1", "nr-i1-newest-but-deleted", now.Add(time.Minute), func(p *corev1.Pod) {
		running(true, 0)(p)
		p.DeletionTimestamp = &metav1.Time{Time: now}
	})
	st, err := d.Status(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateStarting, st.State)
	assert.Equal(t, "ContainerCreating", st.Reason)
}

func TestStatusWithoutPodsExplainsTheDeployment(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	st, err := d.Status(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateStarting, st.State)
	assert.Equal(t, "waiting for the pod to be created", st.Reason)

	dep := getDeployment(t, c, "i1")
	dep.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue,
		Reason: "FailedCreate", Message: `pods "nr-i1-5d9" is forbidden: exceeded quota: compute, requested: memory=256Mi`}}
	_, err = c.cs.AppsV1().Deployments(testNamespace).UpdateStatus(ctx, dep, metav1.UpdateOptions{})
	require.NoError(t, err)
	st, err = d.Status(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateCrashed, st.State)
	assert.Equal(t, `FailedCreate: pods "nr-i1-5d9" is forbidden: exceeded quota: compute, requested: memory=256Mi`, st.Reason)
}

func TestWaitReadyChecksTheFlowsWithTheAdminToken(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.nodeRed.set("admin-token-value", "stop")

	done := make(chan error, 1)
	go func() { _, err := d.WaitReady(ctx, "i1"); done <- err }()
	c.pod("i1", "nr-i1-abc", time.Now(), waiting("ContainerCreating", "", 0, nil))
	c.pod("i1", "nr-i1-abc", time.Now(), running(true, 0))
	select {
	case err := <-done:
		t.Fatalf("ready while the flows are stopped: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.nodeRed.set("admin-token-value", "start")
	require.NoError(t, <-done)
	c.nodeRed.mu.Lock()
	defer c.nodeRed.mu.Unlock()
	assert.Contains(t, c.nodeRed.hosts, "nr-i1.flowyard-instances.svc:1880", "Node-RED is asked through its Service")
}

func TestWaitReadyAcceptsSafeModeOnlyForASafeModeStart(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = 200 * time.Millisecond })
	c.nodeRed.set("admin-token-value", "safe")
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.pod("i1", "nr-i1-abc", time.Now(), running(true, 0))
	_, err = d.WaitReady(ctx, "i1")
	assert.ErrorIs(t, err, drivers.ErrNeverReady)
	assert.Contains(t, err.Error(), "flows state safe")

	spec := testSpec("i1")
	spec.SafeMode = true
	_, err = d.Start(ctx, spec)
	require.NoError(t, err)
	c.pod("i1", "nr-i1-safe", time.Now().Add(time.Second), running(true, 0)) // the pod of the new spec
	_, err = d.WaitReady(ctx, "i1")
	assert.NoError(t, err)
}

func TestWaitReadyFailsFastOnACrashWithItsLastLines(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = time.Minute })
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.setLogs(true, "2026-01-02T03:04:05Z Error: Cannot find module 'node-red-contrib-missing'")
	c.pod("i1", "nr-i1-abc", time.Now(), waiting("CrashLoopBackOff", "", 1, &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}))
	st, err := d.WaitReady(ctx, "i1")
	var re *drivers.RuntimeError
	require.True(t, errors.As(err, &re), "got %v", err)
	assert.ErrorIs(t, err, drivers.ErrExited)
	assert.Equal(t, "CrashLoopBackOff: exited with code 1 (Error), restarted 1 times", re.Detail)
	assert.Equal(t, []string{"Error: Cannot find module 'node-red-contrib-missing'"}, re.LastLines)
	assert.Equal(t, drivers.StateCrashed, st.State)
}

func TestWaitReadyTimesOutWithTheLastReason(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = 100 * time.Millisecond })
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.pod("i1", "nr-i1-abc", time.Now(), func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "no nodes"}}
	})
	_, err = d.WaitReady(ctx, "i1")
	assert.ErrorIs(t, err, drivers.ErrNeverReady)
	assert.Contains(t, err.Error(), "Unschedulable: no nodes")
}

func TestWaitReadyReportsMissingNodeTypes(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	c.nodeRed.set("admin-token-value", "start")
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.pod("i1", "nr-i1-abc", time.Now(), running(true, 0))
	c.setLogs(false,
		`2026-01-02T03:04:05Z {"level":"info","msg":"Waiting for missing types to be registered:"}`,
		`2026-01-02T03:04:05Z {"level":"info","msg":" - cronplus"}`)
	_, err = d.WaitReady(ctx, "i1")
	assert.ErrorIs(t, err, drivers.ErrMissingTypes)
}

func TestWaitReadyOnStoppedOrMissingInstances(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.WaitReady(ctx, "nope")
	assert.ErrorIs(t, err, drivers.ErrNotFound)
	_, err = d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	require.NoError(t, d.Stop(ctx, "i1"))
	_, err = d.WaitReady(ctx, "i1")
	assert.ErrorIs(t, err, drivers.ErrExited)
}

func TestWaitReadyEndsWithTheContext(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = time.Hour })
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = d.WaitReady(cctx, "i1")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestAPodOfTheOldSpecIsNeverReportedReady(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.ReadyTimeout = 100 * time.Millisecond })
	c.nodeRed.set("admin-token-value", "start")
	spec := testSpec("i1")
	_, err := d.Start(ctx, spec)
	require.NoError(t, err)
	c.pod("i1", "nr-i1-old", time.Now(), running(true, 0))
	st, err := d.Status(ctx, "i1")
	require.NoError(t, err)
	require.Equal(t, drivers.StateRunning, st.State)

	// A new spec: the old pod still runs and answers until the Deployment controller replaces it.
	spec.Env = map[string]string{"GREETING": "bonjour"}
	_, err = d.Start(ctx, spec)
	require.NoError(t, err)
	st, err = d.Status(ctx, "i1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateStarting, st.State)
	assert.Equal(t, "replacing the pod with the new spec", st.Reason)
	_, err = d.WaitReady(ctx, "i1")
	assert.ErrorIs(t, err, drivers.ErrNeverReady, "the old Node-RED's flows do not count")

	c.pod("i1", "nr-i1-new", time.Now().Add(time.Second), running(true, 0))
	_, err = d.WaitReady(ctx, "i1")
	assert.NoError(t, err)
}
