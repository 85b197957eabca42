package instance

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays histories recorded from real runs (see recordHistories in
// platform/e2e_test.go) against today's workflow code: a change that would break runs in flight fails here
// and must go behind workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Lifecycle, Name: WorkflowName})
}
