package platform_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/worker"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// rolloutWorld runs the rollouts worker on a dev server against a store whose devices a simulator moves: each
// device runs the snapshot it is told to within a moment, except the broken ones, which report an error for
// the new snapshot (and run the previous one again when told to).
type rolloutWorld struct {
	st            *storage.Store
	c             client.Client
	rc            *rollout.Client
	in            *storage.Instance
	oldSnap, snap string
	mu            sync.Mutex
	devices       []string
	broken        map[string]bool
}

func newRolloutWorld(t *testing.T, temporalAddress string) *rolloutWorld {
	t.Helper()
	c := dialTemporal(t, temporalAddress)
	st := storagetest.New(t, "sqlite")
	sealer, err := domain.NewSealer(testMasterKey)
	require.NoError(t, err)
	w := worker.NewRollouts(c, "rollouts", &activities.Rollouts{Store: st, Devices: &devices.Service{Store: st, Sealer: sealer}},
		&activities.StackMoves{Store: st})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	rw := &rolloutWorld{st: st, c: c, rc: &rollout.Client{Temporal: c, TaskQueue: "rollouts"}, in: storagetest.NewInstance(t, st, sealer, nil),
		broken: map[string]bool{}}
	rw.oldSnap, rw.snap = rw.snapshot(t, "v1"), rw.snapshot(t, "v2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rw.simulate(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return rw
}

func (rw *rolloutWorld) snapshot(t *testing.T, name string) string {
	t.Helper()
	snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: rw.in.ApplicationID, TeamID: rw.in.TeamID, Name: name, Flows: "[]", Credentials: "{}",
		Env: []domain.EnvVar{}}
	_, err := rw.st.InsertSnapshot(context.Background(), snap)
	require.NoError(t, err)
	return snap.ID
}

// group adds a group of n devices running the old snapshot; broken ones fail the new one.
func (rw *rolloutWorld) group(t *testing.T, n int, broken bool) string {
	t.Helper()
	ctx := context.Background()
	g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: rw.in.ApplicationID, TeamID: rw.in.TeamID, Name: domain.NewID()}
	require.NoError(t, rw.st.InsertDeviceGroup(ctx, g))
	for range n {
		d := &storage.Device{ID: domain.NewID(), TeamID: rw.in.TeamID, ApplicationID: &rw.in.ApplicationID, DeviceGroupID: &g.ID, Name: "d",
			CredentialSecret: "x", Mode: "autonomous", TargetSnapshotID: &rw.oldSnap}
		require.NoError(t, rw.st.InsertDevice(ctx, d))
		require.NoError(t, rw.st.RecordDeviceReport(ctx, d.ID, storage.DeviceReport{State: "running", ActiveSnapshotID: &rw.oldSnap, At: time.Now()}))
		rw.mu.Lock()
		rw.devices, rw.broken[d.ID] = append(rw.devices, d.ID), broken
		rw.mu.Unlock()
	}
	return g.ID
}

// simulate answers every device's new target, as agents checking in would.
func (rw *rolloutWorld) simulate(ctx context.Context) {
	for ctx.Err() == nil {
		rw.mu.Lock()
		ids := append([]string(nil), rw.devices...)
		rw.mu.Unlock()
		for _, id := range ids {
			d, err := rw.st.GetDevice(ctx, id)
			if err != nil || d.TargetSnapshotID == nil || d.ActiveSnapshotID != nil && *d.ActiveSnapshotID == *d.TargetSnapshotID && d.State == "running" {
				continue
			}
			rw.mu.Lock()
			broken := rw.broken[id]
			rw.mu.Unlock()
			report := storage.DeviceReport{State: "running", ActiveSnapshotID: d.TargetSnapshotID, At: time.Now()}
			if broken && *d.TargetSnapshotID == rw.snap {
				if d.State == "error" {
					continue
				}
				report = storage.DeviceReport{State: "error", StateDetail: "flows did not start", ActiveSnapshotID: d.ActiveSnapshotID, At: time.Now()}
			}
			_ = rw.st.RecordDeviceReport(ctx, id, report)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start records a rollout of the new snapshot to a group and starts its workflow.
func (rw *rolloutWorld) start(t *testing.T, groupID string, s rollout.Strategy) (id, runID string) {
	t.Helper()
	ctx := context.Background()
	r := &storage.Rollout{ID: domain.NewID(), GroupID: groupID, TeamID: rw.in.TeamID, ApplicationID: rw.in.ApplicationID, SnapshotID: rw.snap,
		Status: domain.RolloutRunning}
	require.NoError(t, rw.st.InsertRollout(ctx, r))
	runID, err := rw.rc.Start(ctx, rollout.Params{RolloutID: r.ID, GroupID: groupID, TeamID: rw.in.TeamID, SnapshotID: rw.snap, Strategy: s})
	require.NoError(t, err)
	return r.ID, runID
}

func (rw *rolloutWorld) wait(t *testing.T, id string) rollout.Progress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := rw.rc.Wait(ctx, id)
	if err != nil {
		require.True(t, rollout.IsThresholdExceeded(err), "%v", err)
	}
	return p
}

func quickStrategy(waves ...int) rollout.Strategy {
	s := rollout.DefaultStrategy()
	s.Waves, s.BatchSize, s.WaveTimeout = waves, 4, time.Minute
	return s
}

// TestRolloutOnTheTemporalDevServer runs rollouts through the real dev server: one in three waves to
// devices that all take the snapshot, one whose broken canary rolls the rollout back, and one that an operator
// pauses, resumes and aborts while it awaits approval between waves. Their histories are the rollout's replay
// corpus (FLOWYARD_RECORD_HISTORIES=1 records them again).
func TestRolloutOnTheTemporalDevServer(t *testing.T) {
	rw := newRolloutWorld(t, startTemporal(t))

	t.Run("waves", func(t *testing.T) {
		id, _ := rw.start(t, rw.group(t, 10, false), quickStrategy(10, 50, 100))
		p := rw.wait(t, id)
		require.Equal(t, domain.RolloutSucceeded, p.Status, "%+v", p)
		assert.Equal(t, 10, p.Updated)
		assert.Equal(t, 3, p.Waves)
		replaytest.Record(t, rw.c, rollout.WorkflowID(id), "", "rollout", "replay_waves.json")
	})
	t.Run("rollback", func(t *testing.T) {
		id, _ := rw.start(t, rw.group(t, 10, true), quickStrategy(10, 100))
		p := rw.wait(t, id)
		require.Equal(t, domain.RolloutRolledBack, p.Status, "%+v", p)
		assert.Equal(t, 1, p.RolledBack, "the failed canary, the only device changed, was rolled back")
		replaytest.Record(t, rw.c, rollout.WorkflowID(id), "", "rollout", "replay_rollback.json")
	})
	t.Run("abort", func(t *testing.T) {
		s := quickStrategy(10, 100)
		s.Approval = rollout.ApprovalBetweenWaves
		id, _ := rw.start(t, rw.group(t, 10, false), s)
		waitFor(t, 45*time.Second, "the rollout awaits approval after the canary", func() bool {
			r, err := rw.st.GetRollout(context.Background(), id)
			require.NoError(t, err)
			return r.Status == domain.RolloutAwaitingApproval
		})
		ctx := context.Background()
		for _, action := range []string{rollout.UpdatePause, rollout.UpdateResume} {
			_, err := rw.rc.Act(ctx, id, action, "alice")
			require.NoError(t, err, action)
		}
		// The rollout ends only once the abort's Update handler has finished, so the abort is answered (it used
		// to answer a conflict at times, the run having ended first; workflows/rollout's
		// TestAnAbortThatEndsTheRolloutIsAnswered).
		_, err := rw.rc.Act(ctx, id, rollout.UpdateAbort, "alice")
		require.NoError(t, err, "the abort took effect and says so")
		_, err = rw.rc.Act(ctx, id, rollout.UpdateApprove, "alice")
		assert.True(t, domain.IsKind(err, domain.KindConflict), "an aborted rollout takes no approval: %v", err)
		p := rw.wait(t, id)
		require.Equal(t, domain.RolloutAborted, p.Status, "%+v", p)
		assert.Equal(t, 1, p.Updated, "only the canary was changed")
		// replay_abort.json is the same run recorded before 2026-12-07-answer-updates-before-finishing: kept as it
		// is, for the runs in flight then.
		replaytest.Record(t, rw.c, rollout.WorkflowID(id), "", "rollout", "replay_abort_answered.json")
	})
}

// TestRolloutContinuesAsNewOnTheTemporalDevServer: a server that suggests continue-as-new early makes a rollout
// carry its state into new runs between waves, and it still ends with every device updated. The first run and
// the last are the rollout's continue-as-new replay corpus.
func TestRolloutContinuesAsNewOnTheTemporalDevServer(t *testing.T) {
	rw := newRolloutWorld(t, startTemporalWith(t, map[string]string{"limit.historyCount.suggestContinueAsNew": "20"}).Address())
	id, firstRun := rw.start(t, rw.group(t, 10, false), quickStrategy(10, 50, 100))
	p := rw.wait(t, id)
	require.Equal(t, domain.RolloutSucceeded, p.Status, "%+v", p)
	assert.Equal(t, 10, p.Updated)
	d, err := rw.c.DescribeWorkflow(context.Background(), rollout.WorkflowID(id), "")
	require.NoError(t, err)
	require.NotEqual(t, firstRun, d.WorkflowExecution.RunID, "the rollout continued as new")
	replaytest.Record(t, rw.c, rollout.WorkflowID(id), firstRun, "rollout", "replay_continued.json")
	replaytest.Record(t, rw.c, rollout.WorkflowID(id), "", "rollout", "replay_resumed.json")
}
