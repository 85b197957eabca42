package storage_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// newInstance adds a team, an application and an instance on the seeded platform objects.
func newInstance(t *testing.T, st *storage.Store, name string) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	team := newTeam(t, st, "team-"+name)
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
	require.NoError(t, st.InsertApplication(ctx, app))
	return newInstanceIn(t, st, app, name)
}

// newInstanceIn adds an instance to an application, on the seeded platform objects (SeedDefaults ran).
func newInstanceIn(t testing.TB, st *storage.Store, app *storage.Application, name string) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	types, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	require.NoError(t, err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	require.NoError(t, err)
	templates, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	require.NoError(t, err)
	in := &storage.Instance{ID: domain.NewID(), Name: name, ApplicationID: app.ID, TeamID: app.TeamID,
		InstanceTypeID: types[0].ID, StackID: stacks[0].ID, TemplateID: templates[0].ID, State: "running", DesiredState: "running",
		Settings: map[string]any{}, Env: []domain.EnvVar{}, Modules: map[string]string{}, CredentialSecret: "sealed",
		AdminToken: "a", ReadToken: "r", RuntimeToken: "t"}
	require.NoError(t, st.InsertInstance(ctx, in))
	return in
}

func snapshotOf(in *storage.Instance, name string, auto bool) *storage.Snapshot {
	return &storage.Snapshot{ID: domain.NewID(), InstanceID: in.ID, ApplicationID: in.ApplicationID, TeamID: in.TeamID,
		Name: name, Auto: auto, Flows: `[{"id":"n1","type":"tab"}]`, Credentials: `{"$":"00"}`, CredentialSecret: "v1:sealed",
		Settings: map[string]any{"timeZone": "UTC"}, Env: []domain.EnvVar{{Name: "A", Value: "1"}},
		Modules: map[string]string{"node-red-node-random": "0.4.1"}, NodeRedVersion: "4.1.15"}
}

func TestSnapshotsRoundTripAndListWithoutContent(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "snap-one")
		snap := snapshotOf(in, "first", false)
		inserted, err := st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		assert.True(t, inserted)
		again := *snap
		inserted, err = st.InsertSnapshot(ctx, &again)
		require.NoError(t, err)
		assert.False(t, inserted, "a retried insert with the same ID stores nothing twice")

		got, err := st.GetSnapshot(ctx, snap.ID)
		require.NoError(t, err)
		assert.Equal(t, snap.Flows, got.Flows)
		assert.Equal(t, snap.Credentials, got.Credentials)
		assert.Equal(t, "v1:sealed", got.CredentialSecret)
		assert.Equal(t, map[string]string{"node-red-node-random": "0.4.1"}, got.Modules)
		assert.Equal(t, snap.Env, got.Env)
		assert.Equal(t, "UTC", got.Settings["timeZone"])
		assert.EqualValues(t, len(snap.Flows)+len(snap.Credentials), got.SizeBytes)
		assert.False(t, got.Auto)

		meta, err := st.GetSnapshotMeta(ctx, snap.ID)
		require.NoError(t, err)
		assert.Equal(t, "first", meta.Name)
		assert.Empty(t, meta.Flows+meta.Credentials+meta.CredentialSecret, "meta reads leave the content out")

		second := snapshotOf(in, "second", true)
		_, err = st.InsertSnapshot(ctx, second)
		require.NoError(t, err)
		list, next, err := st.ListSnapshots(ctx, in.ID, storage.Page{})
		require.NoError(t, err)
		assert.Empty(t, next)
		require.Len(t, list, 2)
		assert.Equal(t, []string{snap.ID, second.ID}, []string{list[0].ID, list[1].ID})
		assert.Empty(t, list[0].Flows)
		assert.True(t, list[1].Auto)

		meta.Name, meta.Description = "renamed", "why"
		require.NoError(t, st.UpdateSnapshot(ctx, meta, "name", "description"))
		got, err = st.GetSnapshot(ctx, snap.ID)
		require.NoError(t, err)
		assert.Equal(t, "renamed", got.Name)
		assert.Equal(t, snap.Flows, got.Flows, "renaming leaves the content alone")

		require.NoError(t, st.DeleteSnapshot(ctx, snap.ID))
		_, err = st.GetSnapshot(ctx, snap.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
		assert.True(t, domain.IsKind(st.DeleteSnapshot(ctx, snap.ID), domain.KindNotFound))
	})
}

func TestSnapshotsHoldLargeFlows(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "snap-large")
		snap := snapshotOf(in, "large", false)
		snap.Flows = `[{"id":"c1","type":"comment","info":"` + strings.Repeat("x", 10<<20) + `"}]`
		_, err := st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		got, err := st.GetSnapshot(ctx, snap.ID)
		require.NoError(t, err)
		assert.Equal(t, len(snap.Flows), len(got.Flows))
	})
}

func TestPruneAutoSnapshotsKeepsTheNewestAndSparesManualOnes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "snap-prune")
		other := newInstance(t, st, "snap-other")
		manual := snapshotOf(in, "by hand", false)
		_, err := st.InsertSnapshot(ctx, manual)
		require.NoError(t, err)
		var autos []string
		for i := 0; i < 13; i++ {
			s := snapshotOf(in, fmt.Sprintf("auto %d", i), true)
			_, err := st.InsertSnapshot(ctx, s)
			require.NoError(t, err)
			autos = append(autos, s.ID)
		}
		foreign := snapshotOf(other, "other instance", true)
		_, err = st.InsertSnapshot(ctx, foreign)
		require.NoError(t, err)

		deleted, err := st.PruneAutoSnapshots(ctx, in.ID, 10, autos[0])
		require.NoError(t, err)
		assert.ElementsMatch(t, autos[1:3], deleted, "the oldest beyond ten go, except the spared one")
		list, _, err := st.ListSnapshots(ctx, in.ID, storage.Page{})
		require.NoError(t, err)
		var left []string
		for _, s := range list {
			left = append(left, s.ID)
		}
		assert.Equal(t, append([]string{manual.ID, autos[0]}, autos[3:]...), left)

		deleted, err = st.PruneAutoSnapshots(ctx, in.ID, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{autos[0]}, deleted)
		deleted, err = st.PruneAutoSnapshots(ctx, in.ID, 10)
		require.NoError(t, err)
		assert.Empty(t, deleted, "pruning twice is a no-op")
		_, err = st.GetSnapshot(ctx, foreign.ID)
		assert.NoError(t, err, "another instance's snapshots are not counted")
	})
}

func TestSnapshotsGoWithTheirInstance(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "snap-gone")
		snap := snapshotOf(in, "s", false)
		_, err := st.InsertSnapshot(ctx, snap)
		require.NoError(t, err)
		require.NoError(t, st.DeleteInstance(ctx, in.ID))
		_, err = st.GetSnapshot(ctx, snap.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
	})
}

func TestSnapshotsDevicesUseAreSparedAndNamed(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "snap-devices")
		var autos []string
		for i := 0; i < 4; i++ {
			s := snapshotOf(in, fmt.Sprintf("auto %d", i), true)
			_, err := st.InsertSnapshot(ctx, s)
			require.NoError(t, err)
			autos = append(autos, s.ID)
		}
		for i, use := range []struct{ target, active *string }{{target: &autos[0]}, {active: &autos[1]}, {target: &autos[0]}} {
			d := &storage.Device{ID: domain.NewID(), TeamID: in.TeamID, Name: fmt.Sprintf("device-%d", i), CredentialSecret: "sealed",
				Mode: "autonomous", SettingsHash: "h", TargetSnapshotID: use.target, ActiveSnapshotID: use.active}
			require.NoError(t, st.InsertDevice(ctx, d))
		}
		group := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "line-1", TargetSnapshotID: &autos[0]}
		require.NoError(t, st.InsertDeviceGroup(ctx, group))
		names, err := st.SnapshotTargetOf(ctx, autos[0], 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"device device-0", "device device-2", "device group line-1"}, names)
		names, err = st.SnapshotTargetOf(ctx, autos[0], 2)
		require.NoError(t, err)
		assert.Len(t, names, 2)
		names, err = st.SnapshotTargetOf(ctx, autos[1], 10)
		require.NoError(t, err)
		assert.Empty(t, names, "running a snapshot is not targeting it")

		groupTarget := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "line-2", TargetSnapshotID: &autos[2]}
		require.NoError(t, st.InsertDeviceGroup(ctx, groupTarget))
		extra := snapshotOf(in, "auto 4", true)
		_, err = st.InsertSnapshot(ctx, extra)
		require.NoError(t, err)
		deleted, err := st.PruneAutoSnapshots(ctx, in.ID, 1)
		require.NoError(t, err)
		assert.Equal(t, []string{autos[3]}, deleted, "snapshots a device or group targets or a device runs are kept")
	})
}
