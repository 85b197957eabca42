package rollout

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays rollouts recorded on the dev server (platform/rollout_devserver_test.go:
// three waves, a rollback after a failed canary, a pause, resume and abort while awaiting approval, recorded
// before and after 2026-12-07-answer-updates-before-finishing, and a rollout that continued as new, its first run
// and its last) against today's code: a change that would break runs in flight fails here and must go behind
// workflow.GetVersion. Record again with FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run
// 'TestRollout.*OnTheTemporalDevServer' (replay_abort.json, from before that change, is kept as it is).
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Rollout, Name: WorkflowName})
}
