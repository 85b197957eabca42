package services

import (
	"context"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/pipeline"
)

// PromotionRunner starts promotions and passes approve, reject and cancel to them; the workflow facade
// (pipeline.Client) implements it.
type PromotionRunner interface {
	Start(ctx context.Context, p pipeline.Params) (string, error)
	Decide(ctx context.Context, promotionID, action string, d pipeline.Decision) (pipeline.Progress, error)
}

// Promotions records promotions of a pipeline stage's snapshot into the next stage and passes decisions to them.
type Promotions struct {
	Operations *Operations
	Runner     PromotionRunner // nil: every flow fails with ErrNoEngine
}

// Promotion asks to promote from a stage of a pipeline.
type Promotion struct {
	Pipeline   *storage.Pipeline
	By         string    // the user who asks
	SnapshotID string    // "" lets the source stage's action choose when the promotion runs
	At         time.Time // zero: now
	// Stages checks the request against the pipeline as the recording transaction sees it (the next stage, its
	// protection, the snapshot named) and returns the stage promoted from and the one promoted into.
	Stages func(ctx context.Context, tx *storage.Store) (source, target *storage.PipelineStage, err error)
}

// Promote records the promotion, its operation and the audit entry in one transaction and starts its workflow.
// When the engine refuses, the promotion and its operation are marked failed.
func (s *Promotions) Promote(ctx context.Context, req Promotion) (*storage.Promotion, *storage.Operation, error) {
	p := req.Pipeline
	var pr *storage.Promotion
	var op *storage.Operation
	var target *storage.PipelineStage
	err := s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		source, next, err := req.Stages(ctx, tx)
		if err != nil {
			return err
		}
		target = next
		pr = &storage.Promotion{ID: domain.NewID(), PipelineID: p.ID, TeamID: p.TeamID, SourceStageID: source.ID, TargetStageID: next.ID,
			Status: initialStatus(next, req.At), RequestedBy: &req.By}
		if !req.At.IsZero() {
			pr.ScheduledAt = &req.At
		}
		if req.SnapshotID != "" {
			pr.SnapshotID = &req.SnapshotID
		}
		op = NewOperation("promotion", "promotion", pr.ID, p.TeamID, pipeline.WorkflowID(pr.ID), req.By)
		pr.OperationID = &op.ID
		if err := tx.InsertPromotion(ctx, pr); err != nil {
			return err
		}
		if err := s.Operations.Record(ctx, tx, op); err != nil {
			return err
		}
		return Audit(ctx, tx, req.By, p.TeamID, "application.pipeline.stage-promoted", "pipeline", p.ID,
			map[string]any{"promotion": pr.ID, "from": source.ID, "to": next.ID, "at": pr.ScheduledAt})
	})
	if err != nil {
		return nil, nil, err
	}
	if s.Runner == nil {
		return pr, op, s.fail(ctx, pr, op, ErrNoEngine())
	}
	runID, err := s.Runner.Start(ctx, pipeline.Params{PromotionID: pr.ID, PipelineID: p.ID, TeamID: p.TeamID, OperationID: op.ID,
		RequestedBy: req.By, SnapshotID: req.SnapshotID, At: req.At, RequiresApproval: target.RequiresApproval,
		ApproverRole: target.ApproverRole, ForbidSelfApproval: target.ForbidSelfApproval})
	if err != nil {
		return pr, op, s.fail(ctx, pr, op, err)
	}
	op.RunID = runID
	return pr, op, nil
}

func initialStatus(target *storage.PipelineStage, at time.Time) domain.PromotionStatus {
	switch {
	case target.RequiresApproval:
		return domain.PromotionAwaitingApproval
	case !at.IsZero():
		return domain.PromotionScheduled
	}
	return domain.PromotionRunning
}

// fail records that the workflow could not be started, and returns cause.
func (s *Promotions) fail(ctx context.Context, pr *storage.Promotion, op *storage.Operation, cause error) error {
	pr.Status, pr.Reason = domain.PromotionFailed, "the workflow engine did not accept the promotion"
	_ = s.Operations.Store.UpdatePromotion(ctx, pr)
	op.Status, op.Error = domain.OperationFailed, pr.Reason
	_, _ = s.Operations.Store.UpdateOperation(ctx, op, domain.OperationPending)
	return cause
}

// Decide passes an approve, reject or cancel to a promotion's workflow and records it in the audit log (the
// caller has checked that d may decide).
func (s *Promotions) Decide(ctx context.Context, pr *storage.Promotion, action string, d pipeline.Decision) error {
	if s.Runner == nil {
		return ErrNoEngine()
	}
	if _, err := s.Runner.Decide(ctx, pr.ID, action, d); err != nil {
		return err
	}
	return s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		return Audit(ctx, tx, d.UserID, pr.TeamID, "application.pipeline.promotion-"+action, "pipeline", pr.PipelineID, map[string]any{"promotion": pr.ID})
	})
}
