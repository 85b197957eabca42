package billing

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	billingsvc "github.com/flowyard/flowyard/billing"
)

// The workflow tests mock every activity and run in virtual time: a 14-day trial takes no real time.

func newEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Team, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Billing{})
	return env
}

func TestUsageChangesAreDebouncedIntoOneSync(t *testing.T) {
	env := newEnv()
	env.OnActivity(a.TeamState, mock.Anything, "t1").Return(billingsvc.State{Status: "active"}, nil)
	var syncs []activities.SyncRequest
	var syncedAt []time.Time
	env.OnActivity(a.SyncUsage, mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.SyncRequest) (billingsvc.SyncResult, error) {
		syncs = append(syncs, r)
		syncedAt = append(syncedAt, env.Now())
		return billingsvc.SyncResult{}, nil
	})
	start := env.Now()
	for i := range 100 {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalUsageChanged, nil) }, time.Second+time.Duration(i)*20*time.Millisecond)
	}
	// A second burst after the first sync: one more sync.
	for i := range 10 {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalUsageChanged, nil) }, time.Minute+time.Duration(i)*time.Millisecond)
	}
	env.ExecuteWorkflow(Team, Params{TeamID: "t1", Debounce: 5 * time.Second, IdleTimeout: 10 * time.Minute})
	require.NoError(t, env.GetWorkflowError(), "the workflow ends once idle")
	require.Len(t, syncs, 2, "110 changes in two bursts: two syncs")
	assert.False(t, syncs[0].Reconcile)
	assert.NotEqual(t, syncs[0].Key, syncs[1].Key, "each sync has its own idempotency key")
	assert.Equal(t, 6*time.Second, syncedAt[0].Sub(start).Truncate(time.Second), "the first change opens a 5 s window")
	assert.GreaterOrEqual(t, env.Now().Sub(start), 10*time.Minute, "it idled before ending")
}

func TestTrialEndsByDurableTimerAndSuspends(t *testing.T) {
	env := newEnv()
	start := env.Now()
	ends := start.Add(14 * 24 * time.Hour)
	env.OnActivity(a.TeamState, mock.Anything, "t1").Return(billingsvc.State{Status: "trial", TrialEndsAt: &ends}, nil).Once()
	var endedAt time.Time
	env.OnActivity(a.EndTrial, mock.Anything, "t1").Return(func(context.Context, string) (billingsvc.State, error) {
		endedAt = env.Now()
		return billingsvc.State{Status: "trial_ended", Suspend: true}, nil
	}).Once()
	env.OnActivity(a.SuspendInstances, mock.Anything, "t1", "subscription trial_ended").Return(2, nil).Once()
	env.ExecuteWorkflow(Team, Params{TeamID: "t1", IdleTimeout: time.Hour})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	assert.False(t, endedAt.Before(ends), "the trial ends when it is due, not before")
	assert.Less(t, endedAt.Sub(ends), time.Minute)
}

func TestTrialMovedLaterIsRearmedAndConversionCancelsIt(t *testing.T) {
	env := newEnv()
	start := env.Now()
	first, later := start.Add(24*time.Hour), start.Add(48*time.Hour)
	state := billingsvc.State{Status: "trial", TrialEndsAt: &first}
	env.OnActivity(a.TeamState, mock.Anything, "t1").Return(func(context.Context, string) (billingsvc.State, error) { return state, nil })
	env.OnActivity(a.SyncUsage, mock.Anything, mock.Anything).Return(billingsvc.SyncResult{}, nil)
	// An admin moves the trial's end a day later, then the team subscribes before it ends.
	env.RegisterDelayedCallback(func() {
		state = billingsvc.State{Status: "trial", TrialEndsAt: &later}
		env.SignalWorkflow(SignalStatusChanged, nil)
	}, 12*time.Hour)
	env.RegisterDelayedCallback(func() {
		state = billingsvc.State{Status: "active", Subscribed: true}
		env.SignalWorkflow(SignalStatusChanged, nil)
	}, 36*time.Hour)
	env.ExecuteWorkflow(Team, Params{TeamID: "t1", IdleTimeout: time.Hour})
	require.NoError(t, env.GetWorkflowError())
	env.AssertNotCalled(t, "EndTrial", mock.Anything, mock.Anything)
	env.AssertNumberOfCalls(t, "SyncUsage", 1) // the new subscription's items are synced once
}

func TestCancelledSubscriptionSuspendsAtOnceAndReconcileAudits(t *testing.T) {
	env := newEnv()
	state := billingsvc.State{Status: "active", Subscribed: true}
	env.OnActivity(a.TeamState, mock.Anything, "t1").Return(func(context.Context, string) (billingsvc.State, error) { return state, nil })
	var reconciles int
	env.OnActivity(a.SyncUsage, mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.SyncRequest) (billingsvc.SyncResult, error) {
		if r.Reconcile {
			reconciles++
		}
		return billingsvc.SyncResult{}, nil
	})
	env.OnActivity(a.SuspendInstances, mock.Anything, "t1", "subscription canceled").Return(3, nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		state = billingsvc.State{Status: "canceled", Suspend: true}
		env.SignalWorkflow(SignalStatusChanged, nil)
	}, 2*time.Minute)
	env.ExecuteWorkflow(Team, Params{TeamID: "t1", IdleTimeout: time.Hour})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	assert.Equal(t, 1, reconciles)
}

func TestContinuesAsNewCarryingPendingWork(t *testing.T) {
	env := newEnv()
	env.OnActivity(a.TeamState, mock.Anything, "t1").Return(billingsvc.State{Status: "active"}, nil)
	env.OnActivity(a.SyncUsage, mock.Anything, mock.Anything).Return(billingsvc.SyncResult{}, nil)
	env.SetContinueAsNewSuggested(true)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalUsageChanged, nil) }, time.Second)
	env.ExecuteWorkflow(Team, Params{TeamID: "t1", Seq: 7})
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "continue as new")
}
