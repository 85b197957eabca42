// Package instance is the lifecycle workflow of one hosted Node-RED instance. Every action on an instance
// (provision, start, stop, restart, suspend, delete, recover after a crash) runs as one workflow execution with
// the ID instance/<id>, so two actions on one instance never interleave: a second one is refused while the first
// runs.
package instance

import (
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
)

// WorkflowName is the registered name of Lifecycle; histories depend on it, so it never changes.
const WorkflowName = "instance.lifecycle"

// Action is what a lifecycle run does.
type Action string

// Actions.
const (
	ActionProvision Action = "provision"
	ActionStart     Action = "start"
	ActionStop      Action = "stop"
	ActionRestart   Action = "restart"
	ActionSuspend   Action = "suspend"
	ActionDelete    Action = "delete"
	ActionRecover   Action = "recover"  // restart after an unexpected exit, with back-off
	ActionRollback  Action = "rollback" // restore a snapshot (Params.SnapshotID); see rollback.go
	ActionUpgrade   Action = "upgrade"  // move to another stack (Params.StackID); see upgrade.go
)

// UserActions are the actions a user may ask for through the API.
var UserActions = map[string]Action{"start": ActionStart, "stop": ActionStop, "restart": ActionRestart, "suspend": ActionSuspend}

// ErrUnknownAction is the failure of a run asked for an action this version does not know.
const ErrUnknownAction = facade.InvalidArgument

// Params start a lifecycle run.
type Params struct {
	InstanceID  string
	TeamID      string
	OperationID string
	Action      Action
	SnapshotID  string // the snapshot ActionRollback restores
	// Promote makes ActionRollback a pipeline promotion: env merges instead of being replaced (see
	// snapshots.PromotedEnv). Runs started before the field existed decode it as false and replay unchanged.
	Promote bool
	// StackID is the stack ActionUpgrade moves the instance to.
	StackID string
}

// Result is the state a run left the instance in.
type Result struct {
	State domain.InstanceState
}

// WorkflowID derives the workflow ID from the instance ID.
func WorkflowID(instanceID string) string { return "instance/" + instanceID }

// SafeModeAfter is how many crashes in a row make the next start use Node-RED's safe mode (flows loaded, not run).
const SafeModeAfter = 3
