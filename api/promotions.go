package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/pipeline"
)

// PipelineRunner starts promotions and passes approve, reject and cancel to them; the workflow facade
// implements it.
type PipelineRunner = services.PromotionRunner

type promoteRequest struct {
	SnapshotID string  `json:"snapshotId,omitempty"`
	At         *string `json:"at,omitempty"` // RFC 3339; the promotion runs then
}

type promotionJSON struct {
	ID            string                    `json:"id"`
	PipelineID    string                    `json:"pipelineId"`
	SourceStageID string                    `json:"sourceStageId"`
	TargetStageID string                    `json:"targetStageId"`
	SnapshotID    *string                   `json:"snapshotId"`
	Status        domain.PromotionStatus    `json:"status"`
	RequestedBy   *string                   `json:"requestedBy"`
	DecidedBy     *string                   `json:"decidedBy"`
	ScheduledAt   *time.Time                `json:"scheduledAt"`
	Results       []storage.PromotionResult `json:"results"`
	Reason        string                    `json:"reason,omitempty"`
	OperationID   *string                   `json:"operationId"`
	CreatedAt     time.Time                 `json:"createdAt"`
	FinishedAt    *time.Time                `json:"finishedAt"`
}

func promotionView(p *storage.Promotion) promotionJSON {
	return promotionJSON{ID: p.ID, PipelineID: p.PipelineID, SourceStageID: p.SourceStageID, TargetStageID: p.TargetStageID, SnapshotID: p.SnapshotID,
		Status: p.Status, RequestedBy: p.RequestedBy, DecidedBy: p.DecidedBy, ScheduledAt: p.ScheduledAt, Results: p.Results, Reason: p.Reason,
		OperationID: p.OperationID, CreatedAt: p.CreatedAt, FinishedAt: p.FinishedAt}
}

func (s *Server) registerPromotions() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/pipelines/:pipelineId/stages/:stageId/promote", Summary: "Promote the stage's snapshot into the next stage, now or at a time (202).", Tag: "pipelines", Body: promoteRequest{}, Status: 202}, s.promote)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/pipelines/:pipelineId/promotions", Summary: "The pipeline's promotions, oldest first.", Tag: "pipelines"}, s.listPromotions)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/promotions/:promotionId", Summary: "One promotion with each target's result.", Tag: "pipelines"}, s.getPromotion)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/promotions/:promotionId/:action", Summary: "approve, reject or cancel a promotion (403 for a caller who may not; 409 when not allowed now).", Tag: "pipelines"}, s.decidePromotion)
}

func (s *Server) promote(c *fiber.Ctx) error {
	who, role, p, err := s.pipelineFor(c, domain.ActionPipelinePromote)
	if err != nil {
		return err
	}
	var req promoteRequest
	if len(c.Body()) > 0 { // every field is optional, so is the body
		if err := s.decode(c, &req); err != nil {
			return err
		}
	}
	at, err := parseAt(req.At)
	if err != nil {
		return err
	}
	pr, op, err := s.svc.promotions.Promote(c.UserContext(), services.Promotion{Pipeline: p, By: who.user.ID, SnapshotID: req.SnapshotID, At: at,
		Stages: func(ctx context.Context, tx *storage.Store) (source, target *storage.PipelineStage, err error) {
			return promotionStagesFor(ctx, tx, who, role, p, c.Params("stageId"), req.SnapshotID)
		}})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/operations/"+op.ID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"promotion": promotionView(pr), "operation": s.operationView(op)})
}

// promotionStagesFor checks a promotion from the stage in the path against the pipeline as the recording
// transaction sees it (the next stage, its protection, the snapshot named).
func promotionStagesFor(ctx context.Context, tx *storage.Store, who *caller, role domain.Role, p *storage.Pipeline, stageID, snapshotID string) (
	source, next *storage.PipelineStage, err error) {
	source, next, err = promotionStages(ctx, tx, p, stageID)
	if err != nil {
		return nil, nil, err
	}
	if next.Protected && role < domain.RoleOwner && !who.user.Admin {
		return nil, nil, domain.Forbidden()
	}
	if err := checkPromotionSnapshot(ctx, tx, p, source, snapshotID); err != nil {
		return nil, nil, err
	}
	return source, next, nil
}

// promotionStages returns the stage named in the path and the next one, which a promotion moves its snapshot into.
func promotionStages(ctx context.Context, tx *storage.Store, p *storage.Pipeline, stageID string) (source, target *storage.PipelineStage, err error) {
	stages, err := tx.ListStages(ctx, p.ID)
	if err != nil {
		return nil, nil, err
	}
	i, err := stageIndex(stages, stageID)
	if err != nil {
		return nil, nil, err
	}
	if i == len(stages)-1 {
		return nil, nil, domain.Conflict("no_next_stage", "This is the pipeline's last stage; there is no stage to promote into.")
	}
	return &stages[i], &stages[i+1], nil
}

func parseAt(v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return time.Time{}, domain.InvalidField("at", "an RFC 3339 time, e.g. 2026-11-28T02:00:00Z")
	}
	if !at.After(time.Now()) {
		return time.Time{}, nil // a time already past means now
	}
	return at.UTC(), nil
}

// checkPromotionSnapshot checks a named snapshot (it must be of the pipeline's application), and that a
// prompt stage got one. The other actions resolve their snapshot when the promotion runs.
func checkPromotionSnapshot(ctx context.Context, st *storage.Store, p *storage.Pipeline, source *storage.PipelineStage, snapshotID string) error {
	if snapshotID == "" {
		if source.Action == domain.StagePrompt || len(source.Targets) > 1 && source.Spec().KindOf() != domain.TargetDeviceGroup {
			return domain.Unprocessable("snapshot_required", "Name the snapshot to promote: this stage prompts for it or has several targets.",
				domain.FieldError{Field: "snapshotId", Detail: "required"})
		}
		return nil
	}
	_, err := applicationSnapshot(ctx, st, "snapshotId", p.ApplicationID, snapshotID)
	return err
}

func (s *Server) listPromotions(c *fiber.Ctx) error {
	_, _, p, err := s.pipelineFor(c, domain.ActionPipelineRead)
	if err != nil {
		return err
	}
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListPromotions(c.UserContext(), p.ID, pg)
	if err != nil {
		return err
	}
	return list(c, rows, next, promotionView)
}

// promotionFor loads the promotion in the path after checking the caller's access to its team.
func (s *Server) promotionFor(c *fiber.Ctx, action domain.Action) (*caller, domain.Role, *storage.Promotion, error) {
	pr, err := s.store.GetPromotion(c.UserContext(), c.Params("promotionId"))
	if err != nil {
		return nil, domain.RoleNone, nil, err
	}
	who, role, err := s.teamAccess(c, pr.TeamID, action, "promotion")
	return who, role, pr, err
}

func (s *Server) getPromotion(c *fiber.Ctx) error {
	_, _, pr, err := s.promotionFor(c, domain.ActionPipelineRead)
	if err != nil {
		return err
	}
	return c.JSON(promotionView(pr))
}

func (s *Server) decidePromotion(c *fiber.Ctx) error {
	action := c.Params("action")
	if action != pipeline.UpdateApprove && action != pipeline.UpdateReject && action != pipeline.UpdateCancel {
		return domain.NotFound("action")
	}
	who, role, pr, err := s.promotionFor(c, domain.ActionPipelinePromote)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	d := pipeline.Decision{UserID: who.user.ID, Role: role.String()}
	if who.user.Admin {
		d.Role = domain.RoleOwner.String()
	}
	if action != pipeline.UpdateCancel {
		if err := s.mayDecide(ctx, pr, d); err != nil {
			return err
		}
	}
	if err := s.svc.promotions.Decide(ctx, pr, action, d); err != nil {
		return err
	}
	if pr, err = s.store.GetPromotion(ctx, pr.ID); err != nil {
		return err
	}
	return c.JSON(promotionView(pr))
}

// mayDecide applies the target stage's approval rule (the workflow's own rule, pipeline.MayDecide): a caller
// without the approver role, or the requester where the stage forbids it, gets 403.
func (s *Server) mayDecide(ctx context.Context, pr *storage.Promotion, d pipeline.Decision) error {
	stages, err := s.store.ListStages(ctx, pr.PipelineID)
	if err != nil {
		return err
	}
	i, err := stageIndex(stages, pr.TargetStageID)
	if err != nil {
		return domain.Conflict("stage_gone", "The stage this promotion goes into was removed.")
	}
	st := stages[i]
	requester := ""
	if pr.RequestedBy != nil {
		requester = *pr.RequestedBy
	}
	rule := pipeline.Params{ApproverRole: st.ApproverRole, ForbidSelfApproval: st.ForbidSelfApproval, RequestedBy: requester}
	if pipeline.MayDecide(rule, d) != nil {
		return &domain.Error{Kind: domain.KindForbidden, Code: "approval_forbidden",
			Message: "You may not decide on this promotion: it needs the " + st.ApproverRole + " role, and the stage may forbid deciding on your own promotion."}
	}
	return nil
}
