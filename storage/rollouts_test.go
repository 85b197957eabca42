package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func TestWaveSizesKeepACanaryAndAddUp(t *testing.T) {
	assert.Equal(t, []int{1, 9, 40, 50}, storage.WaveSizes(100, []int{1, 10, 50, 100}))
	assert.Equal(t, []int{1, 4, 20, 25}, storage.WaveSizes(50, []int{1, 10, 50, 100}))
	assert.Equal(t, []int{1, 1, 0, 0}, storage.WaveSizes(2, []int{1, 10, 50, 100}))
	assert.Equal(t, []int{100, 900, 4000, 5000}, storage.WaveSizes(10000, []int{1, 10, 50, 100}))
	assert.Equal(t, []int{0, 0}, storage.WaveSizes(0, []int{50, 100}))
}

// rolloutFixture is a group of devices that all run snapshot "old".
type rolloutFixture struct {
	st                 *storage.Store
	group, oldS, newS  string
	devices            []string
	teamID, appID, rID string
}

func newRolloutFixture(t testing.TB, st *storage.Store, n int) *rolloutFixture {
	ctx := context.Background()
	team := newTeam(t, st, "ro-team")
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
	require.NoError(t, st.InsertApplication(ctx, app))
	f := &rolloutFixture{st: st, teamID: team.ID, appID: app.ID}
	for _, id := range []*string{&f.oldS, &f.newS} {
		*id = domain.NewID()
		_, err := st.InsertSnapshot(ctx, &storage.Snapshot{ID: *id, ApplicationID: app.ID, TeamID: team.ID, Name: "s", Flows: "[]", Credentials: "{}"})
		require.NoError(t, err)
	}
	g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: app.ID, TeamID: team.ID, Name: "g"}
	require.NoError(t, st.InsertDeviceGroup(ctx, g))
	f.group = g.ID
	for i := 0; i < n; i++ {
		d := &storage.Device{ID: domain.NewID(), TeamID: team.ID, ApplicationID: &app.ID, DeviceGroupID: &g.ID, Name: fmt.Sprint("d", i),
			CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h", TargetSnapshotID: &f.oldS, ActiveSnapshotID: &f.oldS, State: "running"}
		require.NoError(t, st.InsertDevice(ctx, d))
		f.devices = append(f.devices, d.ID)
	}
	r := &storage.Rollout{ID: domain.NewID(), GroupID: g.ID, TeamID: team.ID, ApplicationID: app.ID, SnapshotID: f.newS, Status: "running"}
	require.NoError(t, st.InsertRollout(ctx, r))
	f.rID = r.ID
	return f
}

// report plays a device's agent: it now runs snapshot (or reports an error).
func (f *rolloutFixture) report(t *testing.T, deviceID, snapshot, state string) {
	t.Helper()
	time.Sleep(2 * time.Millisecond) // last_seen_at must be after the dispatch stamp
	d, err := f.st.GetDevice(context.Background(), deviceID)
	require.NoError(t, err)
	at := time.Now()
	d.ActiveSnapshotID, d.State, d.StateDetail, d.LastSeenAt = &snapshot, state, "", &at
	if state == "error" {
		d.StateDetail = "npm install failed"
	}
	require.NoError(t, f.st.UpdateDevice(context.Background(), d, "active_snapshot_id", "state", "state_detail", "last_seen_at"))
}

func TestRolloutPlanDispatchSyncAndRollback(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 20)
		sizes, err := st.PlanRollout(ctx, f.rID, f.group, []int{10, 100})
		require.NoError(t, err)
		assert.Equal(t, []int{2, 18}, sizes)
		again, err := st.PlanRollout(ctx, f.rID, f.group, []int{10, 100})
		require.NoError(t, err)
		assert.Equal(t, sizes, again, "planning twice keeps the first plan")

		second := &storage.Rollout{ID: domain.NewID(), GroupID: f.group, TeamID: f.teamID, ApplicationID: f.appID, SnapshotID: f.newS, Status: "running"}
		assert.True(t, domain.IsKind(st.InsertRollout(ctx, second), domain.KindConflict), "one active rollout per group")

		var wave0 []string
		for {
			ids, err := st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 1)
			require.NoError(t, err)
			if len(ids) == 0 {
				break
			}
			wave0 = append(wave0, ids...)
		}
		require.Len(t, wave0, 2, "each device of the wave is dispatched exactly once")
		all, err := st.ListGroupDeviceIDs(ctx, f.group)
		require.NoError(t, err)
		assert.Equal(t, all[:2], wave0, "the waves take the group's devices in ID order")
		d, err := st.GetDevice(ctx, wave0[0])
		require.NoError(t, err)
		assert.Equal(t, f.newS, *d.TargetSnapshotID)

		f.report(t, wave0[0], f.newS, "running")
		f.report(t, wave0[1], f.oldS, "error")
		require.NoError(t, st.SyncRolloutDevices(ctx, f.rID, f.newS))
		c, err := st.CountRolloutDevices(ctx, f.rID, 0)
		require.NoError(t, err)
		assert.Equal(t, storage.RolloutCounts{Total: 20, Pending: 18, Updated: 1, Failed: 1}, c)
		failures, err := st.ListRolloutFailures(ctx, f.rID, 10)
		require.NoError(t, err)
		require.Len(t, failures, 1)
		assert.Equal(t, "npm install failed", failures[0].Error)

		back, err := st.RollBackRolloutBatch(ctx, f.rID, 100)
		require.NoError(t, err)
		assert.ElementsMatch(t, wave0, back, "exactly the devices the rollout changed go back")
		for _, id := range back {
			d, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, f.oldS, *d.TargetSnapshotID)
			f.report(t, id, f.oldS, "running")
		}
		require.NoError(t, st.SyncRolloutDevices(ctx, f.rID, f.newS))
		c, err = st.CountRolloutDevices(ctx, f.rID, 0)
		require.NoError(t, err)
		assert.Equal(t, 2, c.RolledBack)
		assert.Equal(t, 18, c.Pending, "devices of later waves were never touched")
	})
}

func TestExpiredWaveFailsSilentDevicesAndGroupSettles(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 3)
		_, err := st.PlanRollout(ctx, f.rID, f.group, []int{100})
		require.NoError(t, err)
		_, err = st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 10)
		require.NoError(t, err)
		n, err := st.ExpireRolloutWave(ctx, f.rID, 0)
		require.NoError(t, err)
		assert.EqualValues(t, 3, n)

		late := &storage.Device{ID: domain.NewID(), TeamID: f.teamID, ApplicationID: &f.appID, DeviceGroupID: &f.group, Name: "late",
			CredentialSecret: "x", Mode: "autonomous", SettingsHash: "h", TargetSnapshotID: &f.oldS}
		require.NoError(t, st.InsertDevice(ctx, late))
		moved, err := st.SettleGroupTarget(ctx, f.group, &f.newS)
		require.NoError(t, err)
		assert.Equal(t, []string{late.ID}, moved, "a device that joined during the rollout ends on the final target")
		g, err := st.GetDeviceGroup(ctx, f.group)
		require.NoError(t, err)
		assert.Equal(t, f.newS, *g.TargetSnapshotID)
	})
}

// TestDevicesThatLeftTheGroupKeepWhatTheyRun: a device taken out of the group, or moved to another
// application, during a rollout is neither updated nor rolled back by it (the snapshot is its old group's
// application's, which the schema would not let it target anyway).
func TestDevicesThatLeftTheGroupKeepWhatTheyRun(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 3)
		_, err := st.PlanRollout(ctx, f.rID, f.group, []int{100})
		require.NoError(t, err)
		group, err := st.GetDeviceGroup(ctx, f.group)
		require.NoError(t, err)
		require.NoError(t, st.RemoveGroupDevices(ctx, group, []string{f.devices[0]}))
		other := &storage.Application{ID: domain.NewID(), TeamID: f.teamID, Name: "elsewhere"}
		require.NoError(t, st.InsertApplication(ctx, other))
		moved, err := st.GetDevice(ctx, f.devices[1])
		require.NoError(t, err)
		moved.ApplicationID, moved.DeviceGroupID, moved.TargetSnapshotID = &other.ID, nil, nil
		require.NoError(t, st.UpdateDevice(ctx, moved, "application_id", "device_group_id", "target_snapshot_id"))

		ids, err := st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{f.devices[2]}, ids, "only the device still in the group is told")
		failures, err := st.ListRolloutFailures(ctx, f.rID, 10)
		require.NoError(t, err)
		require.Len(t, failures, 2)
		assert.Equal(t, "left the group before its wave", failures[0].Error)

		require.NoError(t, st.RemoveGroupDevices(ctx, group, []string{f.devices[2]}))
		_, err = st.RollBackRolloutBatch(ctx, f.rID, 10)
		require.NoError(t, err)
		for i, want := range []*string{&f.oldS, nil, &f.newS} {
			d, err := st.GetDevice(ctx, f.devices[i])
			require.NoError(t, err)
			assert.Equal(t, want, d.TargetSnapshotID, "device %d keeps its target", i)
		}
		c, err := st.CountRolloutDevices(ctx, f.rID, 0)
		require.NoError(t, err)
		assert.Equal(t, 3, c.RolledBack, "the rollback is done with every device")
	})
}

// BenchmarkSyncRolloutDevices times one poll of a rollout's sync over a group of 10,000 devices, all told and
// none reported yet (every row is looked at).
//
//	go test ./storage -run '^$' -bench SyncRolloutDevices -benchtime 20x
func BenchmarkSyncRolloutDevices(b *testing.B) {
	ctx := context.Background()
	st := storagetest.New(b, "sqlite")
	f := newRolloutFixture(b, st, 10_000)
	_, err := st.PlanRollout(ctx, f.rID, f.group, []int{100})
	require.NoError(b, err)
	for {
		ids, err := st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 1000)
		require.NoError(b, err)
		if len(ids) == 0 {
			break
		}
	}
	b.ResetTimer()
	for range b.N {
		require.NoError(b, st.SyncRolloutDevices(ctx, f.rID, f.newS))
	}
}
