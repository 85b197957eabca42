package snapshotschedule

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays a scheduled snapshot recorded on the dev server (a run with retention
// pruning the oldest automatic snapshot) against today's code: a change that would break runs in flight fails
// here and must go behind workflow.GetVersion. Record again with
// FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run TestSnapshotScheduleOnTheTemporalDevServer.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Scheduled, Name: WorkflowName})
}
