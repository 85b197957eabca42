package instance

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

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
)

// The workflow tests mock every activity and record the state projection the workflow writes, so each test
// reads as the sequence of states an instance goes through.

type recorder struct {
	states []domain.InstanceState
	ops    []activities.OperationUpdate
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *recorder) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Lifecycle)
	env.RegisterActivity(&activities.Instances{})
	rec := &recorder{}
	env.OnActivity(a.SetState, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.StateChange) error {
		rec.states = append(rec.states, c.State)
		return nil
	})
	env.OnActivity(a.UpdateOperation, mock.Anything, mock.Anything).Return(func(_ context.Context, u activities.OperationUpdate) error {
		rec.ops = append(rec.ops, u)
		return nil
	})
	env.OnActivity(a.ResetCrashes, mock.Anything, mock.Anything).Return(nil).Maybe()
	return env, rec
}

func params(action Action) Params {
	return Params{InstanceID: "i1", TeamID: "t1", OperationID: "op1", Action: action}
}

func TestProvisionEndsRunning(t *testing.T) {
	env, rec := newEnv(t)
	env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return("http://127.0.0.1:12000", nil).Once()
	env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(Lifecycle, params(ActionProvision))
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []domain.InstanceState{domain.InstanceProvisioning, domain.InstanceRunning}, rec.states)
	last := rec.ops[len(rec.ops)-1]
	assert.Equal(t, domain.OperationSucceeded, last.Status)
	assert.Equal(t, last.Total, last.Done)
}

func TestRuntimeFailureEndsInErrorWithTheReason(t *testing.T) {
	env, rec := newEnv(t)
	env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return("http://127.0.0.1:12000", nil)
	failure := temporal.NewNonRetryableApplicationError("node-red exited: exited with code 1; last output: boom", activities.ErrTypeRuntime, nil)
	env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(failure).Once()
	env.ExecuteWorkflow(Lifecycle, params(ActionProvision))
	require.Error(t, env.GetWorkflowError())
	assert.Equal(t, []domain.InstanceState{domain.InstanceProvisioning, domain.InstanceError}, rec.states, "never left in an in-between state")
	last := rec.ops[len(rec.ops)-1]
	assert.Equal(t, domain.OperationFailed, last.Status)
	assert.Contains(t, last.Error, "last output: boom")
}

func TestTransientStartErrorsAreRetried(t *testing.T) {
	env, rec := newEnv(t)
	env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return("", errors.New("database is locked")).Once()
	env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return("http://127.0.0.1:12000", nil).Once()
	env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(nil)
	env.ExecuteWorkflow(Lifecycle, params(ActionStart))
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []domain.InstanceState{domain.InstanceStarting, domain.InstanceRunning}, rec.states)
}

func TestStopSuspendDeleteAndRestart(t *testing.T) {
	cases := []struct {
		action Action
		states []domain.InstanceState
	}{
		{ActionStop, []domain.InstanceState{domain.InstanceStopping, domain.InstanceStopped}},
		{ActionSuspend, []domain.InstanceState{domain.InstanceSuspending, domain.InstanceSuspended}},
		{ActionDelete, []domain.InstanceState{domain.InstanceDeleting}},
		{ActionRestart, []domain.InstanceState{domain.InstanceRestarting, domain.InstanceRestarting, domain.InstanceRunning}},
	}
	for _, tc := range cases {
		t.Run(string(tc.action), func(t *testing.T) {
			env, rec := newEnv(t)
			env.OnActivity(a.StopRuntime, mock.Anything, "i1").Return(nil).Maybe()
			env.OnActivity(a.RemoveInstance, mock.Anything, "i1").Return(nil).Maybe()
			env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return("u", nil).Maybe()
			env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(nil).Maybe()
			env.ExecuteWorkflow(Lifecycle, params(tc.action))
			require.NoError(t, env.GetWorkflowError())
			assert.Equal(t, tc.states, rec.states)
		})
	}
}

// TestRecoverBacksOffAndUsesSafeModeAfterRepeatedCrashes runs in virtual time: the back-off timer is skipped.
func TestRecoverBacksOffAndUsesSafeModeAfterRepeatedCrashes(t *testing.T) {
	for _, tc := range []struct {
		crashes int
		safe    bool
		wait    time.Duration
	}{{1, false, time.Second}, {SafeModeAfter, true, 30 * time.Second}, {7, true, 2 * time.Minute}} {
		env, rec := newEnv(t)
		env.OnActivity(a.RecordCrash, mock.Anything, "i1").Return(activities.CrashInfo{Count: tc.crashes, Reason: "exited with code 1"}, nil)
		var startedAt time.Time
		env.OnActivity(a.StartRuntime, mock.Anything, "i1", tc.safe).Return(func(ctx context.Context, id string, safe bool) (string, error) {
			startedAt = env.Now()
			return "u", nil
		}).Once()
		env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(nil)
		begin := env.Now()
		env.ExecuteWorkflow(Lifecycle, params(ActionRecover))
		require.NoError(t, env.GetWorkflowError())
		assert.Equal(t, []domain.InstanceState{domain.InstanceCrashed, domain.InstanceStarting, domain.InstanceRunning}, rec.states)
		assert.GreaterOrEqual(t, startedAt.Sub(begin), tc.wait, "restart waits the back-off")
		env.AssertExpectations(t)
	}
}

func TestUnknownActionIsRefused(t *testing.T) {
	env, _ := newEnv(t)
	env.ExecuteWorkflow(Lifecycle, params("explode"))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	assert.True(t, appErr.NonRetryable())
}
