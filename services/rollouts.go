package services

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// RolloutRunner starts rollouts and passes operator actions to them; the workflow facade (rollout.Client)
// implements it.
type RolloutRunner interface {
	Start(ctx context.Context, p rollout.Params) (string, error)
	Act(ctx context.Context, rolloutID, action, by string) (rollout.Progress, error)
}

// Rollouts records rollouts of a snapshot to a device group: those an operator starts (Start) and those a
// promotion's workflow starts as its child (RecordForPromotion).
type Rollouts struct {
	Operations *Operations
	Runner     RolloutRunner // nil: Start and Act fail with ErrNoEngine
}

// Start records a rollout of r.SnapshotID to r.GroupID, asked for by a user: check (the caller's checks of the
// references it names) runs in the recording transaction, which writes the rollout row, its operation and the
// audit entry; then it starts the rollout workflow. When the engine refuses, the rollout and its operation are
// marked failed, so the group is free for the next one.
func (s *Rollouts) Start(ctx context.Context, by string, r *storage.Rollout, strategy rollout.Strategy,
	check func(ctx context.Context, tx *storage.Store) error) (*storage.Operation, error) {
	r.Status = domain.RolloutRunning
	op := NewOperation("rollout", "rollout", r.ID, r.TeamID, rollout.WorkflowID(r.ID), by)
	r.OperationID, r.CreatedBy = &op.ID, op.CreatedBy
	err := s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := check(ctx, tx); err != nil {
			return err
		}
		if err := record(ctx, tx, r); err != nil {
			return err
		}
		if err := s.Operations.Record(ctx, tx, op); err != nil {
			return err
		}
		return Audit(ctx, tx, by, r.TeamID, "application.device-group.rollout-started", "device-group", r.GroupID,
			map[string]any{"rollout": r.ID, "snapshot": r.SnapshotID})
	})
	if err != nil {
		return nil, err
	}
	if s.Runner == nil {
		return op, s.fail(ctx, r, op, ErrNoEngine())
	}
	runID, err := s.Runner.Start(ctx, rollout.Params{RolloutID: r.ID, GroupID: r.GroupID, TeamID: r.TeamID, SnapshotID: r.SnapshotID,
		OperationID: op.ID, Strategy: strategy})
	if err != nil {
		return op, s.fail(ctx, r, op, err)
	}
	op.RunID = runID
	return op, nil
}

// fail ends a rollout the engine would not start, so the group is free for the next one.
func (s *Rollouts) fail(ctx context.Context, r *storage.Rollout, op *storage.Operation, cause error) error {
	r.Status, r.Reason = domain.RolloutFailed, cause.Error()
	if err := s.Operations.Store.SaveRolloutProgress(ctx, r); err != nil {
		s.Operations.log().Error("mark rollout failed", "rollout", r.ID, "err", err)
	}
	return s.Operations.Fail(ctx, op, cause)
}

// Act passes an operator's action (pause, resume, abort, approve) to a running rollout and records it in the
// audit log.
func (s *Rollouts) Act(ctx context.Context, by string, r *storage.Rollout, action string) error {
	if s.Runner == nil {
		return ErrNoEngine()
	}
	if _, err := s.Runner.Act(ctx, r.ID, action, by); err != nil {
		return err
	}
	return Audit(ctx, s.Operations.Store, by, r.TeamID, "application.device-group.rollout-"+action, "rollout", r.ID, nil)
}

// RecordForPromotion records the rollout a promotion's workflow starts (its ID, group, snapshot, strategy, waves,
// operation ID and creator set by the caller) and its operation, once: a retry finds the rollout recorded and
// fills r's team from it. The operation counts against no limit and has no audit entry of its own: the
// promotion that starts it has both.
func (s *Rollouts) RecordForPromotion(ctx context.Context, r *storage.Rollout) error {
	if got, err := s.Operations.Store.GetRollout(ctx, r.ID); err == nil {
		r.TeamID = got.TeamID
		return nil
	}
	r.Status = domain.RolloutRunning
	return s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := record(ctx, tx, r); err != nil {
			return err
		}
		key := promotionTargetKey(*r.OperationID)
		op := NewOperation("rollout", "rollout", r.ID, r.TeamID, rollout.WorkflowID(r.ID), "")
		op.ID, op.RequestKey, op.CreatedBy = *r.OperationID, &key, r.CreatedBy
		_, _, err := tx.InsertOperation(ctx, op)
		return err
	})
}

// promotionTargetKey is the request key of the operation of a promotion's part in one target, so that a retried
// activity records it once (activities.Pipelines.RecordTargetOperation keys an instance's part the same way).
func promotionTargetKey(operationID string) string { return "promotion-target/" + operationID }

// record fills what the rollout takes from its group as tx sees it (a group without devices refuses) and inserts
// the row (a group with a rollout running refuses).
func record(ctx context.Context, tx *storage.Store, r *storage.Rollout) error {
	if _, err := tx.RolloutOfGroup(ctx, r); err != nil {
		return err
	}
	return tx.InsertRollout(ctx, r)
}
