package instance

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
)

var a *activities.Instances

// Activity options. Starting may install a stack with npm, so it may take minutes, but it heartbeats so a dead
// worker is noticed in seconds. Runtime failures come back non-retryable; other errors retry a few times.
var (
	shortOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
	}
	runtimeOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    15 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 3},
	}
)

// projectionOptions run the state and progress writes as local activities: they are short database writes,
// and running them in the worker without a round trip through the server takes most of the platform's
// overhead off an instance's start.
var projectionOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 20},
}

// Names of the projection activities, called as local activities by name so the worker's registered
// instance (not a nil receiver) runs them.
const (
	activitySetState        = "SetState"
	activityUpdateOperation = "UpdateOperation"
)

// crashBackoff is how long to wait before restarting after the n-th crash in a row.
func crashBackoff(n int) time.Duration {
	switch {
	case n <= 1:
		return time.Second
	case n == 2:
		return 5 * time.Second
	case n == 3:
		return 30 * time.Second
	}
	return 2 * time.Minute
}

// run carries one lifecycle execution.
type run struct {
	ctx   workflow.Context
	p     Params
	total int
	done  int
	// kept is set by an action that failed but put the instance back as it was (a rollback whose flows did not
	// start): its state is already written and must not be overwritten with a failure state.
	kept *domain.InstanceState
}

// Lifecycle carries out one action on one instance, keeping its operation and state rows in step, and always
// leaves a final state with a reason: an instance never stays in an in-between state after its run ends.
func Lifecycle(ctx workflow.Context, p Params) (Result, error) {
	r := &run{ctx: ctx, p: p, total: stepsOf(p.Action)}
	r.progress(domain.OperationRunning, "", "started")
	state, err := r.act()
	if err != nil {
		failed := domain.InstanceError
		if p.Action == ActionRecover {
			failed = domain.InstanceCrashed
		}
		if r.kept != nil {
			failed = *r.kept
		} else {
			r.setState(StateChangeAfterFailure(p.InstanceID, failed, err))
		}
		r.progress(domain.OperationFailed, facade.Message(err), "failed")
		return Result{State: failed}, err
	}
	if p.Action != ActionDelete {
		r.progress(domain.OperationSucceeded, "", "done")
	} else {
		r.progress(domain.OperationSucceeded, "", "deleted")
	}
	return Result{State: state}, nil
}

func stepsOf(action Action) int {
	switch action {
	case ActionRestart, ActionRecover:
		return 4
	case ActionProvision, ActionStart:
		return 3
	case ActionRollback:
		return rollbackSteps
	case ActionUpgrade:
		return upgradeSteps
	}
	return 2
}

func (r *run) act() (domain.InstanceState, error) {
	switch r.p.Action {
	case ActionProvision:
		return r.start(domain.InstanceProvisioning, false, true)
	case ActionStart:
		return r.start(domain.InstanceStarting, false, true)
	case ActionRestart:
		r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceRestarting, Desired: domain.InstanceRunning})
		if err := r.exec(runtimeOptions, "stop", a.StopRuntime, r.p.InstanceID); err != nil {
			return "", err
		}
		return r.start(domain.InstanceRestarting, false, true)
	case ActionStop:
		return r.stop(domain.InstanceStopping, domain.InstanceStopped)
	case ActionSuspend:
		return r.stop(domain.InstanceSuspending, domain.InstanceSuspended)
	case ActionDelete:
		r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceDeleting, Desired: domain.InstanceDeleted})
		return domain.InstanceDeleted, r.exec(runtimeOptions, "remove", a.RemoveInstance, r.p.InstanceID)
	case ActionRecover:
		return r.recoverFromCrash()
	case ActionRollback:
		return r.rollback()
	case ActionUpgrade:
		return r.upgrade()
	}
	return "", ErrUnknownAction.New(fmt.Sprintf("unknown action %q", r.p.Action))
}

// start runs the instance and waits until its flows run.
func (r *run) start(during domain.InstanceState, safeMode, resetCrashes bool) (domain.InstanceState, error) {
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: during, Desired: domain.InstanceRunning})
	var url string
	opts := workflow.WithActivityOptions(r.ctx, runtimeOptions)
	if err := workflow.ExecuteActivity(opts, a.StartRuntime, r.p.InstanceID, safeMode).Get(r.ctx, &url); err != nil {
		return "", err
	}
	r.step("runtime started")
	if err := r.exec(runtimeOptions, "flows running", a.WaitReady, r.p.InstanceID, safeMode); err != nil {
		return "", err
	}
	reason := ""
	if safeMode {
		reason = activities.SafeModeReason
	}
	if resetCrashes {
		if err := r.exec(shortOptions, "", a.ResetCrashes, r.p.InstanceID); err != nil {
			return "", err
		}
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceRunning, Reason: reason})
	return domain.InstanceRunning, nil
}

func (r *run) stop(during, final domain.InstanceState) (domain.InstanceState, error) {
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: during, Desired: final})
	if err := r.exec(runtimeOptions, "stopped", a.StopRuntime, r.p.InstanceID); err != nil {
		return "", err
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: final})
	return final, nil
}

// recoverFromCrash marks the instance crashed with the runtime's last lines, waits a back-off that grows with
// each crash in a row, and starts it again: in safe mode once it has crashed SafeModeAfter times in a row.
func (r *run) recoverFromCrash() (domain.InstanceState, error) {
	var crash activities.CrashInfo
	opts := workflow.WithActivityOptions(r.ctx, shortOptions)
	if err := workflow.ExecuteActivity(opts, a.RecordCrash, r.p.InstanceID).Get(r.ctx, &crash); err != nil {
		return "", err
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceCrashed, Reason: crash.Reason})
	r.step("crash recorded")
	if err := workflow.Sleep(r.ctx, crashBackoff(crash.Count)); err != nil {
		return "", err
	}
	return r.start(domain.InstanceStarting, crash.Count >= SafeModeAfter, false)
}

// StateChangeAfterFailure is the final state a failed run writes, with the error as the reason.
func StateChangeAfterFailure(instanceID string, state domain.InstanceState, err error) activities.StateChange {
	return activities.StateChange{InstanceID: instanceID, State: state, Reason: facade.Message(err)}
}

func (r *run) exec(opts workflow.ActivityOptions, step string, fn any, args ...any) error {
	ctx := workflow.WithActivityOptions(r.ctx, opts)
	if err := workflow.ExecuteActivity(ctx, fn, args...).Get(r.ctx, nil); err != nil {
		return err
	}
	if step != "" {
		r.step(step)
	}
	return nil
}

func (r *run) step(name string) {
	r.done++
	r.progress(domain.OperationRunning, "", name)
}

// setState writes the state projection; a failure to write it is logged, and the run goes on.
func (r *run) setState(c activities.StateChange) {
	ctx := workflow.WithLocalActivityOptions(r.ctx, projectionOptions)
	if err := workflow.ExecuteLocalActivity(ctx, activitySetState, c).Get(r.ctx, nil); err != nil {
		workflow.GetLogger(r.ctx).Error("set instance state", "state", c.State, "error", err)
	}
}

func (r *run) progress(status domain.OperationStatus, errMsg, step string) {
	if r.p.OperationID == "" {
		return
	}
	ctx := workflow.WithLocalActivityOptions(r.ctx, projectionOptions)
	u := activities.OperationUpdate{OperationID: r.p.OperationID, RunID: workflow.GetInfo(r.ctx).WorkflowExecution.RunID,
		Status: status, Error: errMsg, Step: step, Done: min(r.done, r.total), Total: r.total}
	if status == domain.OperationSucceeded {
		u.Done = r.total
	}
	if err := workflow.ExecuteLocalActivity(ctx, activityUpdateOperation, u).Get(r.ctx, nil); err != nil {
		workflow.GetLogger(r.ctx).Error("update operation", "error", err)
	}
}
