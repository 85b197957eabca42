package alert

import (
	"testing"

	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestReplayRecordedHistories replays deliveries recorded from the end-to-end test (an e-mail and a webhook
// whose receiver failed once, so the webhook's activity was retried), and from the throttling test a throttled
// event (its plan makes nothing) and a summary, against today's code: a change that would
// break runs in flight fails here and must go behind workflow.GetVersion. Re-record with
// FLOWYARD_RECORD_HISTORIES=1 go test ./platform -run 'TestAlertDeliveryOnTheTemporalDevServer|TestAThrottledStorm'.
func TestReplayRecordedHistories(t *testing.T) {
	replaytest.Run(t, replaytest.Workflow{Fn: Deliver, Name: WorkflowName})
}
