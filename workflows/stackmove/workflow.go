package stackmove

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/waves"
)

var a *activities.StackMoves

// Names of the local activities (a count and a projection write), called by name so the worker's registered
// instance runs them.
const (
	activityCounts       = "StackMoveCounts"
	activitySaveProgress = "SaveStackMoveProgress"
)

var (
	storeOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	}
	localOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	}
)

// An instance busy with another action (a user's restart, a rollback) is tried again this often, this many
// times, before its upgrade counts as failed.
const (
	busyWait    = 20 * time.Second
	busyRetries = 9
)

// Failures a move ends with.
const (
	ErrInvalidStrategy                = facade.InvalidArgument // the strategy is refused before anything runs
	ErrFailed          facade.Failure = "StackMoveFailed"      // refused, not planned, or stopped by its failure threshold
)

type move struct {
	ctx workflow.Context
	p   Params
	st  *State
}

// Move upgrades every instance of p.FromStackID to p.ToStackID in waves. See the package comment.
func Move(ctx workflow.Context, p Params) (Progress, error) {
	m := &move{ctx: ctx, p: p, st: p.State}
	if m.st == nil {
		m.st = &State{Status: domain.StackMoveRunning}
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return m.progress(), nil }); err != nil {
		return m.progress(), err
	}
	if err := validate(p.Strategy); err != nil {
		return m.finish(domain.StackMoveFailed, "invalid strategy: "+err.Error())
	}
	if m.st.WaveSizes == nil {
		if err := m.plan(); err != nil {
			return m.finish(domain.StackMoveFailed, "planning failed: "+err.Error())
		}
	}
	for m.st.Wave < len(m.st.WaveSizes) {
		done, err := m.moveBatch()
		if err != nil {
			return m.progress(), err
		}
		if waves.Exceeded(m.st.Failed, m.st.Moved+m.st.Failed, m.p.Strategy.FailureThreshold) {
			return m.finish(domain.StackMoveFailed, fmt.Sprintf("%d of %d instances failed to move, over the %.0f%% threshold; the others stay on their stack",
				m.st.Failed, m.st.Moved+m.st.Failed, m.p.Strategy.FailureThreshold*100))
		}
		if done {
			m.st.Wave++
			m.save()
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			p.State = m.st
			return m.progress(), workflow.NewContinueAsNewError(ctx, WorkflowName, p)
		}
	}
	return m.finish(domain.StackMoveSucceeded, "")
}

func validate(s Strategy) error {
	if err := waves.Validate(s.Waves, s.FailureThreshold); err != nil {
		return err
	}
	if s.Concurrency < 1 {
		return ErrInvalidStrategy.New("concurrency must be at least 1")
	}
	return nil
}

// plan assigns the stack's instances to waves, in the store.
func (m *move) plan() error {
	var sizes []int
	ctx := workflow.WithActivityOptions(m.ctx, storeOptions)
	req := activities.PlanStackMove{MoveID: m.p.MoveID, FromStackID: m.p.FromStackID, Waves: m.p.Strategy.Waves}
	if err := workflow.ExecuteActivity(ctx, a.PlanStackMove, req).Get(m.ctx, &sizes); err != nil {
		return err
	}
	m.st.WaveSizes = sizes
	for _, n := range sizes {
		m.st.Total += n
	}
	m.st.Pending = m.st.Total
	m.save()
	return nil
}

// moveBatch upgrades the next few instances of the current wave, all at once, and reports whether the wave
// had none left.
func (m *move) moveBatch() (bool, error) {
	var targets []activities.StackMoveTarget
	ctx := workflow.WithActivityOptions(m.ctx, storeOptions)
	req := activities.NextStackMoves{MoveID: m.p.MoveID, FromStackID: m.p.FromStackID, Wave: m.st.Wave,
		Count: m.p.Strategy.Concurrency, CreatedBy: m.p.CreatedBy}
	if err := workflow.ExecuteActivity(ctx, a.NextStackMoves, req).Get(m.ctx, &targets); err != nil {
		return false, err
	}
	wg := workflow.NewWaitGroup(m.ctx)
	for _, t := range targets {
		wg.Add(1)
		workflow.Go(m.ctx, func(ctx workflow.Context) {
			defer wg.Done()
			m.upgrade(ctx, t)
		})
	}
	wg.Wait(m.ctx)
	return len(targets) == 0, m.count()
}

// upgrade runs one instance's upgrade and records how it ended.
func (m *move) upgrade(ctx workflow.Context, t activities.StackMoveTarget) {
	result := activities.StackMoveResult{MoveID: m.p.MoveID, InstanceID: t.InstanceID, OperationID: t.OperationID, Moved: true}
	if err := m.runLifecycle(ctx, t); err != nil {
		result.Moved, result.Reason = false, facade.Message(err)
	}
	actx := workflow.WithActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteActivity(actx, a.FinishStackMoveInstance, result).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("record an instance's move", "instance", t.InstanceID, "error", err)
	}
}

// runLifecycle runs the instance's lifecycle workflow (action upgrade) as a child that outlives the move, so
// an instance always ends in a final state. An instance busy with another action is tried again later.
func (m *move) runLifecycle(ctx workflow.Context, t activities.StackMoveTarget) error {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            instance.WorkflowID(t.InstanceID),
		TaskQueue:             m.p.InstanceQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		TypedSearchAttributes: temporal.NewSearchAttributes(facade.AttrTeamID.ValueSet(t.TeamID), facade.AttrInstanceID.ValueSet(t.InstanceID)),
		StaticSummary:         "upgrade instance " + t.InstanceID + " to stack " + m.p.ToStackID,
	})
	params := instance.Params{InstanceID: t.InstanceID, TeamID: t.TeamID, OperationID: t.OperationID, Action: instance.ActionUpgrade,
		StackID: m.p.ToStackID}
	for attempt := 0; ; attempt++ {
		err := workflow.ExecuteChildWorkflow(cctx, instance.WorkflowName, params).Get(ctx, nil)
		var busy *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &busy) {
			return err
		}
		if attempt == busyRetries {
			return errors.New("another action kept running on the instance; move it on its own page when that has finished")
		}
		if err := workflow.Sleep(ctx, busyWait); err != nil {
			return err
		}
	}
}

// count reads the move's counters from the store and saves them when they moved.
func (m *move) count() error {
	var c activities.StackMoveCounts
	ctx := workflow.WithLocalActivityOptions(m.ctx, localOptions)
	if err := workflow.ExecuteLocalActivity(ctx, activityCounts, m.p.MoveID).Get(m.ctx, &c); err != nil {
		return err
	}
	moved := c.Moved != m.st.Moved || c.Failed != m.st.Failed || c.Skipped != m.st.Skipped || c.Pending != m.st.Pending
	m.st.Moved, m.st.Failed, m.st.Skipped, m.st.Pending = c.Moved, c.Failed, c.Skipped, c.Pending
	if moved {
		m.save()
	}
	return nil
}

func (m *move) finish(status domain.StackMoveStatus, reason string) (Progress, error) {
	m.st.Status, m.st.Reason = status, reason
	m.save()
	if status == domain.StackMoveFailed {
		return m.progress(), ErrFailed.New(reason)
	}
	return m.progress(), nil
}

// save writes the move's row and its operation; the API reads them.
func (m *move) save() {
	ctx := workflow.WithLocalActivityOptions(m.ctx, localOptions)
	p := m.progress()
	err := workflow.ExecuteLocalActivity(ctx, activitySaveProgress, activities.StackMoveProgress{MoveID: m.p.MoveID,
		OperationID: m.p.OperationID, Status: p.Status, Reason: p.Reason, Wave: p.Wave, Waves: p.Waves, Total: p.Total,
		Moved: p.Moved, Failed: p.Failed, Skipped: p.Skipped, Pending: p.Pending}).Get(m.ctx, nil)
	if err != nil {
		workflow.GetLogger(m.ctx).Error("save stack move progress", "error", err)
	}
}

func (m *move) progress() Progress {
	return Progress{Status: m.st.Status, Wave: m.st.Wave, Waves: len(m.p.Strategy.Waves), Total: m.st.Total, Moved: m.st.Moved,
		Failed: m.st.Failed, Skipped: m.st.Skipped, Pending: m.st.Pending, Reason: m.st.Reason}
}
