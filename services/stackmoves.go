package services

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// StackMoveRunner starts moves of a stack's instances; the workflow facade (stackmove.Client) implements it.
type StackMoveRunner interface {
	Start(ctx context.Context, p stackmove.Params) (runID string, err error)
}

// StackMoves records moves of every instance of a stack to another one, which a platform admin asks for.
type StackMoves struct {
	Operations *Operations
	Runner     StackMoveRunner // nil: Start fails with ErrNoEngine
}

// Start records the move m (its ID and stacks set by the caller) of the instances on m.FromStackID
// with strategy, asked for by the user by: one transaction writes its operation (a platform one, of no team),
// the move row (a stack with a move running refuses) and the audit entry; then it starts the move's workflow.
// When the engine refuses, the move and its operation are marked failed, so the stack is free for the next one.
func (s *StackMoves) Start(ctx context.Context, by string, m *storage.StackMove, strategy stackmove.Strategy) (*storage.Operation, error) {
	m.Status, m.Waves = domain.StackMoveRunning, len(strategy.Waves)
	m.Strategy = map[string]any{"waves": strategy.Waves, "failureThreshold": strategy.FailureThreshold, "concurrency": strategy.Concurrency}
	op := NewOperation("stack_move", "stack", m.FromStackID, "", stackmove.WorkflowID(m.ID), by)
	op.TeamID = nil // a platform operation: only admins read it
	m.OperationID, m.CreatedBy = &op.ID, op.CreatedBy
	err := s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := s.Operations.Record(ctx, tx, op); err != nil {
			return err
		}
		if err := tx.InsertStackMove(ctx, m); err != nil {
			return err
		}
		return Audit(ctx, tx, by, "", "platform.stacks.move", "stack", m.FromStackID, map[string]any{"toStackId": m.ToStackID, "moveId": m.ID})
	})
	if err != nil {
		return nil, err
	}
	if s.Runner == nil {
		return op, s.fail(ctx, m, op, ErrNoEngine())
	}
	op.RunID, err = s.Runner.Start(ctx, stackmove.Params{MoveID: m.ID, FromStackID: m.FromStackID, ToStackID: m.ToStackID,
		OperationID: op.ID, CreatedBy: by, Strategy: strategy})
	if err != nil {
		return op, s.fail(ctx, m, op, err)
	}
	return op, nil
}

// fail ends a move the engine would not start, so the stack is free for the next one.
func (s *StackMoves) fail(ctx context.Context, m *storage.StackMove, op *storage.Operation, cause error) error {
	m.Status, m.Reason = domain.StackMoveFailed, cause.Error()
	if err := s.Operations.Store.SaveStackMoveProgress(ctx, m); err != nil {
		s.Operations.log().Error("mark stack move failed", "move", m.ID, "err", err)
	}
	return s.Operations.Fail(ctx, op, cause)
}
