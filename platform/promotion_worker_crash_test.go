package platform_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/workflows/pipeline"
)

// TestCrashWorkerDuringPromotion promotes 10 MB of flows from a source instance into two target
// instances, SIGKILLs the worker while the first target's write waits at a lock on Postgres, starts a new worker, and
// checks that the promotion finishes with every target promoted exactly once: one automatic snapshot and one
// lifecycle operation per target, the source's flows, and each target's own env values kept.
func TestCrashWorkerDuringPromotion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	temporal := startTemporal(t)

	dbURL, st, sealer := crashStore(ctx, t)
	source := seedInstance(t, st, sealer)
	newer, older := versioned("new", 10<<20), versioned("old", 10<<20)
	write(t, st, sealer, source, newer)
	var targets []*storage.Instance
	for _, name := range []string{"target-a", "target-b"} {
		in := *source
		in.ID, in.Name = domain.NewID(), name
		require.NoError(t, st.InsertInstance(ctx, &in))
		write(t, st, sealer, &in, older)
		targets = append(targets, &in)
	}
	promotionID, opID := seedPromotion(t, st, source, targets)

	first := workerProcess(t, dbURL, temporal)
	c := dialTemporal(t, temporal)
	facade := &pipeline.Client{Temporal: c, TaskQueue: pipelinesQueue, InstanceQueue: testTaskQueue, RolloutQueue: "rollouts"}
	gate := storagetest.HoldInstanceWrites(t, dbURL)
	_, err := facade.Start(ctx, pipeline.Params{PromotionID: promotionID, TeamID: source.TeamID, OperationID: opID})
	require.NoError(t, err)

	gate.WaitForWriter(targets[0].ID)
	proctest.Stop(t, first, syscall.SIGKILL, 30*time.Second, nil)
	gate.Release()
	assert.Equal(t, older.flows, read(t, st, sealer, targets[0].ID).flows, "the kill came in the first target's write, which never committed")

	workerProcess(t, dbURL, temporal)
	got, err := facade.Wait(ctx, promotionID)
	require.NoError(t, err, "the promotion finishes on the new worker")
	assert.Equal(t, domain.PromotionSucceeded, got.Status)
	for _, in := range targets {
		content := read(t, st, sealer, in.ID)
		assert.Equal(t, newer.flows, content.flows, in.Name+" runs the source's flows")
		assert.Equal(t, "flows new, credentials password-new, env old", label(content), in.Name+": the target keeps its env value")
		snaps, _, err := st.ListSnapshots(ctx, in.ID, storage.Page{})
		require.NoError(t, err)
		assert.Len(t, snaps, 1, in.Name+" was promoted once: one snapshot")
		assert.Equal(t, 1, countAuto(snaps), in.Name+": the one snapshot is the automatic one taken before the deploy")
		ops, _, err := st.ListOperationsBySubject(ctx, "instance", in.ID, storage.Page{})
		require.NoError(t, err)
		require.Len(t, ops, 1, in.Name+" was promoted once: one lifecycle operation")
		assertOperationFinal(t, st, ops[0].ID, domain.OperationSucceeded)
		reread, err := st.GetInstance(ctx, in.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.InstanceRunning, reread.State, in.Name+" is left running, not in an in-between state")
	}
	sourceSnaps, _, err := st.ListSnapshots(ctx, source.ID, storage.Page{})
	require.NoError(t, err)
	require.Len(t, sourceSnaps, 1, "the source's deploy snapshot was captured once")
	pr, err := st.GetPromotion(ctx, promotionID)
	require.NoError(t, err)
	assert.Equal(t, domain.PromotionSucceeded, pr.Status)
	require.NotNil(t, pr.SnapshotID)
	assert.Equal(t, sourceSnaps[0].ID, *pr.SnapshotID, "the promotion names the snapshot it deployed")
	assert.Len(t, pr.Results, len(targets), "one result per target")
	for _, r := range pr.Results {
		assert.Equal(t, domain.PromotionTargetSucceeded, r.Status, r.ID)
	}
	assertOperationFinal(t, st, opID, domain.OperationSucceeded)
}

// seedPromotion records a two-stage pipeline (source → both targets) and a promotion along it with its
// operation, and returns their IDs.
func seedPromotion(t *testing.T, st *storage.Store, source *storage.Instance, targets []*storage.Instance) (string, string) {
	t.Helper()
	ctx := context.Background()
	p := &storage.Pipeline{ID: domain.NewID(), ApplicationID: source.ApplicationID, TeamID: source.TeamID, Name: "release"}
	require.NoError(t, st.InsertPipeline(ctx, p))
	from := storage.PipelineStage{ID: domain.NewID(), Name: "dev", Action: domain.StageCreateSnapshot, ApproverRole: "owner",
		Targets: []domain.StageTarget{{Kind: domain.TargetInstance, ID: source.ID}}}
	to := storage.PipelineStage{ID: domain.NewID(), Name: "prod", Action: domain.StageCreateSnapshot, ApproverRole: "owner"}
	for _, in := range targets {
		to.Targets = append(to.Targets, domain.StageTarget{Kind: domain.TargetInstance, ID: in.ID})
	}
	require.NoError(t, st.ReplaceStages(ctx, p.ID, []storage.PipelineStage{from, to}))
	pr := &storage.Promotion{ID: domain.NewID(), PipelineID: p.ID, TeamID: p.TeamID, SourceStageID: from.ID, TargetStageID: to.ID,
		Status: domain.PromotionRunning}
	op := &storage.Operation{ID: domain.NewID(), Kind: "promotion", SubjectType: "promotion", SubjectID: pr.ID, TeamID: &p.TeamID,
		Status: domain.OperationPending, WorkflowID: pipeline.WorkflowID(pr.ID)}
	pr.OperationID = &op.ID
	_, _, err := st.InsertOperation(ctx, op)
	require.NoError(t, err)
	require.NoError(t, st.InsertPromotion(ctx, pr))
	return pr.ID, op.ID
}
