package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func alertKinds(t *testing.T, st *storage.Store) []string {
	t.Helper()
	events, err := st.UndispatchedAlertEvents(context.Background(), 100)
	require.NoError(t, err)
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// TestStateChangesRecordTheirAlertOnce: entering crashed, error, or running in safe mode records one alert with
// the state's reason, however often the write is retried; other states record none; each new crash is a new
// alert.
func TestStateChangesRecordTheirAlertOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		in := storagetest.NewInstance(t, st, sealer, nil)
		a := &Instances{Store: st, Sealer: sealer}
		set := func(state domain.InstanceState, reason string) {
			for range 2 { // a local activity retried after its write committed
				require.NoError(t, a.SetState(ctx, StateChange{InstanceID: in.ID, State: state, Reason: reason}))
			}
		}
		set("crashed", "exited with code 1")
		set("starting", "")
		set("running", "")
		set("crashed", "exited with code 1")
		set("starting", "")
		set("running", SafeModeReason)
		set("stopping", "")
		set("error", "flows did not start")
		assert.Equal(t, []string{alerts.KindInstanceCrashed, alerts.KindInstanceCrashed, alerts.KindInstanceSafeMode, alerts.KindInstanceError},
			alertKinds(t, st))
		events, err := st.UndispatchedAlertEvents(ctx, 100)
		require.NoError(t, err)
		assert.Equal(t, "exited with code 1", events[0].Message)
		assert.Equal(t, in.Name, events[0].SubjectName)
	})
}

// TestFailedPromotionRecordsOneAlert: the projection of a failed promotion records its alert once, and of a
// succeeded one none.
func TestFailedPromotionRecordsOneAlert(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		in := storagetest.NewInstance(t, st, sealer, nil)
		pipe := &storage.Pipeline{ID: domain.NewID(), ApplicationID: in.ApplicationID, TeamID: in.TeamID, Name: "to prod"}
		require.NoError(t, st.InsertPipeline(ctx, pipe))
		stages := []storage.PipelineStage{{ID: domain.NewID(), Name: "dev", Action: domain.StagePrompt,
			Targets: []domain.StageTarget{{Kind: domain.TargetInstance, ID: in.ID}}}, {ID: domain.NewID(), Name: "prod", Action: domain.StagePrompt}}
		require.NoError(t, st.ReplaceStages(ctx, pipe.ID, stages))
		a := &Pipelines{Store: st}
		for _, status := range []domain.PromotionStatus{domain.PromotionSucceeded, domain.PromotionFailed} {
			pr := &storage.Promotion{ID: domain.NewID(), PipelineID: pipe.ID, TeamID: in.TeamID, SourceStageID: stages[0].ID,
				TargetStageID: stages[1].ID, Status: domain.PromotionRunning}
			require.NoError(t, st.InsertPromotion(ctx, pr))
			for range 2 {
				require.NoError(t, a.SavePromotionProgress(ctx, PromotionProgress{PromotionID: pr.ID, Status: status, Reason: "target failed"}))
			}
		}
		assert.Equal(t, []string{alerts.KindPromotionFailed}, alertKinds(t, st))
	})
}
