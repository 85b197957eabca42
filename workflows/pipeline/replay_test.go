package pipeline

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays promotions recorded from the end-to-end test (an approved promotion
// into an instance, a cancelled schedule, a scheduled promotion into a device group) against today's code: a
// change that would break runs in flight fails here and must go behind workflow.GetVersion. Re-record with
// FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run TestPipelineEndToEnd.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Promote, Name: WorkflowName})
}
