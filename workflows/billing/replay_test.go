package billing

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays histories recorded on the dev server (worker/billing_e2e_test.go: a team's
// workflow through a burst of usage, a reconciliation and a cancellation, and the reconciliation the Schedule
// ran) against today's workflow code: a change that would break runs in flight fails here and must go behind
// workflow.GetVersion. Record again with FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run TestBillingOnTheTemporalDevServer.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Team, Name: WorkflowName}, replaytest.Workflow{Fn: Reconcile, Name: ReconcileWorkflowName})
}
