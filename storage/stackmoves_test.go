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

// TestStackMoveBatches: a move plans the stack's instances into waves once; each batch marks instances moving
// with an upgrade operation of their team, a retried batch gets the same instances and operations, an
// instance deleted or put on another stack before its turn is skipped, and the counts follow.
func TestStackMoveBatches(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "move-a")
		app, err := st.GetApplication(ctx, in.ApplicationID)
		require.NoError(t, err)
		for _, name := range []string{"move-b", "move-c", "move-d"} {
			newInstanceIn(t, st, app, name)
		}
		from := in.StackID
		to := &storage.Stack{ID: domain.NewID(), Name: "newer", NodeRedVersion: "4.1.15", MemoryMB: 256, CPUPercent: 50, Active: true}
		require.NoError(t, storage.InsertObject(ctx, st, to))
		m := &storage.StackMove{ID: domain.NewID(), FromStackID: from, ToStackID: to.ID, Status: domain.StackMoveRunning}
		require.NoError(t, st.InsertStackMove(ctx, m))
		again := &storage.StackMove{ID: domain.NewID(), FromStackID: from, ToStackID: to.ID, Status: domain.StackMoveRunning}
		assert.True(t, domain.IsKind(st.InsertStackMove(ctx, again), domain.KindConflict), "one running move per stack")

		sizes, err := st.PlanStackMove(ctx, m.ID, from, []int{50, 100})
		require.NoError(t, err)
		assert.Equal(t, []int{2, 2}, sizes)
		replanned, err := st.PlanStackMove(ctx, m.ID, from, []int{50, 100})
		require.NoError(t, err)
		assert.Equal(t, sizes, replanned, "planned once")

		first, err := st.NextStackMoveBatch(ctx, m.ID, from, 0, 1, nil)
		require.NoError(t, err)
		require.Len(t, first, 1)
		retried, err := st.NextStackMoveBatch(ctx, m.ID, from, 0, 1, nil)
		require.NoError(t, err)
		assert.Equal(t, first, retried, "a retried batch gets the same instance and operation")
		op, err := st.GetOperation(ctx, first[0].OperationID)
		require.NoError(t, err)
		assert.Equal(t, "upgrade", op.Kind)
		assert.Equal(t, first[0].TeamID, *op.TeamID)
		assert.Equal(t, "instance/"+first[0].InstanceID, op.WorkflowID)

		require.NoError(t, st.FinishStackMoveInstance(ctx, m.ID, first[0].InstanceID, domain.StackMoveInstanceMoved, ""))
		require.NoError(t, st.FinishStackMoveInstance(ctx, m.ID, first[0].InstanceID, domain.StackMoveInstanceFailed, "late"), "finished once")

		// Every instance of the second wave leaves the stack before its turn: one deleted, one moved by hand.
		parts, _, err := st.ListStackMoveInstances(ctx, m.ID, storage.Page{})
		require.NoError(t, err)
		var wave1 []string
		for _, p := range parts {
			if p.Wave == 1 {
				wave1 = append(wave1, p.InstanceID)
			}
		}
		require.Len(t, wave1, 2)
		require.NoError(t, st.DeleteInstance(ctx, wave1[0]))
		moved, err := st.GetInstance(ctx, wave1[1])
		require.NoError(t, err)
		moved.StackID = to.ID
		require.NoError(t, st.UpdateInstance(ctx, moved, "stack_id"))
		none, err := st.NextStackMoveBatch(ctx, m.ID, from, 1, 4, nil)
		require.NoError(t, err)
		assert.Empty(t, none)

		second, err := st.NextStackMoveBatch(ctx, m.ID, from, 0, 4, nil)
		require.NoError(t, err)
		require.Len(t, second, 1, "the rest of the first wave")
		require.NoError(t, st.FinishStackMoveInstance(ctx, m.ID, second[0].InstanceID, domain.StackMoveInstanceFailed, "flows did not start"))
		c, err := st.CountStackMove(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, storage.StackMoveCounts{Total: 4, Moved: 1, Failed: 1, Skipped: 2}, c)

		m.Status, m.Moved, m.Failed, m.Skipped = domain.StackMoveFailed, 1, 1, 2
		require.NoError(t, st.SaveStackMoveProgress(ctx, m))
		got, err := st.GetStackMove(ctx, m.ID)
		require.NoError(t, err)
		assert.NotNil(t, got.FinishedAt)
		require.NoError(t, st.InsertStackMove(ctx, again), "a finished move lets the next one start")
	})
}
