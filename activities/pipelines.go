package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
)

// Pipelines are the activities of the promotion workflow. Each is idempotent: IDs come from the workflow,
// and the promotion row only moves forward.
type Pipelines struct {
	Store     *storage.Store
	Snapshots *snapshots.Service
	Devices   *devices.Service // rehashes a device whose target it sets
	Notifier  DeviceNotifier   // nil: devices learn their new target on their next check-in
	Rollouts  RolloutRecorder  // records the rollouts promotions start in device groups
	Targets   InstanceTargets  // sets an instance's device target
}

// InstanceTargets sets the device target of an instance a promotion deploys to, and tells its devices;
// services.DeviceTargets implements it (the API sets a target through the same service).
type InstanceTargets interface {
	SetForPromotion(ctx context.Context, instanceID, snapshotID string) (devices int, err error)
}

// PromotionPlan is what a promotion deploys and where.
type PromotionPlan struct {
	SnapshotID      string
	SnapshotName    string
	ApplicationID   string
	Targets         []domain.StageTarget
	DeployToDevices bool // instance targets pass the snapshot on to their devices
}

// PlanRequest asks to resolve a promotion's snapshot by its source stage's action.
type PlanRequest struct {
	PromotionID   string
	SnapshotID    string // named by the caller (prompt)
	NewSnapshotID string // the ID a create_snapshot capture takes, chosen by the workflow so a retry stores one
}

// PlanPromotion resolves the snapshot to promote, at the time the promotion runs (a scheduled promotion whose
// source was deleted since fails here, with the reason), and lists the next stage's targets.
func (a *Pipelines) PlanPromotion(ctx context.Context, req PlanRequest) (PromotionPlan, error) {
	pr, err := a.Store.GetPromotion(ctx, req.PromotionID)
	if err != nil {
		return PromotionPlan{}, rejected(err)
	}
	p, err := a.Store.GetPipeline(ctx, pr.PipelineID)
	if err != nil {
		return PromotionPlan{}, rejected(err)
	}
	stages, err := a.Store.ListStages(ctx, p.ID)
	if err != nil {
		return PromotionPlan{}, err
	}
	source, target := findStage(stages, pr.SourceStageID), findStage(stages, pr.TargetStageID)
	if source == nil || target == nil {
		return PromotionPlan{}, rejected(domain.Conflict("stage_gone", "A stage of this promotion was removed from the pipeline."))
	}
	snap, err := a.resolveSnapshot(ctx, p, source, pr, req)
	if err != nil {
		return PromotionPlan{}, rejected(err)
	}
	if snap.ApplicationID != p.ApplicationID {
		return PromotionPlan{}, rejected(domain.Unprocessable("snapshot_other_application", "The snapshot belongs to another application."))
	}
	return PromotionPlan{SnapshotID: snap.ID, SnapshotName: snap.Name, ApplicationID: p.ApplicationID, Targets: target.Targets,
		DeployToDevices: target.DeployToDevices}, nil
}

func findStage(stages []storage.PipelineStage, id string) *storage.PipelineStage {
	for i := range stages {
		if stages[i].ID == id {
			return &stages[i]
		}
	}
	return nil
}

func (a *Pipelines) resolveSnapshot(ctx context.Context, p *storage.Pipeline, source *storage.PipelineStage, pr *storage.Promotion, req PlanRequest) (*storage.Snapshot, error) {
	if req.SnapshotID != "" {
		return a.Store.GetSnapshotMeta(ctx, req.SnapshotID)
	}
	if source.Spec().KindOf() == domain.TargetDeviceGroup {
		g, err := a.Store.GetDeviceGroup(ctx, source.Targets[0].ID)
		if err != nil {
			return nil, sourceGone(err, "device group")
		}
		if g.TargetSnapshotID == nil {
			return nil, domain.Conflict("no_snapshot", "The source device group has no target snapshot to promote.")
		}
		return a.Store.GetSnapshotMeta(ctx, *g.TargetSnapshotID)
	}
	if len(source.Targets) != 1 {
		return nil, domain.Unprocessable("snapshot_required", "The source stage has several targets; name the snapshot to promote (snapshotId).")
	}
	t := source.Targets[0]
	switch source.Action {
	case domain.StagePrompt:
		return nil, domain.Unprocessable("snapshot_required", "The source stage's action is prompt; name the snapshot to promote (snapshotId).")
	case domain.StageCreateSnapshot:
		m := snapshots.Meta{ID: req.NewSnapshotID, Name: "Deploy Snapshot - " + time.Now().UTC().Format("2006-01-02 15:04:05"),
			Description: fmt.Sprintf("Taken for a promotion from stage %q of pipeline %q.", source.Name, p.Name), CreatedBy: pr.RequestedBy}
		snap, err := a.Snapshots.Capture(ctx, t.ID, m)
		return snap, sourceGone(err, "instance")
	case domain.StageUseLatestSnapshot:
		snap, err := a.Store.LatestSnapshotOf(ctx, t.Kind, t.ID)
		if domain.IsKind(err, domain.KindNotFound) {
			return nil, domain.Conflict("no_snapshot", "The source "+t.Kind+" has no snapshot to promote.")
		}
		return snap, err
	case domain.StageUseActiveSnapshot:
		d, err := a.Store.GetDevice(ctx, t.ID)
		if err != nil {
			return nil, sourceGone(err, "device")
		}
		if d.ActiveSnapshotID == nil {
			return nil, domain.Conflict("no_snapshot", "The source device runs no snapshot to promote.")
		}
		return a.Store.GetSnapshotMeta(ctx, *d.ActiveSnapshotID)
	}
	return nil, domain.Unprocessable("bad_action", "The source stage's action "+source.Action+" is not known.")
}

// sourceGone turns "not found" into a sentence that says what is missing.
func sourceGone(err error, what string) error {
	if domain.IsKind(err, domain.KindNotFound) {
		return domain.Conflict("source_gone", "The source "+what+" of this promotion no longer exists.")
	}
	return err
}

// PromotionProgress is the promotion's state as the workflow last saw it.
type PromotionProgress struct {
	PromotionID string
	OperationID string
	Status      domain.PromotionStatus
	SnapshotID  string
	DecidedBy   string
	Results     []TargetResult
	Reason      string
}

// TargetResult is one target's outcome in a promotion: pending, running, succeeded or failed.
type TargetResult struct {
	Kind   string                       `json:"kind"`
	ID     string                       `json:"id"`
	Status domain.PromotionTargetStatus `json:"status"`
	Detail string                       `json:"detail,omitempty"`
}

// SavePromotionProgress writes the promotion row and its operation's progress (one entry per target).
func (a *Pipelines) SavePromotionProgress(ctx context.Context, pp PromotionProgress) error {
	return a.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		pr, err := tx.GetPromotion(ctx, pp.PromotionID)
		if domain.IsKind(err, domain.KindNotFound) {
			return nil // its pipeline was deleted: nothing left to project into
		}
		if err != nil {
			return err
		}
		pr.Status, pr.Reason = pp.Status, pp.Reason
		pr.Results = make([]storage.PromotionResult, 0, len(pp.Results))
		for _, r := range pp.Results {
			pr.Results = append(pr.Results, storage.PromotionResult(r))
		}
		if pp.SnapshotID != "" {
			pr.SnapshotID = &pp.SnapshotID
		}
		if pp.DecidedBy != "" {
			pr.DecidedBy = &pp.DecidedBy
		}
		if err := tx.UpdatePromotion(ctx, pr); err != nil {
			return err
		}
		if err := emitPromotionAlert(ctx, tx, pr); err != nil {
			return err
		}
		return savePromotionOperation(ctx, tx, pp)
	})
}

// emitPromotionAlert records the alert of a failed promotion in the transaction that records the failure, once
// per promotion.
func emitPromotionAlert(ctx context.Context, tx *storage.Store, pr *storage.Promotion) error {
	if pr.Status != domain.PromotionFailed {
		return nil
	}
	name := pr.PipelineID
	if p, err := tx.GetPipeline(ctx, pr.PipelineID); err == nil {
		name = p.Name
	}
	_, err := alerts.Emit(ctx, tx, alerts.Event{TeamID: pr.TeamID, Kind: alerts.KindPromotionFailed, SubjectType: "pipeline",
		SubjectID: pr.PipelineID, SubjectName: name, Message: pr.Reason, DedupKey: alerts.KindPromotionFailed + ":" + pr.ID})
	return err
}

func savePromotionOperation(ctx context.Context, tx *storage.Store, pp PromotionProgress) error {
	if pp.OperationID == "" {
		return nil
	}
	op, err := tx.GetOperation(ctx, pp.OperationID)
	if err != nil {
		return err
	}
	done := 0
	for _, r := range pp.Results {
		if r.Status.Done() {
			done++
		}
	}
	op.Progress = map[string]any{"done": done, "total": len(pp.Results), "status": string(pp.Status), "targets": pp.Results}
	if pp.SnapshotID != "" {
		op.Progress["snapshotId"] = pp.SnapshotID
	}
	op.Error = pp.Reason
	switch pp.Status {
	case domain.PromotionSucceeded:
		op.Status = domain.OperationSucceeded
	case domain.PromotionFailed, domain.PromotionRejected:
		op.Status = domain.OperationFailed
	case domain.PromotionCanceled:
		op.Status = domain.OperationCanceled
	default:
		op.Status = domain.OperationRunning
	}
	_, err = tx.UpdateOperation(ctx, op, domain.OperationPending, domain.OperationRunning)
	return err
}

// TargetOperation records the operation of one target's part (an instance's rollback run, a group's rollout).
type TargetOperation struct {
	OperationID, Kind, SubjectType, SubjectID, TeamID, WorkflowID string
	CreatedBy                                                     string
}

// RecordTargetOperation inserts the operation once; a retry finds it by its request key.
func (a *Pipelines) RecordTargetOperation(ctx context.Context, t TargetOperation) error {
	key := "promotion-target/" + t.OperationID
	op := &storage.Operation{ID: t.OperationID, Kind: t.Kind, SubjectType: t.SubjectType, SubjectID: t.SubjectID, TeamID: &t.TeamID,
		Status: domain.OperationPending, WorkflowID: t.WorkflowID, RequestKey: &key}
	if t.CreatedBy != "" {
		op.CreatedBy = &t.CreatedBy
	}
	_, _, err := a.Store.InsertOperation(ctx, op)
	return err
}

// SetDeviceTarget makes the snapshot a device's target (it stays owned by its source) and tells the device. The
// device must still be in the snapshot's application: it may have been moved since it became a stage's target.
func (a *Pipelines) SetDeviceTarget(ctx context.Context, deviceID, snapshotID string) error {
	err := a.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		d, err := tx.GetDevice(ctx, deviceID)
		if err != nil {
			return err
		}
		if d.Mode == "developer" {
			return domain.Conflict("device_in_developer_mode", "The device is in developer mode; it does not take pipeline deployments.")
		}
		snap, err := tx.GetSnapshotMeta(ctx, snapshotID)
		if err != nil {
			return err
		}
		if d.ApplicationID == nil || *d.ApplicationID != snap.ApplicationID {
			return domain.Conflict("device_in_other_application", "The device is no longer in the pipeline's application.")
		}
		d.TargetSnapshotID = &snapshotID
		if err := a.Devices.Rehash(ctx, tx, d); err != nil {
			return err
		}
		return tx.UpdateDevice(ctx, d, "target_snapshot_id", "settings_hash")
	})
	if err != nil {
		return rejected(err)
	}
	if a.Notifier != nil {
		_ = a.Notifier.NotifyDevices(ctx, []string{deviceID}) // a device not reached learns on its next check-in
	}
	return nil
}

// InstanceDevicesDeploy asks to pass what a promotion deployed into an instance on to the instance's devices.
type InstanceDevicesDeploy struct {
	InstanceID, PromotedSnapshotID string
	NewSnapshotID                  string // the ID of the instance's snapshot, chosen by the workflow so a retry stores one
	RequestedBy                    string
}

// DeployToInstanceDevices takes a snapshot of the instance as the promotion left it and makes it the instance's
// device target (a stage's deployToDevices): every device assigned to the instance takes it, and so does one
// assigned later. The promoted snapshot itself belongs to the source stage's instance, and a device target is a
// snapshot of the instance. It tells the devices and reports how many there are.
func (a *Pipelines) DeployToInstanceDevices(ctx context.Context, req InstanceDevicesDeploy) (int, error) {
	promoted, err := a.Store.GetSnapshotMeta(ctx, req.PromotedSnapshotID)
	if err != nil {
		return 0, rejected(err)
	}
	m := snapshots.Meta{ID: req.NewSnapshotID, Name: promoted.Name,
		Description: fmt.Sprintf("Deployed to the instance's devices by a promotion of snapshot %q.", promoted.Name)}
	if req.RequestedBy != "" {
		m.CreatedBy = &req.RequestedBy
	}
	snap, err := a.Snapshots.Capture(ctx, req.InstanceID, m)
	if err != nil {
		return 0, rejected(err)
	}
	if a.Targets == nil {
		return 0, errors.New("activities.Pipelines has no Targets to set an instance's device target with")
	}
	n, err := a.Targets.SetForPromotion(ctx, req.InstanceID, snap.ID)
	return n, rejected(err)
}

// SetInstanceDevicesTarget is version 1 of deployToDevices, kept for promotions recorded before version 2: it
// does what DeployToInstanceDevices does, with a snapshot ID of its own (a retry may store a second snapshot).
func (a *Pipelines) SetInstanceDevicesTarget(ctx context.Context, instanceID, snapshotID string) (int, error) {
	return a.DeployToInstanceDevices(ctx, InstanceDevicesDeploy{InstanceID: instanceID, PromotedSnapshotID: snapshotID})
}

// GroupRollout asks to record a rollout of a snapshot to a group, started by a promotion.
type GroupRollout struct {
	RolloutID, OperationID, GroupID, SnapshotID, CreatedBy string
	Waves                                                  []int
	Strategy                                               map[string]any
}

// RolloutRecorder records the rollout a promotion starts in a group, with its operation, once;
// services.Rollouts implements it (activities reach services through it: services import the workflow
// facades, whose packages import activities).
type RolloutRecorder interface {
	RecordForPromotion(ctx context.Context, r *storage.Rollout) error
}

// RecordGroupRollout inserts the rollout row and its operation (once); a group that has a rollout running
// already, or no devices, refuses.
func (a *Pipelines) RecordGroupRollout(ctx context.Context, req GroupRollout) (teamID string, err error) {
	if a.Rollouts == nil {
		return "", errors.New("activities.Pipelines has no Rollouts to record a group's rollout with")
	}
	r := &storage.Rollout{ID: req.RolloutID, GroupID: req.GroupID, SnapshotID: req.SnapshotID, Strategy: req.Strategy,
		Waves: len(req.Waves), OperationID: &req.OperationID}
	if req.CreatedBy != "" {
		r.CreatedBy = &req.CreatedBy
	}
	err = a.Rollouts.RecordForPromotion(ctx, r)
	return r.TeamID, rejected(err)
}
