package kubernetes

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/drivers"
)

func TestLogsComeFromThePodLogAPI(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)

	lines, err := d.Logs(ctx, "i1", time.Time{}, 10)
	require.NoError(t, err)
	assert.Empty(t, lines, "no pod yet")
	c.pod("i1", "nr-i1-abc", time.Now(), waiting("ContainerCreating", "", 0, nil))
	lines, err = d.Logs(ctx, "i1", time.Time{}, 10)
	require.NoError(t, err)
	assert.Empty(t, lines, "the container has not run yet")

	c.pod("i1", "nr-i1-abc", time.Now(), running(true, 0))
	c.setLogs(false,
		`2026-01-02T03:04:05.000000000Z `,
		`2026-01-02T03:04:05.100000000Z {"ts":"2026-01-02T03:04:05.090Z","level":"info","msg":"Started flows"}`,
		`2026-01-02T03:04:06.000000000Z {"level":"warn","msg":"timeout","type":"http request","id":"n1","name":"fetch"}`,
		`2026-01-02T03:04:07.000000000Z {"level":"audit","event":"auth.invalid-token","path":"/flows"}`,
		`2026-01-02T03:04:08.000000000Z {"level":98,"event":"flows.get","path":"/flows"}`,
		`2026-01-02T03:04:09.000000000Z     at Object.<anonymous> (/data/x.js:1:1)`,
	)
	lines, err = d.Logs(ctx, "i1", time.Time{}, 0)
	require.NoError(t, err)
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339Nano, s); return tm }
	assert.Equal(t, []drivers.LogLine{
		{Time: at("2026-01-02T03:04:05.1Z"), Level: "info", Msg: "Started flows"},
		{Time: at("2026-01-02T03:04:06Z"), Level: "warn", Msg: "[http request:fetch] timeout"},
		{Time: at("2026-01-02T03:04:08Z"), Level: "audit", Msg: "flows.get /flows"},
		{Time: at("2026-01-02T03:04:09Z"), Level: "raw", Msg: "    at Object.<anonymous> (/data/x.js:1:1)"},
	}, lines)

	lines, err = d.Logs(ctx, "i1", at("2026-01-02T03:04:06Z"), 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"flows.get /flows", "    at Object.<anonymous> (/data/x.js:1:1)"}, msgs(lines), "the newest lines since the time")
	last := c.logRequests[len(c.logRequests)-1]
	assert.Equal(t, int64(2), *last.TailLines)
	assert.Equal(t, at("2026-01-02T03:04:06Z"), last.SinceTime.Time.UTC())
	assert.True(t, last.Timestamps)
	assert.Equal(t, containerName, last.Container)
	assert.False(t, last.Previous)
}

func TestLogsOfACrashedContainerAreThePreviousRuns(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	c.pod("i1", "nr-i1-abc", time.Now(), waiting("CrashLoopBackOff", "", 2, &corev1.ContainerStateTerminated{ExitCode: 1}))
	c.setLogs(true, "2026-01-02T03:04:05Z [red] Uncaught Exception:")
	lines, err := d.Logs(ctx, "i1", time.Time{}, 50)
	require.NoError(t, err)
	assert.Equal(t, []string{"[red] Uncaught Exception:"}, msgs(lines))
	assert.True(t, c.logRequests[len(c.logRequests)-1].Previous)
}

func msgs(lines []drivers.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

// exits collects what OnExit reports.
type exits struct {
	mu   sync.Mutex
	seen []drivers.Status
	ids  []string
}

func (e *exits) onExit(id string, st drivers.Status) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, id)
	e.seen = append(e.seen, st)
}

// waitFor waits until n exits were reported and returns their reasons, sorted.
func (e *exits) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := len(e.seen)
		var reasons []string
		for _, s := range e.seen {
			reasons = append(reasons, s.Reason)
		}
		e.mu.Unlock()
		if got >= n {
			slices.Sort(reasons)
			return reasons
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d exits reported, want %d: %v", got, n, reasons)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func terminated(code int32, reason string, restarts int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, RestartCount: restarts,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}}
	}
}

func TestOnExitReportsEachContainerRunThatEndsUnasked(t *testing.T) {
	c := newCluster(t)
	var got exits
	d := c.driver(func(cfg *Config) { cfg.OnExit = got.onExit })
	_, err := d.Start(ctx, testSpec("i1"))
	require.NoError(t, err)
	now := time.Now()

	c.pod("i1", "nr-i1-a", now, running(true, 4)) // restarts before the driver watched are not news
	c.pod("i1", "nr-i1-a", now, terminated(1, "Error", 4))
	assert.Equal(t, []string{"exited with code 1 (Error)"}, got.waitFor(t, 1))

	// The same run seen again as a restart, then in back-off: nothing new ended.
	c.pod("i1", "nr-i1-a", now, running(true, 5))
	c.pod("i1", "nr-i1-a", now, waiting("CrashLoopBackOff", "", 5, &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}))
	// A run whose end was missed shows up as a higher restart count.
	c.pod("i1", "nr-i1-a", now, func(p *corev1.Pod) {
		running(true, 6)(p)
		p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}
	})
	assert.Equal(t, []string{"exited with code 1 (Error)", "exited with code 137 (OOMKilled)"}, got.waitFor(t, 2))

	// A pod being deleted (stop, remove, new spec) ends its container on request.
	c.pod("i1", "nr-i1-a", now, func(p *corev1.Pod) {
		terminated(0, "Completed", 6)(p)
		p.DeletionTimestamp = &metav1.Time{Time: now}
	})
	// An eviction fails the whole pod.
	c.pod("i1", "nr-i1-b", now, running(true, 0))
	c.pod("i1", "nr-i1-b", now, func(p *corev1.Pod) {
		p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "Evicted", "low on memory"
	})
	reasons := got.waitFor(t, 3)
	assert.Equal(t, []string{"exited with code 1 (Error)", "exited with code 137 (OOMKilled)", "pod failed: Evicted: low on memory"}, reasons,
		"the deleted pod's exit is not reported")
	got.mu.Lock()
	defer got.mu.Unlock()
	assert.Equal(t, []string{"i1", "i1", "i1"}, got.ids)
	for _, st := range got.seen {
		assert.Equal(t, drivers.StateCrashed, st.State)
	}
}

func TestCloseStopsTheWatch(t *testing.T) {
	c := newCluster(t)
	var got exits
	d := c.driver(func(cfg *Config) { cfg.OnExit = got.onExit })
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "close twice is fine")
}
