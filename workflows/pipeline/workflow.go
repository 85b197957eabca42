package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/rollout"
)

var a *activities.Pipelines

var (
	// planOptions: a create_snapshot capture of up to 20 MiB takes seconds; refusals come back non-retryable.
	planOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	}
	// shortOptions: store writes.
	shortOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	}
)

type promotion struct {
	ctx      workflow.Context
	p        Params
	st       Progress
	decision *Decision // approve or reject, once given
	approved bool
	canceled bool
	// deployToDevices: an instance target passes the snapshot on to its devices.
	deployToDevices bool
}

// Promote runs one promotion: the approval gate, the schedule, the snapshot resolved by the source stage's
// action, then each target of the next stage in turn, recording each target's result as it goes.
func Promote(ctx workflow.Context, p Params) (Progress, error) {
	pr := &promotion{ctx: ctx, p: p, st: Progress{Status: initialStatus(p), Results: []activities.TargetResult{}}}
	if err := pr.registerHandlers(); err != nil {
		return pr.st, err
	}
	if p.RequiresApproval {
		if done := pr.awaitApproval(); done {
			return pr.st, nil
		}
	}
	if !p.At.IsZero() {
		if done := pr.awaitSchedule(); done {
			return pr.st, nil
		}
	}
	pr.st.Status = domain.PromotionRunning
	pr.save()
	plan, err := pr.plan()
	if err != nil {
		return pr.finish(domain.PromotionFailed, facade.Message(err))
	}
	pr.st.SnapshotID = plan.SnapshotID
	pr.deployToDevices = plan.DeployToDevices
	for _, t := range plan.Targets {
		pr.st.Results = append(pr.st.Results, activities.TargetResult{Kind: t.Kind, ID: t.ID, Status: domain.PromotionTargetPending})
	}
	pr.save()
	for i := range pr.st.Results {
		pr.promoteTarget(i)
	}
	var failed []string
	for _, r := range pr.st.Results {
		if r.Status == domain.PromotionTargetFailed {
			failed = append(failed, r.Kind+" "+r.ID+": "+r.Detail)
		}
	}
	if len(failed) > 0 {
		return pr.finish(domain.PromotionFailed, fmt.Sprintf("%d of %d targets failed: %s", len(failed), len(pr.st.Results), strings.Join(failed, "; ")))
	}
	return pr.finish(domain.PromotionSucceeded, "")
}

// initialStatus is the status the API recorded: the validators must see it from the first workflow task on,
// since an approve may arrive with it.
func initialStatus(p Params) domain.PromotionStatus {
	switch {
	case p.RequiresApproval:
		return domain.PromotionAwaitingApproval
	case !p.At.IsZero():
		return domain.PromotionScheduled
	}
	return domain.PromotionRunning
}

func (pr *promotion) registerHandlers() error {
	if err := workflow.SetQueryHandler(pr.ctx, QueryProgress, func() (Progress, error) { return pr.st, nil }); err != nil {
		return err
	}
	decide := func(approve bool) func(workflow.Context, Decision) (Progress, error) {
		return func(_ workflow.Context, d Decision) (Progress, error) {
			pr.decision, pr.approved = &d, approve
			return pr.st, nil
		}
	}
	opts := func(validate func(workflow.Context, Decision) error) workflow.UpdateHandlerOptions {
		return workflow.UpdateHandlerOptions{Validator: validate}
	}
	if err := workflow.SetUpdateHandlerWithOptions(pr.ctx, UpdateApprove, decide(true), opts(pr.validateDecision)); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(pr.ctx, UpdateReject, decide(false), opts(pr.validateDecision)); err != nil {
		return err
	}
	cancel := func(_ workflow.Context, d Decision) (Progress, error) {
		pr.canceled = true
		pr.st.DecidedBy = d.UserID
		return pr.st, nil
	}
	return workflow.SetUpdateHandlerWithOptions(pr.ctx, UpdateCancel, cancel, opts(pr.validateCancel))
}

// Validation errors; the API checks the same rules first and answers 403, so these guard the workflow.
var (
	errNotAwaiting  = errors.New("the promotion is not awaiting approval")
	errRole         = errors.New("the caller's role may not decide on this promotion")
	errSelfApproval = errors.New("the requester may not decide on their own promotion")
	errNotPending   = errors.New("the promotion has started or finished; it can no longer be canceled")
)

func (pr *promotion) validateDecision(_ workflow.Context, d Decision) error {
	if pr.st.Status != domain.PromotionAwaitingApproval || pr.decision != nil || pr.canceled {
		return errNotAwaiting
	}
	return MayDecide(pr.p, d)
}

// MayDecide reports whether a caller may approve or reject a promotion: their role must reach the stage's
// approver role, and, where the stage says so, they must not be the one who asked for the promotion.
func MayDecide(p Params, d Decision) error {
	need, err := domain.ParseRole(p.ApproverRole)
	if err != nil {
		need = domain.RoleOwner
	}
	have, err := domain.ParseRole(d.Role)
	if err != nil || have < need {
		return errRole
	}
	if p.ForbidSelfApproval && d.UserID == p.RequestedBy {
		return errSelfApproval
	}
	return nil
}

func (pr *promotion) validateCancel(_ workflow.Context, _ Decision) error {
	if (pr.st.Status != domain.PromotionScheduled && pr.st.Status != domain.PromotionAwaitingApproval) || pr.canceled || pr.decision != nil {
		return errNotPending
	}
	return nil
}

// awaitApproval waits, durably and for as long as it takes, for an approve, reject or cancel. It reports
// whether the promotion ended there.
func (pr *promotion) awaitApproval() bool {
	pr.st.Status = domain.PromotionAwaitingApproval
	pr.save()
	_ = workflow.Await(pr.ctx, func() bool { return pr.decision != nil || pr.canceled })
	switch {
	case pr.canceled:
		pr.finish(domain.PromotionCanceled, "canceled before approval")
		return true
	case !pr.approved:
		pr.st.DecidedBy = pr.decision.UserID
		pr.finish(domain.PromotionRejected, "rejected")
		return true
	}
	pr.st.DecidedBy = pr.decision.UserID
	return false
}

// awaitSchedule waits on a durable timer until p.At, or until a cancel. It reports whether the promotion
// ended there.
func (pr *promotion) awaitSchedule() bool {
	wait := pr.p.At.Sub(workflow.Now(pr.ctx))
	if wait <= 0 {
		return false
	}
	pr.st.Status = domain.PromotionScheduled
	pr.save()
	pr.decision = nil // an approval given already is spent; only cancel counts now
	if canceled, _ := workflow.AwaitWithTimeout(pr.ctx, wait, func() bool { return pr.canceled }); canceled {
		pr.finish(domain.PromotionCanceled, "canceled before its scheduled time")
		return true
	}
	return false
}

func (pr *promotion) plan() (activities.PromotionPlan, error) {
	var plan activities.PromotionPlan
	req := activities.PlanRequest{PromotionID: pr.p.PromotionID, SnapshotID: pr.p.SnapshotID, NewSnapshotID: pr.newID()}
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(pr.ctx, planOptions), a.PlanPromotion, req).Get(pr.ctx, &plan)
	return plan, err
}

// promoteTarget deploys the snapshot into target i and records its result; a failed target does not stop
// the others.
func (pr *promotion) promoteTarget(i int) {
	r := &pr.st.Results[i]
	r.Status = domain.PromotionTargetRunning
	pr.save()
	var err error
	switch r.Kind {
	case domain.TargetInstance:
		if err = pr.promoteInstance(r.ID); err == nil && pr.deployToDevices {
			err = pr.deployToInstanceDevices(r)
		}
	case domain.TargetDevice:
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(pr.ctx, shortOptions), a.SetDeviceTarget, r.ID, pr.st.SnapshotID).Get(pr.ctx, nil)
	case domain.TargetDeviceGroup:
		err = pr.promoteGroup(r.ID)
	default:
		err = fmt.Errorf("unknown target kind %s", r.Kind)
	}
	r.Status = domain.PromotionTargetSucceeded
	if err != nil {
		r.Status, r.Detail = domain.PromotionTargetFailed, facade.Message(err)
	}
	pr.save()
}

// promoteInstance runs the instance's lifecycle workflow (rollback with the promotion's env merge) as a
// child: an automatic snapshot first, the snapshot applied, the runtime restarted and its flows running, or
// the instance put back as it was. The child outlives a canceled promotion so the instance always ends in a
// final state.
func (pr *promotion) promoteInstance(instanceID string) error {
	opID := pr.newID()
	rec := activities.TargetOperation{OperationID: opID, Kind: "promotion", SubjectType: "instance", SubjectID: instanceID, TeamID: pr.p.TeamID,
		WorkflowID: instance.WorkflowID(instanceID), CreatedBy: pr.p.RequestedBy}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(pr.ctx, shortOptions), a.RecordTargetOperation, rec).Get(pr.ctx, nil); err != nil {
		return err
	}
	cctx := workflow.WithChildOptions(pr.ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            instance.WorkflowID(instanceID),
		TaskQueue:             pr.p.InstanceQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	params := instance.Params{InstanceID: instanceID, TeamID: pr.p.TeamID, OperationID: opID, Action: instance.ActionRollback,
		SnapshotID: pr.st.SnapshotID, Promote: true}
	err := workflow.ExecuteChildWorkflow(cctx, instance.WorkflowName, params).Get(pr.ctx, nil)
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	if errors.As(err, &started) {
		return errors.New("another action is running on the instance; promote again when it has finished")
	}
	return err
}

// Change IDs of workflow.GetVersion. A change ID is written into the history of every run that passes it, so it
// never changes: renaming one would make the runs in flight that recorded it fail to replay. A new one is named
// after the day of the change, <yyyy-mm-dd>-<what> (worker's TestWorkflowChangeIDsAreDated checks); the one
// made before that rule keeps its name, its dates are in its comment.
const (
	// changeDeployToDevices: version 1 (2026-11-27) passes the promoted snapshot on to each target instance's
	// devices; version 2 (2026-12-07) snapshots the instance itself and makes that its device target.
	changeDeployToDevices = "deploy-to-devices"
)

// deployToInstanceDevices makes what the instance now runs its devices' target (added after promotions were
// first recorded, hence the version marker). Version 1 set the promoted snapshot on each device; version 2 takes
// a snapshot of the instance itself, with an ID chosen here so a retry stores one, and makes it the instance's
// device target, which devices assigned later take too.
func (pr *promotion) deployToInstanceDevices(r *activities.TargetResult) error {
	v := workflow.GetVersion(pr.ctx, changeDeployToDevices, workflow.DefaultVersion, 2)
	if v == workflow.DefaultVersion {
		return nil
	}
	var n int
	ctx := workflow.WithActivityOptions(pr.ctx, shortOptions)
	var err error
	if v == 1 {
		err = workflow.ExecuteActivity(ctx, a.SetInstanceDevicesTarget, r.ID, pr.st.SnapshotID).Get(pr.ctx, &n)
	} else {
		req := activities.InstanceDevicesDeploy{InstanceID: r.ID, PromotedSnapshotID: pr.st.SnapshotID, NewSnapshotID: pr.newID(),
			RequestedBy: pr.p.RequestedBy}
		err = workflow.ExecuteActivity(ctx, a.DeployToInstanceDevices, req).Get(pr.ctx, &n)
	}
	if err != nil {
		return err
	}
	r.Detail = fmt.Sprintf("and its %d devices", n)
	return nil
}

// promoteGroup records a rollout of the snapshot to the group and runs the rollout workflow as a child,
// waiting for its outcome.
func (pr *promotion) promoteGroup(groupID string) error {
	strategy := rollout.DefaultStrategy()
	req := activities.GroupRollout{RolloutID: pr.newID(), OperationID: pr.newID(), GroupID: groupID, SnapshotID: pr.st.SnapshotID,
		CreatedBy: pr.p.RequestedBy, Waves: strategy.Waves, Strategy: map[string]any{"waves": strategy.Waves, "batchSize": strategy.BatchSize,
			"failureThreshold": strategy.FailureThreshold, "waveTimeout": strategy.WaveTimeout.String(), "approval": strategy.Approval, "autoRollback": strategy.AutoRollback}}
	var teamID string
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(pr.ctx, shortOptions), a.RecordGroupRollout, req).Get(pr.ctx, &teamID); err != nil {
		return err
	}
	cctx := workflow.WithChildOptions(pr.ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            rollout.WorkflowID(req.RolloutID),
		TaskQueue:             pr.p.RolloutQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	params := rollout.Params{RolloutID: req.RolloutID, GroupID: groupID, TeamID: teamID, SnapshotID: pr.st.SnapshotID, OperationID: req.OperationID, Strategy: strategy}
	var progress rollout.Progress
	if err := workflow.ExecuteChildWorkflow(cctx, rollout.WorkflowName, params).Get(pr.ctx, &progress); err != nil {
		return err
	}
	if progress.Status != domain.RolloutSucceeded {
		return fmt.Errorf("rollout %s ended %s: %s", req.RolloutID, progress.Status, progress.Reason)
	}
	return nil
}

// save writes the promotion's progress into its row and operation. The projection is best effort for the
// workflow: a write that fails past its retries does not change what the workflow decides.
func (pr *promotion) save() {
	pp := activities.PromotionProgress{PromotionID: pr.p.PromotionID, OperationID: pr.p.OperationID, Status: pr.st.Status,
		SnapshotID: pr.st.SnapshotID, DecidedBy: pr.st.DecidedBy, Results: pr.st.Results, Reason: pr.st.Reason}
	_ = workflow.ExecuteActivity(workflow.WithActivityOptions(pr.ctx, shortOptions), a.SavePromotionProgress, pp).Get(pr.ctx, nil)
}

func (pr *promotion) finish(status domain.PromotionStatus, reason string) (Progress, error) {
	pr.st.Status, pr.st.Reason = status, reason
	pr.save()
	if status == domain.PromotionFailed {
		return pr.st, ErrFailed.New(reason)
	}
	return pr.st, nil
}

// newID draws a fresh ID once and records it in the history, so a replay sees the same one.
func (pr *promotion) newID() string {
	var id string
	if err := workflow.SideEffect(pr.ctx, func(workflow.Context) any { return domain.NewID() }).Get(&id); err != nil {
		panic(err) // a string recorded by this workflow always decodes
	}
	return id
}
