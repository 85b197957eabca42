package stackmove

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays histories recorded from real runs (replaytest.RecordAt in
// platform/upgrades_e2e_test.go) against today's workflow code: a change that would break runs in flight fails
// here and must go behind workflow.GetVersion. Record again with
// FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run TestStackMoveEndToEnd.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Move, Name: WorkflowName})
}
