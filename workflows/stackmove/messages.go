// Package stackmove is the workflow that moves every instance of one stack to another (a Node-RED upgrade
// of the whole fleet), in waves: each instance is upgraded by its own lifecycle workflow (instance/<id>,
// action upgrade: snapshot, new stack, restart, wait for the flows, back to the old stack if they do not
// start), a few at a time, and the move stops when failures pass a threshold. The store holds each instance's
// part (the source of truth); the workflow keeps counters, as a rollout does (workflows/waves).
package stackmove

import "github.com/flowyard/flowyard/domain"

// WorkflowName is the registered name of Move; histories depend on it.
const WorkflowName = "stack.move"

// QueryProgress answers the move's Progress.
const QueryProgress = "progress"

// Strategy says how a move proceeds.
type Strategy struct {
	Waves            []int   // cumulative percentages of the stack's instances, ending at 100
	FailureThreshold float64 // stop when failed / finished exceeds this (0..1)
	Concurrency      int     // instances upgraded at once
}

// DefaultStrategy is a tenth first, then half, then everyone, four at a time, stopping past 10% failures.
func DefaultStrategy() Strategy {
	return Strategy{Waves: []int{10, 50, 100}, FailureThreshold: 0.1, Concurrency: 4}
}

// Params start a move. State carries progress across continue-as-new.
type Params struct {
	MoveID        string
	FromStackID   string
	ToStackID     string
	OperationID   string
	CreatedBy     string // the admin who asked; recorded on each instance's upgrade operation
	InstanceQueue string // where the instances' lifecycle workflows run
	Strategy      Strategy
	State         *State
}

// State is everything the workflow remembers; it survives continue-as-new.
type State struct {
	Status    domain.StackMoveStatus
	Wave      int // index of the current wave
	WaveSizes []int
	Total     int
	Moved     int
	Failed    int
	Skipped   int
	Pending   int
	Reason    string
}

// Progress is the answer of the progress query and the workflow's result.
type Progress struct {
	Status                                              domain.StackMoveStatus
	Wave, Waves, Total, Moved, Failed, Skipped, Pending int
	Reason                                              string
}

// WorkflowID derives the workflow ID from the move's ID.
func WorkflowID(moveID string) string { return "stack-move/" + moveID }
