package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Pipeline is an application's ordered list of stages.
type Pipeline struct {
	bun.BaseModel `bun:"table:pipelines,alias:pl"`
	ID            string `bun:",pk"`
	ApplicationID string
	TeamID        string
	Name          string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// PipelineStage is one stage: its targets, the action that obtains the snapshot it promotes onwards, and the
// gates promotions into it pass.
type PipelineStage struct {
	bun.BaseModel      `bun:"table:pipeline_stages,alias:ps"`
	ID                 string `bun:",pk"`
	PipelineID         string
	Position           int
	Name               string
	Action             string
	Targets            []domain.StageTarget `bun:",type:text"`
	DeployToDevices    bool
	RequiresApproval   bool
	ApproverRole       string
	ForbidSelfApproval bool
	Protected          bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Spec is the stage as the pipeline validator sees it.
func (s *PipelineStage) Spec() domain.StageSpec {
	return domain.StageSpec{Name: s.Name, Action: s.Action, Targets: s.Targets}
}

// Promotion moves a snapshot from one stage into the next; its workflow writes status and per-target results.
type Promotion struct {
	bun.BaseModel `bun:"table:promotions,alias:pr"`
	ID            string `bun:",pk"`
	PipelineID    string
	TeamID        string
	SourceStageID string
	TargetStageID string
	SnapshotID    *string
	Status        domain.PromotionStatus
	RequestedBy   *string
	DecidedBy     *string
	ScheduledAt   *time.Time
	Results       []PromotionResult `bun:",type:text"`
	Reason        string
	OperationID   *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
}

// PromotionResult is one target's outcome in a promotion.
type PromotionResult struct {
	Kind   string                       `json:"kind"`
	ID     string                       `json:"id"`
	Status domain.PromotionTargetStatus `json:"status"`
	Detail string                       `json:"detail,omitempty"`
}

// InsertPipeline adds a pipeline; a name taken in the application is a conflict.
func (s *Store) InsertPipeline(ctx context.Context, p *Pipeline) error {
	p.CreatedAt, p.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(p).Exec(ctx)
	return classify(err, "pipeline")
}

// GetPipeline returns one pipeline.
func (s *Store) GetPipeline(ctx context.Context, id string) (*Pipeline, error) {
	p := new(Pipeline)
	err := s.db.NewSelect().Model(p).Where("id = ?", id).Scan(ctx)
	return p, classify(err, "pipeline")
}

// ListPipelines returns a page of an application's pipelines.
func (s *Store) ListPipelines(ctx context.Context, applicationID string, pg Page) ([]Pipeline, string, error) {
	q := s.db.NewSelect().Model((*Pipeline)(nil)).Where("application_id = ?", applicationID)
	return listPage(ctx, q, "id", pg, func(p *Pipeline) string { return p.ID })
}

// RenamePipeline writes a pipeline's name.
func (s *Store) RenamePipeline(ctx context.Context, p *Pipeline) error {
	p.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(p).Column("name", "updated_at").WherePK().Exec(ctx)
	if isUniqueViolation(err) {
		return classify(err, "pipeline")
	}
	return mustAffect(res, err, "pipeline")
}

// CountActivePromotions counts a pipeline's promotions that are scheduled, awaiting approval or running.
func (s *Store) CountActivePromotions(ctx context.Context, pipelineID string) (int, error) {
	return count(s.db.NewSelect().Model((*Promotion)(nil)).Where("pipeline_id = ?", pipelineID).
		Where("status IN (?)", bun.List(domain.ActivePromotionStatuses())).Count(ctx))
}

// DeletePipeline removes a pipeline with its stages and promotion history.
func (s *Store) DeletePipeline(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*Pipeline)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "pipeline")
}

// ListStages returns a pipeline's stages in order.
func (s *Store) ListStages(ctx context.Context, pipelineID string) ([]PipelineStage, error) {
	var out []PipelineStage
	err := s.db.NewSelect().Model(&out).Where("pipeline_id = ?", pipelineID).Order("position", "id").Scan(ctx)
	return out, err
}

// ReplaceStages writes a pipeline's stages as given, in that order: the rows not in the list are deleted,
// the others inserted or updated with their new positions. Run it in a transaction after validating the list.
func (s *Store) ReplaceStages(ctx context.Context, pipelineID string, stages []PipelineStage) error {
	ids := make([]string, 0, len(stages))
	for _, st := range stages {
		ids = append(ids, st.ID)
	}
	del := s.db.NewDelete().Model((*PipelineStage)(nil)).Where("pipeline_id = ?", pipelineID)
	if len(ids) > 0 {
		del = del.Where("id NOT IN (?)", bun.List(ids))
	}
	if _, err := del.Exec(ctx); err != nil {
		return err
	}
	t := now()
	for i := range stages {
		st := &stages[i]
		st.PipelineID, st.Position, st.UpdatedAt = pipelineID, i, t
		if st.CreatedAt.IsZero() {
			st.CreatedAt = t
		}
		if st.Targets == nil {
			st.Targets = []domain.StageTarget{}
		}
		_, err := s.db.NewInsert().Model(st).On("CONFLICT (id) DO UPDATE").
			Set("position = EXCLUDED.position, name = EXCLUDED.name, action = EXCLUDED.action, targets = EXCLUDED.targets").
			Set("deploy_to_devices = EXCLUDED.deploy_to_devices, requires_approval = EXCLUDED.requires_approval").
			Set("approver_role = EXCLUDED.approver_role, forbid_self_approval = EXCLUDED.forbid_self_approval").
			Set("protected = EXCLUDED.protected, updated_at = EXCLUDED.updated_at").Exec(ctx)
		if err != nil {
			return classify(err, "pipeline stage")
		}
	}
	return s.touchPipeline(ctx, pipelineID)
}

func (s *Store) touchPipeline(ctx context.Context, id string) error {
	_, err := s.db.NewUpdate().Model((*Pipeline)(nil)).Set("updated_at = ?", now()).Where("id = ?", id).Exec(ctx)
	return err
}

// InsertPromotion records a promotion before its workflow starts.
func (s *Store) InsertPromotion(ctx context.Context, p *Promotion) error {
	p.CreatedAt, p.UpdatedAt = now(), now()
	if p.Results == nil {
		p.Results = []PromotionResult{}
	}
	_, err := s.db.NewInsert().Model(p).Exec(ctx)
	return classify(err, "promotion")
}

// GetPromotion returns one promotion.
func (s *Store) GetPromotion(ctx context.Context, id string) (*Promotion, error) {
	p := new(Promotion)
	err := s.db.NewSelect().Model(p).Where("id = ?", id).Scan(ctx)
	return p, classify(err, "promotion")
}

// ListPromotions returns a page of a pipeline's promotions, oldest first.
func (s *Store) ListPromotions(ctx context.Context, pipelineID string, pg Page) ([]Promotion, string, error) {
	q := s.db.NewSelect().Model((*Promotion)(nil)).Where("pipeline_id = ?", pipelineID)
	return listPage(ctx, q, "id", pg, func(p *Promotion) string { return p.ID })
}

// UpdatePromotion writes a promotion's progress; a finished promotion is never changed again, so a retried
// activity cannot move it back.
func (s *Store) UpdatePromotion(ctx context.Context, p *Promotion) error {
	p.UpdatedAt = now()
	if p.Status.Terminal() {
		t := p.UpdatedAt
		p.FinishedAt = &t
	}
	_, err := s.db.NewUpdate().Model(p).Column("snapshot_id", "status", "decided_by", "results", "reason", "updated_at", "finished_at").
		WherePK().Where("status IN (?)", bun.List(domain.ActivePromotionStatuses())).Exec(ctx)
	return err
}

// LastPromotionInto returns the newest succeeded promotion into a stage: what the stage runs, who put it
// there, when and from where. A stage nothing was promoted into yet answers not found.
func (s *Store) LastPromotionInto(ctx context.Context, stageID string) (*Promotion, error) {
	p := new(Promotion)
	err := s.db.NewSelect().Model(p).Where("target_stage_id = ? AND status = ?", stageID, domain.PromotionSucceeded).
		Order("finished_at DESC", "id DESC").Limit(1).Scan(ctx)
	return p, classify(err, "promotion")
}

// LatestSnapshotOf returns the newest snapshot of an instance or device that a user or a promotion took.
// Automatic snapshots are left out: the one a promotion takes before it writes holds what the instance ran
// before, not what it runs.
func (s *Store) LatestSnapshotOf(ctx context.Context, kind, ownerID string) (*Snapshot, error) {
	snap := new(Snapshot)
	q := s.db.NewSelect().Model(snap).ExcludeColumn(snapshotHeavyColumns...)
	if kind == domain.TargetDevice {
		q = q.Where("id IN (SELECT snapshot_id FROM device_snapshots WHERE device_id = ?)", ownerID)
	} else {
		q = q.Where("instance_id = ?", ownerID)
	}
	err := q.Where("auto = ?", false).Order("created_at DESC", "id DESC").Limit(1).Scan(ctx)
	return snap, classify(err, "snapshot")
}

// SetInstanceDeviceTarget makes snapshotID (a snapshot of the instance, or nil) the instance's device target.
// A snapshot becomes the target of every device assigned to the instance as well, whose IDs it returns; clearing
// the target leaves the devices running what they run.
func (s *Store) SetInstanceDeviceTarget(ctx context.Context, instanceID string, snapshotID *string) ([]string, error) {
	res, err := s.db.NewUpdate().Model((*Instance)(nil)).Set("device_target_snapshot_id = ?", snapshotID).
		Set("updated_at = ?", now()).Where("id = ?", instanceID).Exec(ctx)
	if err := mustAffect(res, err, "instance"); err != nil || snapshotID == nil {
		return nil, err
	}
	var ids []string
	err = s.db.NewSelect().Model((*Device)(nil)).Column("id").Where("instance_id = ?", instanceID).Order("id").Scan(ctx, &ids)
	if err != nil || len(ids) == 0 {
		return ids, err
	}
	_, err = touchDevice(s.db.NewUpdate().Model((*Device)(nil)).Set("target_snapshot_id = ?", *snapshotID)).Where("instance_id = ?", instanceID).Exec(ctx)
	return ids, err
}
