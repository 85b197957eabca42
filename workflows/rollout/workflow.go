package rollout

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
	"github.com/flowyard/flowyard/workflows/waves"
)

var a *activities.Rollouts

// Names of the local activities (short store reads and projection writes), called by name so the worker's
// registered instance runs them.
const (
	activityCounts       = "RolloutCounts"
	activitySaveProgress = "SaveRolloutProgress"
)

var (
	dispatchOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	}
	localOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	}
)

// Polling: devices acknowledge into the store, and the workflow reads counts, so a lost message can never
// stall a rollout. The interval starts short and stretches while nothing changes.
const (
	minPoll = 250 * time.Millisecond
	maxPoll = 2 * time.Second
)

// Failures a rollout ends with.
const (
	ErrInvalidStrategy                  = facade.InvalidArgument // the strategy is refused before anything is planned
	ErrPlanningFailed    facade.Failure = "PlanningFailed"       // the group's devices could not be assigned to waves
	ErrThresholdExceeded facade.Failure = "ThresholdExceeded"    // stopped by its failure threshold, without rollback
)

type rollout struct {
	ctx workflow.Context
	p   Params
	st  *State
}

// Rollout deploys a snapshot to a group in waves. See the package comment.
func Rollout(ctx workflow.Context, p Params) (Progress, error) {
	r := &rollout{ctx: ctx, p: p, st: p.State}
	if r.st == nil {
		r.st = &State{Status: domain.RolloutRunning}
	}
	if err := r.registerHandlers(); err != nil {
		return r.progress(), err
	}
	if err := validate(p.Strategy); err != nil {
		return r.progress(), err
	}
	if r.st.WaveSizes == nil {
		if err := r.plan(); err != nil {
			return r.fail(ErrPlanningFailed, "planning failed: "+err.Error())
		}
	}
	for r.st.Wave < len(r.st.WaveSizes) {
		if r.st.AbortWanted {
			return r.finish(domain.RolloutAborted, "aborted by a user")
		}
		if err := r.gate(); err != nil {
			return r.progress(), err
		}
		if r.st.AbortWanted {
			continue
		}
		exceeded, err := r.runWave()
		if err != nil {
			return r.progress(), err
		}
		if exceeded {
			return r.stopOnFailures()
		}
		r.st.Wave++
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return r.continueAsNew()
		}
	}
	return r.finish(domain.RolloutSucceeded, "")
}

func validate(s Strategy) error {
	if err := waves.Validate(s.Waves, s.FailureThreshold); err != nil {
		return err
	}
	if s.BatchSize < 1 || s.WaveTimeout <= 0 {
		return ErrInvalidStrategy.New("batchSize and waveTimeout must be positive")
	}
	return nil
}

func (r *rollout) registerHandlers() error {
	if err := workflow.SetQueryHandler(r.ctx, QueryProgress, func() (Progress, error) { return r.progress(), nil }); err != nil {
		return err
	}
	handlers := []struct {
		name    string
		allowed func() error
		apply   func()
	}{
		{UpdatePause, r.can(UpdatePause), func() { r.st.PausedFrom, r.st.Status = r.st.Status, domain.RolloutPaused }},
		{UpdateResume, r.can(UpdateResume), func() { r.st.Status, r.st.PausedFrom = r.st.PausedFrom, "" }},
		{UpdateAbort, r.can(UpdateAbort), func() { r.st.AbortWanted = true }},
		{UpdateApprove, r.can(UpdateApprove), func() { r.st.Approved = r.st.Wave; r.st.Status = domain.RolloutRunning }},
	}
	for _, h := range handlers {
		err := workflow.SetUpdateHandlerWithOptions(r.ctx, h.name,
			func(ctx workflow.Context, by string) (Progress, error) {
				h.apply()
				r.saveWith(ctx)
				return r.progress(), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, by string) error { return h.allowed() }})
		if err != nil {
			return err
		}
	}
	return nil
}

// can returns a validator that accepts the update only in the statuses UpdateAllowedIn names for it; a refused
// update never reaches the history. While an abort takes effect, only another abort is accepted (and changes
// nothing): the operator who repeats it hears that it is done, not a conflict.
func (r *rollout) can(update string) func() error {
	return func() error {
		if r.st.AbortWanted && update != UpdateAbort {
			return fmt.Errorf("the rollout is being aborted")
		}
		for _, s := range UpdateAllowedIn[update] {
			if r.st.Status == s {
				return nil
			}
		}
		return fmt.Errorf("not allowed while the rollout is %s", r.st.Status)
	}
}

// plan assigns the group's devices to waves, in the store.
func (r *rollout) plan() error {
	var sizes []int
	ctx := workflow.WithActivityOptions(r.ctx, dispatchOptions)
	err := workflow.ExecuteActivity(ctx, a.PlanRollout, activities.PlanRollout{RolloutID: r.p.RolloutID, GroupID: r.p.GroupID,
		SnapshotID: r.p.SnapshotID, Waves: r.p.Strategy.Waves}).Get(r.ctx, &sizes)
	if err != nil {
		return err
	}
	r.st.WaveSizes = sizes
	for _, n := range sizes {
		r.st.Total += n
	}
	r.st.Pending = r.st.Total
	r.save()
	return nil
}

// gate holds the next wave while the rollout is paused, or until a user approves it.
func (r *rollout) gate() error {
	if r.p.Strategy.Approval == ApprovalBetweenWaves && r.st.Wave > 0 && r.st.Approved < r.st.Wave && r.st.Status == domain.RolloutRunning {
		r.st.Status = domain.RolloutAwaitingApproval
		r.save()
	}
	return workflow.Await(r.ctx, func() bool {
		return r.st.AbortWanted || r.st.Status == domain.RolloutRunning
	})
}

// runWave dispatches the current wave and waits until each of its devices runs the snapshot, fails, or misses
// the deadline. It reports whether the failure threshold was exceeded.
func (r *rollout) runWave() (bool, error) {
	deadline := workflow.Now(r.ctx).Add(r.p.Strategy.WaveTimeout)
	ctx := workflow.WithActivityOptions(r.ctx, dispatchOptions)
	err := workflow.ExecuteActivity(ctx, a.DispatchWave, activities.DispatchWave{RolloutID: r.p.RolloutID, Wave: r.st.Wave,
		SnapshotID: r.p.SnapshotID, BatchSize: r.p.Strategy.BatchSize}).Get(r.ctx, nil)
	if err != nil {
		return false, err
	}
	poll := minPoll
	for {
		c, err := r.counts()
		if err != nil {
			return false, err
		}
		if r.exceeded() {
			return true, nil
		}
		if c.WaveUpdating == 0 {
			return false, nil
		}
		if !workflow.Now(r.ctx).Before(deadline) {
			if err := workflow.ExecuteActivity(ctx, a.ExpireWave, r.p.RolloutID, r.st.Wave).Get(r.ctx, nil); err != nil {
				return false, err
			}
			continue
		}
		before := r.st.Updated + r.st.Failed
		if err := workflow.Sleep(r.ctx, min(poll, deadline.Sub(workflow.Now(r.ctx))+time.Millisecond)); err != nil {
			return false, err
		}
		if r.st.Updated+r.st.Failed == before {
			poll = min(2*poll, maxPoll)
		} else {
			poll = minPoll
		}
	}
}

// counts reads the rollout's counters from the store and saves them when they moved.
func (r *rollout) counts() (activities.RolloutCounts, error) {
	var c activities.RolloutCounts
	ctx := workflow.WithLocalActivityOptions(r.ctx, localOptions)
	if err := workflow.ExecuteLocalActivity(ctx, activityCounts, r.p.RolloutID, r.st.Wave).Get(r.ctx, &c); err != nil {
		return c, err
	}
	moved := c.Updated != r.st.Updated || c.Failed != r.st.Failed || c.Pending != r.st.Pending || c.RolledBack != r.st.RolledBack
	r.st.Updated, r.st.Failed, r.st.Pending, r.st.RolledBack = c.Updated, c.Failed, c.Pending, c.RolledBack
	if moved {
		r.save()
	}
	return c, nil
}

// exceeded compares failures with the devices dispatched so far.
func (r *rollout) exceeded() bool {
	return waves.Exceeded(r.st.Failed, r.st.Total-r.st.Pending, r.p.Strategy.FailureThreshold)
}

// stopOnFailures stops sending the new snapshot and, with autoRollback, returns every device the rollout
// changed to its previous snapshot.
func (r *rollout) stopOnFailures() (Progress, error) {
	reason := fmt.Sprintf("%d of %d devices failed, over the %.0f%% threshold", r.st.Failed, r.st.Total-r.st.Pending, r.p.Strategy.FailureThreshold*100)
	if !r.p.Strategy.AutoRollback {
		return r.fail(ErrThresholdExceeded, reason)
	}
	r.st.Status, r.st.Reason = domain.RolloutRollingBack, reason
	r.save()
	ctx := workflow.WithActivityOptions(r.ctx, dispatchOptions)
	var changed int
	if err := workflow.ExecuteActivity(ctx, a.RollBackDevices, r.p.RolloutID, r.p.Strategy.BatchSize).Get(r.ctx, &changed); err != nil {
		return r.progress(), err
	}
	deadline := workflow.Now(r.ctx).Add(r.p.Strategy.WaveTimeout)
	for {
		c, err := r.counts()
		if err != nil {
			return r.progress(), err
		}
		if c.RollbackPending == 0 || !workflow.Now(r.ctx).Before(deadline) {
			break
		}
		if err := workflow.Sleep(r.ctx, maxPoll); err != nil {
			return r.progress(), err
		}
	}
	return r.finish(domain.RolloutRolledBack, reason)
}

// Change IDs of workflow.GetVersion. A change ID is written into the history of every run that passes it, so it
// never changes; it is named after the day of the change, <yyyy-mm-dd>-<what> (worker's
// TestWorkflowChangeIDsAreDated checks).
const (
	// changeAnswerBeforeFinishing: version 1 (2026-12-07) lets the operator Updates accepted before the rollout
	// ended finish their handlers, so their clients hear the answer, before the final status is saved.
	changeAnswerBeforeFinishing = "2026-12-07-answer-updates-before-finishing"
)

// finish ends the rollout with status. The Updates accepted before (an abort that ends it, for one) are answered
// first: a workflow that finished with a handler still running would leave its client with "workflow execution
// already completed" (a 409 from the API) for an action that took effect. Once the status is final every
// validator refuses, so no handler starts after; the final status is saved last.
func (r *rollout) finish(status domain.RolloutStatus, reason string) (Progress, error) {
	r.st.Status = status
	if reason != "" {
		r.st.Reason = reason
	}
	if workflow.GetVersion(r.ctx, changeAnswerBeforeFinishing, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.Await(r.ctx, func() bool { return workflow.AllHandlersFinished(r.ctx) }); err != nil {
			return r.progress(), err
		}
	}
	r.save()
	return r.progress(), nil
}

// fail finishes the rollout as failed, with a failure of type f.
func (r *rollout) fail(f facade.Failure, reason string) (Progress, error) {
	p, _ := r.finish(domain.RolloutFailed, reason)
	return p, f.New(reason)
}

func (r *rollout) continueAsNew() (Progress, error) {
	if err := workflow.Await(r.ctx, func() bool { return workflow.AllHandlersFinished(r.ctx) }); err != nil {
		return r.progress(), err
	}
	p := r.p
	p.State = r.st
	return r.progress(), workflow.NewContinueAsNewError(r.ctx, WorkflowName, p)
}

// save writes the rollout row (status, wave, counts, reason); the API reads it.
func (r *rollout) save() { r.saveWith(r.ctx) }

// saveWith saves from the coroutine of wctx (an update handler runs in its own).
func (r *rollout) saveWith(wctx workflow.Context) {
	ctx := workflow.WithLocalActivityOptions(wctx, localOptions)
	err := workflow.ExecuteLocalActivity(ctx, activitySaveProgress, activities.RolloutProgress{RolloutID: r.p.RolloutID,
		OperationID: r.p.OperationID, Status: r.st.Status, Wave: r.st.Wave, Waves: len(r.p.Strategy.Waves), Total: r.st.Total,
		Updated: r.st.Updated, Failed: r.st.Failed, Pending: r.st.Pending, RolledBack: r.st.RolledBack, Reason: r.st.Reason}).Get(wctx, nil)
	if err != nil {
		workflow.GetLogger(wctx).Error("save rollout progress", "error", err)
	}
}

func (r *rollout) progress() Progress {
	return Progress{Status: r.st.Status, Wave: r.st.Wave, Waves: len(r.p.Strategy.Waves), Total: r.st.Total, Updated: r.st.Updated,
		Failed: r.st.Failed, Pending: r.st.Pending, RolledBack: r.st.RolledBack, Reason: r.st.Reason}
}

// IsThresholdExceeded reports whether a rollout's error is its failure threshold.
func IsThresholdExceeded(err error) bool { return ErrThresholdExceeded.Is(err) }
