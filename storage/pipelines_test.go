package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func TestPipelinesStagesAndHistory(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		team := newTeam(t, st, "pl-team")
		app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
		require.NoError(t, st.InsertApplication(ctx, app))
		p := &storage.Pipeline{ID: domain.NewID(), ApplicationID: app.ID, TeamID: team.ID, Name: "main"}
		require.NoError(t, st.InsertPipeline(ctx, p))
		dup := &storage.Pipeline{ID: domain.NewID(), ApplicationID: app.ID, TeamID: team.ID, Name: "main"}
		assert.True(t, domain.IsKind(st.InsertPipeline(ctx, dup), domain.KindConflict), "a name is unique in its application")

		dev := storage.PipelineStage{ID: domain.NewID(), Name: "dev", Action: domain.StageCreateSnapshot,
			Targets: []domain.StageTarget{{Kind: domain.TargetInstance, ID: "i1"}}}
		prod := storage.PipelineStage{ID: domain.NewID(), Name: "prod", Action: domain.StagePrompt, RequiresApproval: true, ApproverRole: "owner",
			Targets: []domain.StageTarget{{Kind: domain.TargetInstance, ID: "i2"}, {Kind: domain.TargetInstance, ID: "i3"}}}
		require.NoError(t, st.ReplaceStages(ctx, p.ID, []storage.PipelineStage{dev, prod}))
		stages, err := st.ListStages(ctx, p.ID)
		require.NoError(t, err)
		require.Len(t, stages, 2)
		assert.Equal(t, "dev", stages[0].Name)
		assert.Len(t, stages[1].Targets, 2)
		assert.True(t, stages[1].RequiresApproval)

		// Reorder and drop one: positions follow the list, the dropped row is gone.
		stages[1].Name = "production"
		require.NoError(t, st.ReplaceStages(ctx, p.ID, []storage.PipelineStage{stages[1]}))
		stages, err = st.ListStages(ctx, p.ID)
		require.NoError(t, err)
		require.Len(t, stages, 1)
		assert.Equal(t, "production", stages[0].Name)
		assert.Equal(t, 0, stages[0].Position)

		_, err = st.LastPromotionInto(ctx, prod.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
		snap := "s1"
		pr := &storage.Promotion{ID: domain.NewID(), PipelineID: p.ID, TeamID: team.ID, SourceStageID: dev.ID, TargetStageID: prod.ID,
			Status: domain.PromotionRunning}
		require.NoError(t, st.InsertPromotion(ctx, pr))
		pr.SnapshotID, pr.Status = &snap, domain.PromotionSucceeded
		pr.Results = []storage.PromotionResult{{Kind: domain.TargetInstance, ID: "i2", Status: "succeeded"}}
		require.NoError(t, st.UpdatePromotion(ctx, pr))
		pr.Status = domain.PromotionFailed
		require.NoError(t, st.UpdatePromotion(ctx, pr))
		last, err := st.LastPromotionInto(ctx, prod.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.PromotionSucceeded, last.Status, "a finished promotion is never changed again")
		assert.Equal(t, "s1", *last.SnapshotID)
		assert.NotNil(t, last.FinishedAt)
		assert.Equal(t, "i2", last.Results[0].ID)

		require.NoError(t, st.DeletePipeline(ctx, p.ID))
		_, err = st.GetPromotion(ctx, pr.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "history goes with the pipeline")
	})
}

func TestInstanceDeviceTarget(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		require.NoError(t, st.SeedDefaults(ctx)) // first: seeding defaults needs an empty store
		f := newRolloutFixture(t, st, 2)
		inst := newInstanceIn(t, st, &storage.Application{ID: f.appID, TeamID: f.teamID}, "with-devices")
		in := inst.ID
		own := snapshotOf(inst, "for the devices", false)
		_, err := st.InsertSnapshot(ctx, own)
		require.NoError(t, err)
		d, err := st.GetDevice(ctx, f.devices[0])
		require.NoError(t, err)
		d.ApplicationID, d.InstanceID, d.DeviceGroupID = nil, &in, nil
		require.NoError(t, st.UpdateDevice(ctx, d, "application_id", "instance_id", "device_group_id"))
		ids, err := st.SetInstanceDeviceTarget(ctx, in, &own.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{f.devices[0]}, ids)
		for i, id := range f.devices {
			got, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			want := map[int]string{0: own.ID, 1: f.oldS}[i]
			assert.Equal(t, want, *got.TargetSnapshotID)
		}
		got, err := st.GetInstance(ctx, in)
		require.NoError(t, err)
		assert.Equal(t, own.ID, *got.DeviceTargetSnapshotID)

		_, err = st.SetInstanceDeviceTarget(ctx, in, &f.newS)
		assert.True(t, domain.IsKind(err, domain.KindUnprocessable), "only a snapshot of the instance itself: %v", err)

		ids, err = st.SetInstanceDeviceTarget(ctx, in, nil)
		require.NoError(t, err)
		assert.Empty(t, ids, "clearing the target leaves the devices as they are")
		dev, err := st.GetDevice(ctx, f.devices[0])
		require.NoError(t, err)
		assert.Equal(t, own.ID, *dev.TargetSnapshotID)

		_, err = st.SetInstanceDeviceTarget(ctx, in, &own.ID)
		require.NoError(t, err)
		require.NoError(t, st.DeleteSnapshot(ctx, own.ID))
		got, err = st.GetInstance(ctx, in)
		require.NoError(t, err)
		assert.Nil(t, got.DeviceTargetSnapshotID, "a deleted snapshot is nobody's target")
	})
}
