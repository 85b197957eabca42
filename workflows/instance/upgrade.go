package instance

import (
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
)

// AutoSnapshotBeforeUpgrade names the automatic snapshot an upgrade takes first.
const AutoSnapshotBeforeUpgrade = "Auto snapshot before upgrade"

// upgradeSteps: automatic snapshot, stop, stack changed, runtime started, flows running.
const upgradeSteps = 5

// upgrade moves the instance to stack p.StackID (another Node-RED or Node.js version, other resources):
//  1. check that the instance may take the stack (it exists, is active, fits the instance type);
//  2. take an automatic snapshot of the instance's content (retention keeps the newest ten);
//  3. stop the runtime, if the instance should run;
//  4. record the new stack;
//  5. start the runtime on it and wait until the flows run.
//
// If the flows do not start on the new stack, the previous stack and the automatic snapshot come back (the
// new Node-RED may have rewritten flows and settings in its own format) and the runtime starts again: the
// operation fails with the runtime's error and the instance runs what it ran before. An instance that should
// not run (stopped, suspended) only has its stack changed, used at its next start. The persistent context
// is the instance's own throughout: neither the upgrade nor the way back touches it.
func (r *run) upgrade() (domain.InstanceState, error) {
	var target activities.UpgradeTarget
	check := workflow.WithActivityOptions(r.ctx, shortOptions)
	if err := workflow.ExecuteActivity(check, a.CheckUpgrade, r.p.InstanceID, r.p.StackID).Get(r.ctx, &target); err != nil {
		return r.keep("", err) // nothing was touched, not even the state
	}
	r.setState(activities.StateChange{InstanceID: r.p.InstanceID, State: domain.InstanceUpgrading})
	autoID := r.newID()
	auto := activities.AutoSnapshot{InstanceID: r.p.InstanceID, SnapshotID: autoID, Name: AutoSnapshotBeforeUpgrade,
		Description: "Taken automatically before moving from Node-RED " + target.FromVersion + " to " + target.ToVersion + "."}
	if err := r.exec(snapshotOptions, "automatic snapshot taken", sa.TakeAutoSnapshot, auto); err != nil {
		return r.putBack(target.State, err)
	}
	start, final, err := r.swap(target.ShouldRun, target.State, func() error {
		return r.exec(shortOptions, "stack changed", a.SetStack, r.p.InstanceID, r.p.StackID)
	})
	if !start {
		return final, err
	}
	state, err := r.start(domain.InstanceUpgrading, false, true)
	if err != nil {
		return r.downgrade(target.FromStackID, autoID, err)
	}
	return state, nil
}

// downgrade puts the previous stack and the automatic snapshot back after the flows did not start on the new
// stack, and starts the runtime on them again.
func (r *run) downgrade(fromStackID, autoID string, cause error) (domain.InstanceState, error) {
	if err := r.exec(runtimeOptions, "", a.StopRuntime, r.p.InstanceID); err != nil {
		return "", alsoFailed(cause, "stopping the runtime", err)
	}
	if err := r.exec(shortOptions, "", a.SetStack, r.p.InstanceID, fromStackID); err != nil {
		return "", alsoFailed(cause, "setting the previous stack back", err)
	}
	if err := r.exec(snapshotOptions, "", sa.ApplySnapshot, r.p.InstanceID, autoID); err != nil {
		return "", alsoFailed(cause, "writing back the previous flows", err)
	}
	return r.startPrevious(cause)
}
