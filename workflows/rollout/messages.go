// Package rollout is the workflow that deploys a snapshot to a device group in waves: canary first, then
// larger waves, each dispatched in batches; it stops when failures pass a threshold and can return every
// device it changed to its previous snapshot. The store holds each device's part in the rollout (the source of
// truth); the workflow holds only counters, so its history does not grow with the fleet.
package rollout

import (
	"time"

	"github.com/flowyard/flowyard/domain"
)

// WorkflowName is the registered name of Rollout; histories depend on it.
const WorkflowName = "rollout"

// Update and query names.
const (
	UpdatePause   = "pause"
	UpdateResume  = "resume"
	UpdateAbort   = "abort"
	UpdateApprove = "approve"
	QueryProgress = "progress"
)

// UpdateAllowedIn names the statuses in which each operator Update is accepted; the workflow's validators
// refuse it in any other (the dashboard's copy is checked by web/vocabulary_test.go).
var UpdateAllowedIn = map[string][]domain.RolloutStatus{
	UpdatePause:   {domain.RolloutRunning, domain.RolloutAwaitingApproval},
	UpdateResume:  {domain.RolloutPaused},
	UpdateAbort:   {domain.RolloutRunning, domain.RolloutPaused, domain.RolloutAwaitingApproval},
	UpdateApprove: {domain.RolloutAwaitingApproval},
}

// Approval modes.
const (
	ApprovalNone         = "none"
	ApprovalBetweenWaves = "between-waves"
)

// Strategy says how a rollout proceeds.
type Strategy struct {
	Waves            []int         // cumulative percentages of the group, ending at 100
	BatchSize        int           // devices dispatched per activity
	FailureThreshold float64       // stop when failed / dispatched exceeds this (0..1)
	WaveTimeout      time.Duration // a device not running the snapshot by then has failed
	Approval         string        // none or between-waves
	AutoRollback     bool
}

// DefaultStrategy is canary 1%, then 10%, 50% and everyone.
func DefaultStrategy() Strategy {
	return Strategy{Waves: []int{1, 10, 50, 100}, BatchSize: 500, FailureThreshold: 0.05, WaveTimeout: 10 * time.Minute,
		Approval: ApprovalNone, AutoRollback: true}
}

// Params start a rollout. State carries progress across continue-as-new.
type Params struct {
	RolloutID   string
	GroupID     string
	TeamID      string
	SnapshotID  string
	OperationID string
	Strategy    Strategy
	State       *State
}

// State is everything the workflow remembers; it survives continue-as-new.
type State struct {
	Status      domain.RolloutStatus
	Wave        int // index of the current wave
	WaveSizes   []int
	Total       int
	Updated     int
	Failed      int
	Pending     int
	RolledBack  int
	Approved    int // waves approved so far
	Reason      string
	PausedFrom  domain.RolloutStatus
	AbortWanted bool
}

// Progress is the answer of the progress query.
type Progress struct {
	Status     domain.RolloutStatus
	Wave       int
	Waves      int
	Total      int
	Updated    int
	Failed     int
	Pending    int
	RolledBack int
	Reason     string
}

// WorkflowID derives the workflow ID from the rollout ID.
func WorkflowID(rolloutID string) string { return "rollout/" + rolloutID }
