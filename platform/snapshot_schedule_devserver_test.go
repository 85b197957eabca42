package platform_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/billing/billingtest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers/fake"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/worker"
	snapshotwf "github.com/flowyard/flowyard/workflows/snapshotschedule"
)

// TestSnapshotScheduleOnTheTemporalDevServer creates an instance's snapshot Schedule on the real dev server,
// moves it from an interval to a cron, triggers it once and sees an automatic snapshot appear with the
// schedule's retention applied; deleting the Schedule removes it, and deleting the instance removes a
// Schedule it still had.
func TestSnapshotScheduleOnTheTemporalDevServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dialTemporal(t, startTemporal(t))

	st := storagetest.New(t, "sqlite")
	sealer, err := domain.NewSealer(testMasterKey)
	require.NoError(t, err)
	sc := &snapshotwf.Client{Temporal: c, TaskQueue: "instances"}
	w := worker.New(c, sc.TaskQueue, worker.Activities{
		Instances: &activities.Instances{Store: st, Driver: fake.New(nil), Sealer: sealer, Schedules: sc},
		Snapshots: &activities.Snapshots{Service: &snapshots.Service{Store: st, Sealer: sealer}},
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	tm := billingtest.NewTeam(t, st, nil)
	inID := tm.AddInstance("running")
	require.NoError(t, st.PutInstanceStorage(ctx, inID, storage.StorageFlows, `[{"id":"t1","type":"tab","label":"scheduled"}]`))
	in, err := st.GetInstance(ctx, inID)
	require.NoError(t, err)
	service := &snapshots.Service{Store: st, Sealer: sealer}
	var older []string
	for _, name := range []string{"Auto snapshot - oldest", "Auto snapshot - older"} {
		snap, err := service.Capture(ctx, in.ID, snapshots.Meta{Name: name, Auto: true})
		require.NoError(t, err)
		older = append(older, snap.ID)
	}
	_, err = service.Capture(ctx, in.ID, snapshots.Meta{Name: "by hand"})
	require.NoError(t, err)

	require.NoError(t, st.PutSnapshotSchedule(ctx, &storage.SnapshotSchedule{InstanceID: in.ID, TeamID: in.TeamID, Cron: "0 3 * * *", Keep: 2}))
	require.NoError(t, sc.SetSchedule(ctx, in.ID, in.TeamID, snapshotwf.Spec{Every: 24 * time.Hour}))
	require.NoError(t, sc.SetSchedule(ctx, in.ID, in.TeamID, snapshotwf.Spec{Cron: "0 3 * * *"}), "setting it again updates it")
	h := c.ScheduleClient().GetHandle(ctx, snapshotwf.ScheduleID(in.ID))
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Calendars, 1, "the cron replaced the interval: %+v", desc.Schedule.Spec)
	assert.Empty(t, desc.Schedule.Spec.Intervals)
	assert.Equal(t, []uint64{3}, hours(desc.Schedule.Spec.Calendars[0].Hour))

	require.NoError(t, sc.Trigger(ctx, in.ID))
	var autos []storage.Snapshot
	waitFor(t, 45*time.Second, "the scheduled snapshot appears", func() bool {
		autos = autoSnapshots(t, st, in.ID)
		return len(autos) > 0 && strings.HasPrefix(autos[len(autos)-1].Name, snapshotwf.NamePrefix+"20")
	})
	replaytest.RecordScheduled(t, c, snapshotwf.ScheduleID(in.ID), "snapshot", "replay_scheduled.json")
	newest := autos[len(autos)-1]
	t.Logf("scheduled snapshot %q (%s)", newest.Name, newest.ID)
	assert.Equal(t, []string{older[1], newest.ID}, ids(autos), "keep 2: the oldest automatic snapshot is pruned")
	all, _, err := st.ListSnapshots(ctx, in.ID, storage.Page{})
	require.NoError(t, err)
	assert.Len(t, all, 3, "the snapshot taken by hand is never pruned")

	require.NoError(t, sc.DeleteSchedule(ctx, in.ID))
	_, err = h.Describe(ctx)
	assert.True(t, isNotFound(err), "the Schedule is gone: %v", err)
	require.NoError(t, sc.DeleteSchedule(ctx, in.ID), "deleting a missing Schedule is not an error")

	require.NoError(t, sc.SetSchedule(ctx, in.ID, in.TeamID, snapshotwf.Spec{Every: time.Hour}))
	acts := &activities.Instances{Store: st, Driver: fake.New(nil), Sealer: sealer, Schedules: sc}
	require.NoError(t, acts.RemoveInstance(ctx, in.ID))
	_, err = h.Describe(ctx)
	assert.True(t, isNotFound(err), "deleting the instance deletes its Schedule: %v", err)
	_, err = st.GetSnapshotSchedule(ctx, in.ID)
	assert.True(t, domain.IsKind(err, domain.KindNotFound), "and its schedule row: %v", err)
}

func autoSnapshots(t *testing.T, st *storage.Store, instanceID string) []storage.Snapshot {
	t.Helper()
	list, _, err := st.ListSnapshots(context.Background(), instanceID, storage.Page{})
	require.NoError(t, err)
	var out []storage.Snapshot
	for _, s := range list {
		if s.Auto {
			out = append(out, s)
		}
	}
	return out
}

func ids(list []storage.Snapshot) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func hours(ranges []client.ScheduleRange) []uint64 {
	var out []uint64
	for _, r := range ranges {
		out = append(out, uint64(r.Start))
	}
	return out
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
