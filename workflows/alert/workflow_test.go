package alert

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
)

// attempts counts each delivery's attempts and records the deliveries given up, with why.
type attempts struct {
	n       map[string]int
	gaveUp  map[string]string
	firstAt map[string]time.Time
	lastAt  map[string]time.Time
}

func run(t *testing.T, plan []activities.PlannedDelivery, deliver func(id string, attempt int) error) (*attempts, Result, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Deliver, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Alerts{})
	w := &attempts{n: map[string]int{}, gaveUp: map[string]string{}, firstAt: map[string]time.Time{}, lastAt: map[string]time.Time{}}
	env.OnActivity(a.PlanAlertDeliveries, mock.Anything, "ev-1").Return(plan, nil)
	env.OnActivity(a.DeliverAlert, mock.Anything, mock.Anything).Return(func(_ context.Context, id string) error {
		w.n[id]++
		if w.n[id] == 1 {
			w.firstAt[id] = env.Now()
		}
		w.lastAt[id] = env.Now()
		return deliver(id, w.n[id])
	})
	env.OnActivity(a.GiveUpAlertDelivery, mock.Anything, mock.Anything, mock.Anything).Return(func(_ context.Context, id, reason string) error {
		w.gaveUp[id] = reason
		return nil
	})
	env.ExecuteWorkflow(WorkflowName, Params{EventID: "ev-1", TeamID: "team-1"})
	require.True(t, env.IsWorkflowCompleted())
	var res Result
	err := env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return w, res, err
}

// TestDeliveriesRetryWithBackoffThenGiveUp: a receiver that keeps failing is tried 10 times over about 17
// minutes of back-off and then logged failed with its last error; one that recovers is delivered; a permanent
// failure is tried once; the deliveries do not wait for each other.
func TestDeliveriesRetryWithBackoffThenGiveUp(t *testing.T) {
	plan := []activities.PlannedDelivery{{ID: "down", Channel: "webhook"}, {ID: "flaky", Channel: "webhook"}, {ID: "nosmtp", Channel: "email"}}
	w, res, err := run(t, plan, func(id string, attempt int) error {
		switch {
		case id == "down":
			return errors.New("the receiver answered 503")
		case id == "flaky" && attempt < 3:
			return errors.New("connection refused")
		case id == "nosmtp":
			return temporal.NewNonRetryableApplicationError("no SMTP server is configured", activities.ErrTypeAlertPermanent, nil)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, Result{Delivered: 1, Failed: 2}, res)
	assert.Equal(t, map[string]int{"down": 10, "flaky": 3, "nosmtp": 1}, w.n)
	assert.Equal(t, map[string]string{"down": "the receiver answered 503", "nosmtp": "no SMTP server is configured"}, w.gaveUp)
	backoff := w.lastAt["down"].Sub(w.firstAt["down"])
	assert.Equal(t, (2+4+8+16+32+64+128+256+512)*time.Second, backoff, "2 s doubling, capped at 10 minutes")
}

func TestAnEventWithNoDestinationsDeliversNothing(t *testing.T) {
	w, res, err := run(t, nil, func(string, int) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, Result{}, res)
	assert.Empty(t, w.n)
}
