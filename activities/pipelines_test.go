package activities_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
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
		require.NoError(t, (&activities.Pipelines{Store: st}).SetDeviceTarget(ctx, d.ID, snap.ID))
	})
}
