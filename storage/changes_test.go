package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func deviceIDs(ds []storage.Device) []string {
	ids := []string{}
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestTeamChangesSince: the live event stream's change source reads one team's rows only, oldest first, and
// a device check-in that changes nothing but last_seen_at is not a change.
func TestTeamChangesSince(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		start := time.Now().Add(-time.Second)
		f := newRolloutFixture(t, st, 2)
		other := newTeam(t, st, "other-team")
		require.NoError(t, st.InsertDevice(ctx, &storage.Device{ID: domain.NewID(), TeamID: other.ID, Name: "theirs",
			CredentialSecret: "x", Mode: "autonomous", State: "running"}))

		c, err := st.TeamChangesSince(ctx, f.teamID, start, 100)
		require.NoError(t, err)
		assert.ElementsMatch(t, f.devices, deviceIDs(c.Devices), "the team's devices and no other team's")
		require.Len(t, c.Rollouts, 1)
		assert.False(t, c.Truncated(100))
		assert.True(t, c.Truncated(1), "a read that hits the limit says so")

		report := storage.DeviceReport{State: "running", ActiveSnapshotID: &f.oldS, AgentVersion: "3.0.0", At: time.Now()}
		require.NoError(t, st.RecordDeviceReport(ctx, f.devices[0], report), "the first check-in is a change")
		first, err := st.GetDevice(ctx, f.devices[0])
		require.NoError(t, err)

		report.At = time.Now()
		require.NoError(t, st.RecordDeviceReport(ctx, f.devices[0], report))
		c, err = st.TeamChangesSince(ctx, f.teamID, first.ChangedAt, 100)
		require.NoError(t, err)
		assert.Empty(t, c.Devices, "a heartbeat that reports the same state is not a change")

		report.State, report.At = "error", time.Now()
		require.NoError(t, st.RecordDeviceReport(ctx, f.devices[0], report))
		c, err = st.TeamChangesSince(ctx, f.teamID, first.ChangedAt, 100)
		require.NoError(t, err)
		assert.Equal(t, []string{f.devices[0]}, deviceIDs(c.Devices), "a new state is")

		_, err = st.PlanRollout(ctx, f.rID, f.group, []int{100})
		require.NoError(t, err)
		dispatched, err := st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 10)
		require.NoError(t, err)
		require.Len(t, dispatched, 2)
		c, err = st.TeamChangesSince(ctx, f.teamID, first.ChangedAt, 100)
		require.NoError(t, err)
		assert.ElementsMatch(t, f.devices, deviceIDs(c.Devices), "a rollout moving the devices' target changes them")
	})
}

// TestTeamDevicesGoneQuiet finds the team's devices whose last check-in left the offline window, and not the
// ones connected to the broker or of another team; a device coming back after that is a change.
func TestTeamDevicesGoneQuiet(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 3)
		other := newTeam(t, st, "other-team")
		seen := time.Now().Add(-time.Minute)
		theirs := &storage.Device{ID: domain.NewID(), TeamID: other.ID, Name: "theirs", CredentialSecret: "x", Mode: "autonomous", LastSeenAt: &seen}
		require.NoError(t, st.InsertDevice(ctx, theirs))
		for i, id := range f.devices {
			d, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			d.LastSeenAt = &seen
			require.NoError(t, st.UpdateDevice(ctx, d, "last_seen_at"))
			if i == 2 {
				require.NoError(t, st.SetDeviceConnected(ctx, id, true, seen))
			}
		}
		quiet, err := st.TeamDevicesGoneQuiet(ctx, f.teamID, seen.Add(-time.Second), seen.Add(time.Second), 100)
		require.NoError(t, err)
		assert.ElementsMatch(t, f.devices[:2], deviceIDs(quiet), "silent devices of the team, not the connected one")
		quiet, err = st.TeamDevicesGoneQuiet(ctx, f.teamID, seen.Add(time.Second), time.Now(), 100)
		require.NoError(t, err)
		assert.Empty(t, quiet, "each device goes quiet once")

		before, err := st.GetDevice(ctx, f.devices[0])
		require.NoError(t, err)
		last, err := st.GetDevice(ctx, f.devices[2]) // the last one changed above
		require.NoError(t, err)
		report := storage.DeviceReport{State: before.State, ActiveSnapshotID: before.ActiveSnapshotID, At: time.Now(), CameBack: true}
		require.NoError(t, st.RecordDeviceReport(ctx, f.devices[0], report))
		c, err := st.TeamChangesSince(ctx, f.teamID, last.ChangedAt, 100)
		require.NoError(t, err)
		assert.Equal(t, []string{f.devices[0]}, deviceIDs(c.Devices), "coming back is a change, though the state is the same")
	})
}

// TestRecordDeviceReports: many check-ins are stored in one call, in order (a device's later report holds), and
// a device that no longer exists is skipped and named rather than failing the others.
func TestRecordDeviceReports(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 3)
		gone := domain.NewID()
		at := time.Now()
		ids := []string{f.devices[0], f.devices[1], gone, f.devices[2], f.devices[0]}
		reports := []storage.DeviceReport{{State: "stopped", AgentVersion: "1", At: at}, {State: "running", AgentVersion: "2", At: at},
			{State: "running", At: at}, {State: "error", AgentVersion: "3", ActiveSnapshotID: &f.oldS, At: at},
			{State: "running", AgentVersion: "4", At: at}}
		missing, err := st.RecordDeviceReports(ctx, ids, reports)
		require.NoError(t, err)
		assert.Equal(t, []string{gone}, missing)
		for id, want := range map[string]string{f.devices[0]: "running/4", f.devices[1]: "running/2", f.devices[2]: "error/3"} {
			d, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, want, d.State+"/"+d.AgentVersion)
			require.NotNil(t, d.LastSeenAt)
		}
		d, err := st.GetDevice(ctx, f.devices[2])
		require.NoError(t, err)
		assert.Equal(t, &f.oldS, d.ActiveSnapshotID)
		assert.True(t, d.LastSeenAt.Equal(at.Truncate(time.Microsecond)), "seen at %v, want %v", d.LastSeenAt, at)

		// As with one report: a heartbeat that changes nothing but last_seen_at is not a change, a new state is.
		heartbeat := reports[3]
		heartbeat.At = time.Now()
		_, err = st.RecordDeviceReports(ctx, []string{f.devices[2]}, []storage.DeviceReport{heartbeat})
		require.NoError(t, err)
		c, err := st.TeamChangesSince(ctx, f.teamID, d.ChangedAt, 100)
		require.NoError(t, err)
		assert.Empty(t, c.Devices, "a heartbeat that reports the same state is not a change")
		heartbeat.State = "running"
		_, err = st.RecordDeviceReports(ctx, []string{f.devices[2]}, []storage.DeviceReport{heartbeat})
		require.NoError(t, err)
		c, err = st.TeamChangesSince(ctx, f.teamID, d.ChangedAt, 100)
		require.NoError(t, err)
		assert.Equal(t, []string{f.devices[2]}, deviceIDs(c.Devices), "a new state is")
	})
}

// BenchmarkRecordDeviceReports records 1,000 devices' status reports on each database: one write each (as the
// broker did) or in batches of 256 (as its lanes do now).
func BenchmarkRecordDeviceReports(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		ctx := context.Background()
		st := storagetest.New(b, dialect)
		f := newRolloutFixture(b, st, 1000)
		reports := make([]storage.DeviceReport, len(f.devices))
		for i := range reports {
			reports[i] = storage.DeviceReport{State: "running", AgentVersion: "3.0.0", ActiveSnapshotID: &f.oldS}
		}
		b.Run(dialect+"/one-by-one", func(b *testing.B) {
			for b.Loop() {
				for i, id := range f.devices {
					reports[i].At = time.Now()
					require.NoError(b, st.RecordDeviceReport(ctx, id, reports[i]))
				}
			}
		})
		b.Run(dialect+"/batched-256", func(b *testing.B) {
			for b.Loop() {
				for start := 0; start < len(f.devices); start += 256 {
					end := min(start+256, len(f.devices))
					for i := start; i < end; i++ {
						reports[i].At = time.Now()
					}
					_, err := st.RecordDeviceReports(ctx, f.devices[start:end], reports[start:end])
					require.NoError(b, err)
				}
			}
		})
	}
}
