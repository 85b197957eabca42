package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type pipelineRequest struct {
	Name *string `json:"name,omitempty"`
}

// targetRequest names one target; exactly one field is set.
type targetRequest struct {
	InstanceID    string `json:"instanceId,omitempty"`
	DeviceID      string `json:"deviceId,omitempty"`
	DeviceGroupID string `json:"deviceGroupId,omitempty"`
}

// stageRequest adds or edits a stage. A stage has one target (target) or several (targets); on PATCH every
// field left out keeps its value, and position moves the stage (0 is first).
type stageRequest struct {
	Name               *string          `json:"name,omitempty"`
	Target             *targetRequest   `json:"target,omitempty"`
	Targets            *[]targetRequest `json:"targets,omitempty"`
	Action             *string          `json:"action,omitempty"`
	DeployToDevices    *bool            `json:"deployToDevices,omitempty"`
	RequiresApproval   *bool            `json:"requiresApproval,omitempty"`
	ApproverRole       *string          `json:"approverRole,omitempty"`
	ForbidSelfApproval *bool            `json:"forbidSelfApproval,omitempty"`
	Protected          *bool            `json:"protected,omitempty"`
	Position           *int             `json:"position,omitempty"`
}

type pipelineJSON struct {
	ID            string      `json:"id"`
	ApplicationID string      `json:"applicationId"`
	Name          string      `json:"name"`
	Stages        []stageJSON `json:"stages"`
	CreatedAt     time.Time   `json:"createdAt"`
	UpdatedAt     time.Time   `json:"updatedAt"`
}

type stageJSON struct {
	ID                 string               `json:"id"`
	Name               string               `json:"name"`
	Position           int                  `json:"position"`
	Action             string               `json:"action"`
	Targets            []domain.StageTarget `json:"targets"`
	DeployToDevices    bool                 `json:"deployToDevices"`
	RequiresApproval   bool                 `json:"requiresApproval"`
	ApproverRole       string               `json:"approverRole"`
	ForbidSelfApproval bool                 `json:"forbidSelfApproval"`
	Protected          bool                 `json:"protected"`
	Current            *stageHistoryJSON    `json:"current"`
}

// stageHistoryJSON says what a stage runs: the snapshot of the last promotion into it, who promoted it, when,
// and from which stage.
type stageHistoryJSON struct {
	SnapshotID  string     `json:"snapshotId"`
	PromotionID string     `json:"promotionId"`
	PromotedBy  *string    `json:"promotedBy"`
	PromotedAt  *time.Time `json:"promotedAt"`
	FromStageID string     `json:"fromStageId"`
}

func (s *Server) registerPipelines() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/applications/:applicationId/pipelines", Summary: "Create a pipeline.", Tag: "pipelines", Body: pipelineRequest{}, Status: 201}, s.createPipeline)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/applications/:applicationId/pipelines", Summary: "The application's pipelines.", Tag: "pipelines"}, s.listPipelines)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/pipelines/:pipelineId", Summary: "One pipeline with its stages and what each runs.", Tag: "pipelines"}, s.getPipeline)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/pipelines/:pipelineId", Summary: "Rename a pipeline.", Tag: "pipelines", Body: pipelineRequest{}}, s.renamePipeline)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/pipelines/:pipelineId", Summary: "Delete a pipeline; its targets keep what they run.", Tag: "pipelines", Status: 204}, s.deletePipeline)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/pipelines/:pipelineId/stages", Summary: "Append a stage (or insert it at position).", Tag: "pipelines", Body: stageRequest{}, Status: 201}, s.addStage)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/pipelines/:pipelineId/stages/:stageId", Summary: "Edit or move a stage.", Tag: "pipelines", Body: stageRequest{}}, s.editStage)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/pipelines/:pipelineId/stages/:stageId", Summary: "Remove a stage.", Tag: "pipelines", Status: 204}, s.removeStage)
	s.registerPromotions()
}

func (s *Server) createPipeline(c *fiber.Ctx) error {
	who, app, err := s.applicationFor(c, domain.ActionPipelineCreate)
	if err != nil {
		return err
	}
	var req pipelineRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return domain.InvalidField("name", "required")
	}
	if err := domain.Collect(domain.ValidateName("name", *req.Name)); err != nil {
		return err
	}
	p := &storage.Pipeline{ID: domain.NewID(), ApplicationID: app.ID, TeamID: app.TeamID, Name: *req.Name}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertPipeline(ctx, p); err != nil {
			return err
		}
		return audit(c, tx, who, p.TeamID, "application.pipeline.created", "pipeline", p.ID, map[string]any{"name": p.Name})
	})
	if err != nil {
		return err
	}
	return created(c, pipelineJSON{ID: p.ID, ApplicationID: p.ApplicationID, Name: p.Name, Stages: []stageJSON{}, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
}

func (s *Server) listPipelines(c *fiber.Ctx) error {
	_, app, err := s.applicationFor(c, domain.ActionPipelineRead)
	if err != nil {
		return err
	}
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListPipelines(c.UserContext(), app.ID, pg)
	if err != nil {
		return err
	}
	views := make([]pipelineJSON, 0, len(rows))
	for i := range rows {
		v, err := s.pipelineView(c.UserContext(), &rows[i])
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	return c.JSON(fiber.Map{"items": views, "next": next})
}

// pipelineFor loads the pipeline in the path after checking the caller's access to its team.
func (s *Server) pipelineFor(c *fiber.Ctx, action domain.Action) (*caller, domain.Role, *storage.Pipeline, error) {
	p, err := s.store.GetPipeline(c.UserContext(), c.Params("pipelineId"))
	if err != nil {
		return nil, domain.RoleNone, nil, err
	}
	who, role, err := s.teamAccess(c, p.TeamID, action, "pipeline")
	return who, role, p, err
}

func (s *Server) pipelineView(ctx context.Context, p *storage.Pipeline) (pipelineJSON, error) {
	stages, err := s.store.ListStages(ctx, p.ID)
	if err != nil {
		return pipelineJSON{}, err
	}
	v := pipelineJSON{ID: p.ID, ApplicationID: p.ApplicationID, Name: p.Name, Stages: make([]stageJSON, 0, len(stages)), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	for i := range stages {
		sv, err := s.stageView(ctx, &stages[i])
		if err != nil {
			return v, err
		}
		v.Stages = append(v.Stages, sv)
	}
	return v, nil
}

func (s *Server) stageView(ctx context.Context, st *storage.PipelineStage) (stageJSON, error) {
	v := stageJSON{ID: st.ID, Name: st.Name, Position: st.Position, Action: st.Action, Targets: st.Targets, DeployToDevices: st.DeployToDevices,
		RequiresApproval: st.RequiresApproval, ApproverRole: st.ApproverRole, ForbidSelfApproval: st.ForbidSelfApproval, Protected: st.Protected}
	last, err := s.store.LastPromotionInto(ctx, st.ID)
	switch {
	case domain.IsKind(err, domain.KindNotFound):
		return v, nil
	case err != nil:
		return v, err
	}
	h := &stageHistoryJSON{PromotionID: last.ID, PromotedBy: last.RequestedBy, PromotedAt: last.FinishedAt, FromStageID: last.SourceStageID}
	if last.SnapshotID != nil {
		h.SnapshotID = *last.SnapshotID
	}
	v.Current = h
	return v, nil
}

func (s *Server) getPipeline(c *fiber.Ctx) error {
	_, _, p, err := s.pipelineFor(c, domain.ActionPipelineRead)
	if err != nil {
		return err
	}
	v, err := s.pipelineView(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) renamePipeline(c *fiber.Ctx) error {
	who, _, p, err := s.pipelineFor(c, domain.ActionPipelineEdit)
	if err != nil {
		return err
	}
	var req pipelineRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Name != nil {
		if err := domain.Collect(domain.ValidateName("name", *req.Name)); err != nil {
			return err
		}
		p.Name = *req.Name
		err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
			if err := tx.RenamePipeline(ctx, p); err != nil {
				return err
			}
			return audit(c, tx, who, p.TeamID, "application.pipeline.updated", "pipeline", p.ID, map[string]any{"name": p.Name})
		})
		if err != nil {
			return err
		}
	}
	v, err := s.pipelineView(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) deletePipeline(c *fiber.Ctx) error {
	who, _, p, err := s.pipelineFor(c, domain.ActionPipelineDelete)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		n, err := tx.CountActivePromotions(ctx, p.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return domain.Conflict("promotion_active", "The pipeline has promotions scheduled, awaiting approval or running; cancel them or let them finish first.")
		}
		if err := tx.DeletePipeline(ctx, p.ID); err != nil {
			return err
		}
		return audit(c, tx, who, p.TeamID, "application.pipeline.deleted", "pipeline", p.ID, map[string]any{"name": p.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) addStage(c *fiber.Ctx) error {
	var req stageRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	st := storage.PipelineStage{ID: domain.NewID(), Action: domain.StageCreateSnapshot, ApproverRole: domain.RoleOwner.String()}
	if req.Name == nil {
		return domain.InvalidField("name", "required")
	}
	if req.Target == nil && req.Targets == nil {
		return domain.InvalidField("target", "required: instanceId, deviceId or deviceGroupId")
	}
	return s.changeStages(c, "application.pipeline.stage-added", func(stages []storage.PipelineStage) ([]storage.PipelineStage, *storage.PipelineStage, error) {
		if err := applyStageRequest(&st, req); err != nil {
			return nil, nil, err
		}
		pos := len(stages)
		if req.Position != nil && *req.Position >= 0 && *req.Position < pos {
			pos = *req.Position
		}
		out := append(append(append([]storage.PipelineStage{}, stages[:pos]...), st), stages[pos:]...)
		return out, &out[pos], nil
	}, fiber.StatusCreated)
}

func (s *Server) editStage(c *fiber.Ctx) error {
	var req stageRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return s.changeStages(c, "application.pipeline.stage-updated", func(stages []storage.PipelineStage) ([]storage.PipelineStage, *storage.PipelineStage, error) {
		i, err := stageIndex(stages, c.Params("stageId"))
		if err != nil {
			return nil, nil, err
		}
		st := stages[i]
		if err := applyStageRequest(&st, req); err != nil {
			return nil, nil, err
		}
		rest := append(append([]storage.PipelineStage{}, stages[:i]...), stages[i+1:]...)
		pos := i
		if req.Position != nil {
			pos = min(max(*req.Position, 0), len(rest))
		}
		out := append(append(append([]storage.PipelineStage{}, rest[:pos]...), st), rest[pos:]...)
		return out, &out[pos], nil
	}, fiber.StatusOK)
}

func (s *Server) removeStage(c *fiber.Ctx) error {
	return s.changeStages(c, "application.pipeline.stage-deleted", func(stages []storage.PipelineStage) ([]storage.PipelineStage, *storage.PipelineStage, error) {
		i, err := stageIndex(stages, c.Params("stageId"))
		if err != nil {
			return nil, nil, err
		}
		removed := stages[i]
		return append(append([]storage.PipelineStage{}, stages[:i]...), stages[i+1:]...), &removed, nil
	}, fiber.StatusNoContent)
}

func stageIndex(stages []storage.PipelineStage, id string) (int, error) {
	for i := range stages {
		if stages[i].ID == id {
			return i, nil
		}
	}
	return 0, domain.NotFound("stage")
}

// changeStages is the one path every stage change takes: the pipeline as it would be afterwards is checked as
// a whole (ValidatePipeline, then every target in the pipeline's application) and written in one transaction.
func (s *Server) changeStages(c *fiber.Ctx, event string, change func([]storage.PipelineStage) ([]storage.PipelineStage, *storage.PipelineStage, error), status int) error {
	who, _, p, err := s.pipelineFor(c, domain.ActionPipelineEdit)
	if err != nil {
		return err
	}
	var changed *storage.PipelineStage
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		stages, err := tx.ListStages(ctx, p.ID)
		if err != nil {
			return err
		}
		var next []storage.PipelineStage
		if next, changed, err = change(stages); err != nil {
			return err
		}
		if err := validateStages(ctx, tx, p, stages, next); err != nil {
			return err
		}
		if err := tx.ReplaceStages(ctx, p.ID, next); err != nil {
			return err
		}
		return audit(c, tx, who, p.TeamID, event, "pipeline", p.ID, map[string]any{"stage": changed.ID, "name": changed.Name})
	})
	if err != nil {
		return err
	}
	if status == fiber.StatusNoContent {
		return noContent(c)
	}
	st, err := s.store.ListStages(c.UserContext(), p.ID)
	if err != nil {
		return err
	}
	i, err := stageIndex(st, changed.ID)
	if err != nil {
		return err
	}
	v, err := s.stageView(c.UserContext(), &st[i])
	if err != nil {
		return err
	}
	return c.Status(status).JSON(v)
}

// applyStageRequest writes the request's fields into a stage; malformed fields answer 400.
func applyStageRequest(st *storage.PipelineStage, req stageRequest) error {
	var errs []domain.FieldError
	if req.Name != nil {
		st.Name = *req.Name
	}
	if req.Action != nil {
		st.Action = *req.Action
	}
	if req.Target != nil {
		req.Targets = &[]targetRequest{*req.Target}
	}
	if req.Targets != nil {
		st.Targets = make([]domain.StageTarget, 0, len(*req.Targets))
		for _, t := range *req.Targets {
			target, ok := t.target()
			if !ok {
				errs = append(errs, domain.FieldError{Field: "target", Detail: "exactly one of instanceId, deviceId, deviceGroupId"})
				continue
			}
			st.Targets = append(st.Targets, target)
		}
	}
	setBool(&st.DeployToDevices, req.DeployToDevices)
	setBool(&st.RequiresApproval, req.RequiresApproval)
	setBool(&st.ForbidSelfApproval, req.ForbidSelfApproval)
	setBool(&st.Protected, req.Protected)
	if req.ApproverRole != nil {
		r, err := domain.ParseRole(*req.ApproverRole)
		if err != nil || r < domain.RoleMember {
			errs = append(errs, domain.FieldError{Field: "approverRole", Detail: "owner or member"})
		} else {
			st.ApproverRole = r.String()
		}
	}
	if len(errs) > 0 {
		return domain.Invalid(errs...)
	}
	return nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func (t targetRequest) target() (domain.StageTarget, bool) {
	var out []domain.StageTarget
	for kind, id := range map[string]string{domain.TargetInstance: t.InstanceID, domain.TargetDevice: t.DeviceID, domain.TargetDeviceGroup: t.DeviceGroupID} {
		if id != "" {
			out = append(out, domain.StageTarget{Kind: kind, ID: id})
		}
	}
	if len(out) != 1 {
		return domain.StageTarget{}, false
	}
	return out[0], true
}

// validateStages runs the shared validator on the whole pipeline, then checks that every target new to it
// exists in the pipeline's application. Targets it had already were checked when they were added; one deleted
// since must not block editing the rest (its promotion fails with the reason instead).
func validateStages(ctx context.Context, tx *storage.Store, p *storage.Pipeline, before, stages []storage.PipelineStage) error {
	known := map[domain.StageTarget]bool{}
	for i := range before {
		for _, t := range before[i].Targets {
			known[t] = true
		}
	}
	specs := make([]domain.StageSpec, 0, len(stages))
	for i := range stages {
		specs = append(specs, stages[i].Spec())
	}
	if err := domain.ValidatePipeline(specs); err != nil {
		return err
	}
	for i := range stages {
		for _, t := range stages[i].Targets {
			if known[t] {
				continue
			}
			app, err := targetApplication(ctx, tx, t)
			if err != nil && !domain.IsKind(err, domain.KindNotFound) {
				return err
			}
			if err != nil || app != p.ApplicationID {
				return domain.Unprocessable("target_other_application", "Every target of a pipeline must be in the pipeline's application.",
					domain.FieldError{Field: "target", Detail: t.Kind + " " + t.ID + " is not in this application"})
			}
		}
	}
	return nil
}

// targetApplication returns the application a stage target belongs to ("" for a device outside any).
func targetApplication(ctx context.Context, st *storage.Store, t domain.StageTarget) (string, error) {
	switch t.Kind {
	case domain.TargetInstance:
		in, err := st.GetInstance(ctx, t.ID)
		if err != nil {
			return "", err
		}
		return in.ApplicationID, nil
	case domain.TargetDevice:
		d, err := st.GetDevice(ctx, t.ID)
		if err != nil || d.ApplicationID == nil {
			return "", err
		}
		return *d.ApplicationID, nil
	case domain.TargetDeviceGroup:
		g, err := st.GetDeviceGroup(ctx, t.ID)
		if err != nil {
			return "", err
		}
		return g.ApplicationID, nil
	}
	return "", domain.NotFound("target")
}
