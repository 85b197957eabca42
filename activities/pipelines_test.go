package activities_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestPromotionLeavesADeviceMovedToAnotherApplication: a device that was a stage's target and has moved to
// another application since does not take the pipeline's snapshot (which belongs to its old application);
// the promotion fails that target with the reason, and the device keeps its target.
func TestPromotionLeavesADeviceMovedToAnotherApplication(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		require.NoError(t, st.SeedDefaults(ctx))
		team := &storage.Team{ID: domain.NewID(), Name: "t", Slug: "t-" + domain.NewID()[:8]}
		types, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
		require.NoError(t, err)
		team.TeamTypeID = types[0].ID
		require.NoError(t, st.InsertTeam(ctx, team))
		var apps [2]*storage.Application
		for i := range apps {
			apps[i] = &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: domain.NewID()}
			require.NoError(t, st.InsertApplication(ctx, apps[i]))
		}
		snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: apps[0].ID, TeamID: team.ID, Name: "s", Flows: "[]", Credentials: "{}"}
		_, err = st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		d := &storage.Device{ID: domain.NewID(), TeamID: team.ID, ApplicationID: &apps[1].ID, Name: "moved", CredentialSecret: "x",
			Mode: "autonomous", SettingsHash: "h"}
		require.NoError(t, st.InsertDevice(ctx, d))

		err = (&activities.Pipelines{Store: st}).SetDeviceTarget(ctx, d.ID, snap.ID)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "%v", err)
		assert.True(t, appErr.NonRetryable(), "the refusal is final: retrying changes nothing")
		assert.Contains(t, appErr.Error(), "no longer in the pipeline's application")
		got, err := st.GetDevice(ctx, d.ID)
		require.NoError(t, err)
		assert.Nil(t, got.TargetSnapshotID)

		d.ApplicationID = &apps[0].ID
		require.NoError(t, st.UpdateDevice(ctx, d, "application_id"))
		require.NoError(t, (&activities.Pipelines{Store: st, Devices: &devices.Service{Store: st}}).SetDeviceTarget(ctx, d.ID, snap.ID))
	})
}

// TestDeployToDevicesMakesTheInstanceItsDevicesTarget: a stage's deployToDevices takes a snapshot of the
// instance as the promotion left it (the promoted snapshot is the source instance's), makes it the instance's
// device target and every device's of the instance, with a new settings hash; a retried activity stores one
// snapshot.
func TestDeployToDevicesMakesTheInstanceItsDevicesTarget(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		in := storagetest.NewInstance(t, st, sealer, nil)
		require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, `[{"id":"t1","type":"tab","label":"promoted"}]`))
		promoted := &storage.Snapshot{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "release 7", Flows: "[]", Credentials: "{}"}
		_, err = st.InsertSnapshot(ctx, promoted)
		require.NoError(t, err)
		d := &storage.Device{ID: domain.NewID(), TeamID: in.TeamID, InstanceID: &in.ID, Name: "d", CredentialSecret: sealer.Seal("s"),
			Mode: "autonomous", SettingsHash: "h"}
		require.NoError(t, st.InsertDevice(ctx, d))
		a := &activities.Pipelines{Store: st, Snapshots: &snapshots.Service{Store: st, Sealer: sealer},
			Targets: &services.DeviceTargets{Store: st, Devices: &devices.Service{Store: st, Sealer: sealer}}}
		req := activities.InstanceDevicesDeploy{InstanceID: in.ID, PromotedSnapshotID: promoted.ID, NewSnapshotID: domain.NewID()}
		for range 2 { // a retry
			n, err := a.DeployToInstanceDevices(ctx, req)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
		}
		got, err := st.GetInstance(ctx, in.ID)
		require.NoError(t, err)
		require.NotNil(t, got.DeviceTargetSnapshotID)
		assert.Equal(t, req.NewSnapshotID, *got.DeviceTargetSnapshotID)
		snap, err := st.GetSnapshot(ctx, req.NewSnapshotID)
		require.NoError(t, err)
		assert.Equal(t, in.ID, snap.InstanceID, "a snapshot of the instance itself")
		assert.Equal(t, "release 7", snap.Name)
		assert.Contains(t, snap.Flows, "promoted")
		dev, err := st.GetDevice(ctx, d.ID)
		require.NoError(t, err)
		assert.Equal(t, req.NewSnapshotID, *dev.TargetSnapshotID)
		assert.NotEqual(t, "h", dev.SettingsHash, "the device's settings name the new snapshot")
		list, _, err := st.ListSnapshots(ctx, in.ID, storage.Page{Limit: 50})
		require.NoError(t, err)
		assert.Len(t, list, 1, "the retry stored no second snapshot")
	})
}
