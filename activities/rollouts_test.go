package activities_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers/fake"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// instanceWorld is an instance (its team and application) on st, the sealer and the devices service.
func instanceWorld(t *testing.T, st *storage.Store) (*domain.Sealer, *storage.Instance, *devices.Service) {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	return sealer, storagetest.NewInstance(t, st, sealer, nil), &devices.Service{Store: st, Sealer: sealer}
}

// assertFreshHashes checks that the stored settings hash of each device is that of its settings now.
func assertFreshHashes(t *testing.T, st *storage.Store, svc *devices.Service, what string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		d, err := st.GetDevice(ctx, id)
		require.NoError(t, err)
		want := *d
		require.NoError(t, svc.Rehash(ctx, st, &want))
		assert.Equal(t, want.SettingsHash, d.SettingsHash, "%s: the stored settings hash is that of the device's settings", what)
	}
}

// TestBulkTargetsCarryTheirSettingsHash: every activity that moves devices to another target in bulk (a
// rollout's waves, its rollback and its settling, a promotion to a device) stores
// the settings hash of their new settings (docs/device-protocol.md §2.4: the hash changes whenever the
// settings do, and FF_SNAPSHOT_ID and the snapshot's env are in them). A stale hash would give `update` and
// `live/settings` the old settings' hash for the new settings.
func TestBulkTargetsCarryTheirSettingsHash(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		_, in, svc := instanceWorld(t, st)
		snaps := [3]string{}
		for i := range snaps {
			snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: domain.NewID(), Flows: "[]", Credentials: "{}",
				Env: []domain.EnvVar{{Name: "VERSION", Value: fmt.Sprint("v", i)}}}
			_, err := st.InsertSnapshot(ctx, snap)
			require.NoError(t, err)
			snaps[i] = snap.ID
		}
		g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "g"}
		require.NoError(t, st.InsertDeviceGroup(ctx, g))
		var ids []string
		for range 3 {
			d := &storage.Device{ID: domain.NewID(), TeamID: in.TeamID, ApplicationID: &in.ApplicationID, DeviceGroupID: &g.ID, Name: "d",
				CredentialSecret: "x", Mode: "autonomous", TargetSnapshotID: &snaps[0]}
			require.NoError(t, svc.Rehash(ctx, st, d))
			require.NoError(t, st.InsertDevice(ctx, d))
			ids = append(ids, d.ID)
		}
		fresh := func(what string, ids ...string) { t.Helper(); assertFreshHashes(t, st, svc, what, ids...) }
		rollouts := &activities.Rollouts{Store: st, Devices: svc}
		r := &storage.Rollout{ID: domain.NewID(), GroupID: g.ID, TeamID: in.TeamID, ApplicationID: in.ApplicationID, SnapshotID: snaps[1], Status: "running"}
		require.NoError(t, st.InsertRollout(ctx, r))
		_, err := rollouts.PlanRollout(ctx, activities.PlanRollout{RolloutID: r.ID, GroupID: g.ID, SnapshotID: snaps[1], Waves: []int{100}})
		require.NoError(t, err)
		require.NoError(t, rollouts.DispatchWave(ctx, activities.DispatchWave{RolloutID: r.ID, Wave: 0, SnapshotID: snaps[1], BatchSize: 2}))
		fresh("a rollout's wave", ids...)

		n, err := rollouts.RollBackDevices(ctx, r.ID, 2)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		fresh("a rollback", ids...)

		require.NoError(t, rollouts.SaveRolloutProgress(ctx, activities.RolloutProgress{RolloutID: r.ID, Status: "succeeded"}))
		fresh("a rollout settling its group", ids...)

		pipelines := &activities.Pipelines{Store: st, Devices: svc}
		require.NoError(t, pipelines.SetDeviceTarget(ctx, ids[0], snaps[2]))
		fresh("a promotion to a device", ids[0])
	})
}

// notified records the devices told their target changed.
type notified struct{ ids []string }

func (n *notified) NotifyDevices(_ context.Context, ids []string) error {
	n.ids = append(n.ids, ids...)
	return nil
}

// TestRemovedInstanceRehashesItsDevices: deleting an instance leaves the devices it owned without an owner and
// takes its snapshots, so the devices that targeted one of them lose their target. Their stored settings hash is
// that of their new settings and they are told (`update`); a device of the same team and application that
// derives nothing from the instance is left alone.
func TestRemovedInstanceRehashesItsDevices(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		sealer, in, svc := instanceWorld(t, st)
		snapshot := func(instanceID string) string {
			snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: in.ApplicationID, InstanceID: instanceID, TeamID: in.TeamID, Name: domain.NewID(),
				Flows: "[]", Credentials: "{}", Env: []domain.EnvVar{{Name: "VERSION", Value: "v1"}}}
			_, err := st.InsertSnapshot(ctx, snap)
			require.NoError(t, err)
			return snap.ID
		}
		own, appSnap := snapshot(in.ID), snapshot("")
		device := func(d *storage.Device) string {
			d.ID, d.TeamID, d.Name, d.CredentialSecret, d.Mode = domain.NewID(), in.TeamID, "d", "x", "autonomous"
			require.NoError(t, svc.Rehash(ctx, st, d))
			require.NoError(t, st.InsertDevice(ctx, d))
			return d.ID
		}
		owned := device(&storage.Device{InstanceID: &in.ID, TargetSnapshotID: &own})
		targeting := device(&storage.Device{ApplicationID: &in.ApplicationID, TargetSnapshotID: &own})
		other := device(&storage.Device{ApplicationID: &in.ApplicationID, TargetSnapshotID: &appSnap})
		before, err := st.GetDevice(ctx, other)
		require.NoError(t, err)

		n := &notified{}
		acts := &activities.Instances{Store: st, Driver: fake.New(nil), Sealer: sealer, Devices: svc, Notifier: n}
		require.NoError(t, acts.RemoveInstance(ctx, in.ID))
		for _, id := range []string{owned, targeting} {
			d, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			assert.Nil(t, d.InstanceID)
			assert.Nil(t, d.TargetSnapshotID)
		}
		assertFreshHashes(t, st, svc, "an instance deleted", owned, targeting)
		assert.ElementsMatch(t, []string{owned, targeting}, n.ids, "the devices whose settings changed are told")
		after, err := st.GetDevice(ctx, other)
		require.NoError(t, err)
		assert.Equal(t, before.SettingsHash, after.SettingsHash)
	})
}
