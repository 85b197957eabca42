package pipeline

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays promotions recorded from the end-to-end test (an approved promotion
// into an instance, a cancelled schedule, a scheduled promotion into a device group) against today's code: a
// change that would break runs in flight fails here and must go behind workflow.GetVersion. Re-record with
// FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run TestPipelineEndToEnd.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/replay_*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Promote, workflow.RegisterOptions{Name: WorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
