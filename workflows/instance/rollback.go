package instance

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
)

var sa *activities.Snapshots

// AutoSnapshotBeforeRollback names the automatic snapshot a rollback takes first.
const AutoSnapshotBeforeRollback = "Auto snapshot before rollback"

// rollbackSteps: automatic snapshot, stop, apply, runtime started, flows running.
const rollbackSteps = 5

// snapshotOptions: capturing or writing up to 20 MiB in one transaction takes seconds at most; the activities
// heartbeat, so a worker that dies in the middle is noticed in seconds and the activity runs again elsewhere
// (the transaction it was in never commits).
var snapshotOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	HeartbeatTimeout:    10 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
}

// rollback restores snapshot p.SnapshotID into the instance:
//  1. check that the snapshot may go into the instance (it exists, same application);
//  2. take an automatic snapshot of what the instance holds now (retention keeps the newest ten);
//  3. stop the runtime, if the instance should run, so it cannot save its flows over the restored ones;
//  4. write the snapshot's flows, credentials, settings, env and modules in one transaction;
//  5. start the runtime and wait until the flows run.
//
// If the restored flows do not start, the automatic snapshot is written back and the runtime started again:
// the operation fails with the runtime's error and the instance runs what it ran before. An instance that
// should not run (stopped, suspended) only has its content replaced and keeps its state.
func (r *run) rollback() (domain.InstanceState, error) {
	var target activities.RollbackTarget
	check := workflow.WithActivityOptions(r.ctx, shortOptions)
	if err := workflow.ExecuteActivity(check, sa.CheckRollback, r.p.InstanceID, r.p.SnapshotID).Get(r.ctx, &target); err != nil {
		return r.keep("", err) // nothing was touched, not even the state
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceRollback})
	autoID := r.newID()
	auto := activities.AutoSnapshot{InstanceID: r.p.InstanceID, SnapshotID: autoID, Name: AutoSnapshotBeforeRollback,
		Description: "Taken automatically before rolling back to \"" + target.SnapshotName + "\".", Spare: []string{r.p.SnapshotID},
		WithContext: target.HasContext}
	if err := r.exec(snapshotOptions, "automatic snapshot taken", sa.TakeAutoSnapshot, auto); err != nil {
		return r.putBack(target.State, err)
	}
	apply := sa.ApplySnapshot
	if r.p.Promote {
		apply = sa.PromoteSnapshot
	}
	start, final, err := r.swap(target.ShouldRun, target.State, func() error {
		// A failed write committed nothing: the instance still holds its own content.
		return r.exec(snapshotOptions, "snapshot applied", apply, r.p.InstanceID, r.p.SnapshotID)
	})
	if !start {
		return final, err
	}
	state, err := r.start(domain.InstanceRollback, false, true)
	if err != nil {
		return r.restore(autoID, err)
	}
	return state, nil
}

// swap is what a rollback and an upgrade share once the automatic snapshot is taken: stop the runtime if the
// instance should run, then write (the snapshot's content, the new stack). A failed write changed nothing, so
// the instance is put back as it was. An instance that should not run keeps its state and takes what was
// written at its next start. swap reports whether the runtime should now start on what was written; when not,
// final and err are the run's result.
func (r *run) swap(shouldRun bool, state domain.InstanceState, write func() error) (start bool, final domain.InstanceState, err error) {
	if shouldRun {
		if err := r.exec(runtimeOptions, "stopped", a.StopRuntime, r.p.InstanceID); err != nil {
			return false, "", err
		}
	}
	if err := write(); err != nil {
		if !shouldRun {
			final, err = r.putBack(state, err)
		} else {
			final, err = r.startPrevious(err)
		}
		return false, final, err
	}
	if !shouldRun {
		r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: state})
		return false, state, nil
	}
	return true, "", nil
}

// restore writes the automatic snapshot back after the restored flows failed to start, and starts the runtime
// on it again.
func (r *run) restore(autoID string, cause error) (domain.InstanceState, error) {
	if err := r.exec(snapshotOptions, "", sa.ApplySnapshot, r.p.InstanceID, autoID); err != nil {
		return "", alsoFailed(cause, "writing back the previous flows", err)
	}
	if err := r.exec(runtimeOptions, "", a.StopRuntime, r.p.InstanceID); err != nil {
		return "", alsoFailed(cause, "stopping the runtime", err)
	}
	return r.startPrevious(cause)
}

// startPrevious starts the runtime on the content (and stack) the instance held before the rollback or
// upgrade, and fails the operation with cause while leaving the instance running.
func (r *run) startPrevious(cause error) (domain.InstanceState, error) {
	during, restored := domain.InstanceRollback, "the rollback failed and the flows from before it run again: "
	if r.p.Action == ActionUpgrade {
		during, restored = domain.InstanceUpgrading, "the upgrade failed and the instance runs its previous stack and flows again: "
	}
	if _, err := r.start(during, false, true); err != nil {
		return "", alsoFailed(cause, "starting the previous flows again", err)
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceRunning, Reason: restored + facade.Message(cause)})
	return r.keep(domain.InstanceRunning, cause)
}

// putBack writes the state the instance had before a rollback or upgrade that changed nothing, with the reason.
func (r *run) putBack(state domain.InstanceState, cause error) (domain.InstanceState, error) {
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: state,
		Reason: "the " + string(r.p.Action) + " failed and changed nothing: " + facade.Message(cause)})
	return r.keep(state, cause)
}

// keep fails the run without marking the instance failed: its state is already what it should be.
func (r *run) keep(state domain.InstanceState, cause error) (domain.InstanceState, error) {
	r.kept = &state
	return state, cause
}

// alsoFailed reports that putting the instance back failed too; the instance then ends in the error state.
func alsoFailed(cause error, what string, err error) error {
	return temporal.NewNonRetryableApplicationError(facade.Message(cause)+"; "+what+" failed too: "+facade.Message(err), activities.ErrTypeRuntime, errors.Join(cause, err))
}

// newID draws a fresh ID once and records it in the history, so a replay sees the same one.
func (r *run) newID() string {
	var id string
	if err := workflow.SideEffect(r.ctx, func(workflow.Context) any { return domain.NewID() }).Get(&id); err != nil {
		panic(err) // a string recorded by this workflow always decodes
	}
	return id
}
