package activities

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// StackMoves are the activities of the stack move workflow. Each instance's part is a row in the store, so
// every activity is safe to retry and the workflow carries only counters.
type StackMoves struct {
	Store *storage.Store
}

// PlanStackMove asks to assign the instances on a stack to waves.
type PlanStackMove struct {
	MoveID, FromStackID string
	Waves               []int
}

// NextStackMoves asks for the next instances of a wave to move.
type NextStackMoves struct {
	MoveID, FromStackID string
	Wave, Count         int
	CreatedBy           string
}

// StackMoveTarget is an instance to upgrade, with the operation its lifecycle run reports on.
type StackMoveTarget struct {
	InstanceID, TeamID, OperationID string
}

// StackMoveResult is how one instance's upgrade ended.
type StackMoveResult struct {
	MoveID, InstanceID, OperationID string
	Moved                           bool
	Reason                          string
}

// StackMoveCounts are the counters the workflow decides on.
type StackMoveCounts struct {
	Total, Pending, Moving, Moved, Failed, Skipped int
}

// StackMoveProgress is the projection of a move the API reads.
type StackMoveProgress struct {
	MoveID, OperationID, Reason                         string
	Status                                              domain.StackMoveStatus
	Wave, Waves, Total, Moved, Failed, Skipped, Pending int
}

// PlanStackMove assigns the stack's instances to waves (once) and returns the wave sizes.
func (a *StackMoves) PlanStackMove(ctx context.Context, p PlanStackMove) ([]int, error) {
	return a.Store.PlanStackMove(ctx, p.MoveID, p.FromStackID, p.Waves)
}

// NextStackMoves marks up to Count instances of the wave moving, each with an upgrade operation, and returns
// them; a retry returns the same ones. An empty answer means the wave is done.
func (a *StackMoves) NextStackMoves(ctx context.Context, req NextStackMoves) ([]StackMoveTarget, error) {
	var by *string
	if req.CreatedBy != "" {
		by = &req.CreatedBy
	}
	rows, err := a.Store.NextStackMoveBatch(ctx, req.MoveID, req.FromStackID, req.Wave, req.Count, by)
	if err != nil {
		return nil, err
	}
	out := make([]StackMoveTarget, len(rows))
	for i, r := range rows {
		out[i] = StackMoveTarget{InstanceID: r.InstanceID, TeamID: r.TeamID, OperationID: r.OperationID}
	}
	return out, nil
}

// FinishStackMoveInstance records how an instance's upgrade ended. An upgrade that never started (another
// action kept the instance busy) leaves its operation pending: it is failed here with the reason.
func (a *StackMoves) FinishStackMoveInstance(ctx context.Context, r StackMoveResult) error {
	status := domain.StackMoveInstanceMoved
	if !r.Moved {
		status = domain.StackMoveInstanceFailed
		op, err := a.Store.GetOperation(ctx, r.OperationID)
		if err == nil && op.Status == domain.OperationPending {
			op.Status, op.Error = domain.OperationFailed, r.Reason
			if _, err := a.Store.UpdateOperation(ctx, op, domain.OperationPending); err != nil {
				return err
			}
		}
	}
	return a.Store.FinishStackMoveInstance(ctx, r.MoveID, r.InstanceID, status, r.Reason)
}

// StackMoveCounts counts the move's instances by status.
func (a *StackMoves) StackMoveCounts(ctx context.Context, moveID string) (StackMoveCounts, error) {
	c, err := a.Store.CountStackMove(ctx, moveID)
	return StackMoveCounts(c), err
}

// SaveStackMoveProgress writes the move's row and its operation.
func (a *StackMoves) SaveStackMoveProgress(ctx context.Context, p StackMoveProgress) error {
	m, err := a.Store.GetStackMove(ctx, p.MoveID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	m.Status, m.Reason, m.Wave, m.Waves, m.Total, m.Moved, m.Failed, m.Skipped, m.Pending =
		p.Status, p.Reason, p.Wave, p.Waves, p.Total, p.Moved, p.Failed, p.Skipped, p.Pending
	if err := a.Store.SaveStackMoveProgress(ctx, m); err != nil {
		return err
	}
	progress := map[string]any{"done": p.Moved + p.Failed + p.Skipped, "total": p.Total, "wave": p.Wave, "waves": p.Waves,
		"moved": p.Moved, "failed": p.Failed, "skipped": p.Skipped, "pending": p.Pending, "status": string(p.Status)}
	switch p.Status {
	case domain.StackMoveSucceeded:
		return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationSucceeded, "", progress)
	case domain.StackMoveFailed:
		return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationFailed, p.Reason, progress)
	}
	return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationRunning, "", progress)
}
