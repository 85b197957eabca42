package instance

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
)

// rollbackRecorder keeps every state change (with its reason), every operation update and the order of the
// side effects a rollback asks for.
type rollbackRecorder struct {
	changes []activities.StateChange
	ops     []activities.OperationUpdate
	calls   []string
	autos   []activities.AutoSnapshot
}

func (r *rollbackRecorder) states() []domain.InstanceState {
	var out []domain.InstanceState
	for _, c := range r.changes {
		out = append(out, c.State)
	}
	return out
}

func (r *rollbackRecorder) last() activities.OperationUpdate { return r.ops[len(r.ops)-1] }

// script says how the mocked activities answer: flowsStart answers WaitReady per call (true = the flows
// run, and every call past the list succeeds); autoErr and applyErr (per snapshot) fail those activities.
type script struct {
	flowsStart []bool
	autoErr    error
	applyErr   map[string]error
}

// newRollbackEnv mocks every activity a rollback may call, as sc says.
func newRollbackEnv(t *testing.T, target activities.RollbackTarget, sc script) (*testsuite.TestWorkflowEnvironment, *rollbackRecorder) {
	flowsStart := sc.flowsStart
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Lifecycle)
	env.RegisterActivity(&activities.Instances{})
	env.RegisterActivity(&activities.Snapshots{})
	rec := &rollbackRecorder{}
	env.OnActivity(a.SetState, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.StateChange) error {
		rec.changes = append(rec.changes, c)
		return nil
	})
	env.OnActivity(a.UpdateOperation, mock.Anything, mock.Anything).Return(func(_ context.Context, u activities.OperationUpdate) error {
		rec.ops = append(rec.ops, u)
		return nil
	})
	env.OnActivity(sa.CheckRollback, mock.Anything, "i1", "s1").Return(target, nil).Maybe()
	env.OnActivity(sa.TakeAutoSnapshot, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.AutoSnapshot) error {
		if sc.autoErr != nil {
			return sc.autoErr
		}
		rec.calls = append(rec.calls, "auto snapshot")
		rec.autos = append(rec.autos, req)
		return nil
	}).Maybe()
	env.OnActivity(sa.ApplySnapshot, mock.Anything, "i1", mock.Anything).Return(func(_ context.Context, _, snapshotID string) error {
		if err := sc.applyErr[snapshotID]; err != nil {
			return err
		}
		rec.calls = append(rec.calls, "apply "+snapshotID)
		return nil
	}).Maybe()
	env.OnActivity(a.StopRuntime, mock.Anything, "i1").Return(func(context.Context, string) error {
		rec.calls = append(rec.calls, "stop")
		return nil
	}).Maybe()
	env.OnActivity(a.StartRuntime, mock.Anything, "i1", false).Return(func(context.Context, string, bool) (string, error) {
		rec.calls = append(rec.calls, "start")
		return "http://127.0.0.1:12000", nil
	}).Maybe()
	waits := 0
	env.OnActivity(a.WaitReady, mock.Anything, "i1", mock.Anything).Return(func(context.Context, string, bool) error {
		rec.calls = append(rec.calls, "wait")
		ok := waits >= len(flowsStart) || flowsStart[waits]
		waits++
		if !ok {
			return temporal.NewNonRetryableApplicationError("flows wait for missing node types; last output: Waiting for missing types to be registered: - no-such-node",
				activities.ErrTypeRuntime, nil)
		}
		return nil
	}).Maybe()
	env.OnActivity(a.ResetCrashes, mock.Anything, mock.Anything).Return(nil).Maybe()
	return env, rec
}

func rollbackParams() Params {
	return Params{InstanceID: "i1", TeamID: "t1", OperationID: "op1", Action: ActionRollback, SnapshotID: "s1"}
}

var running = activities.RollbackTarget{SnapshotName: "v1", State: domain.InstanceRunning, ShouldRun: true}

func TestRollbackSnapshotsFirstThenStopsAppliesAndStarts(t *testing.T) {
	env, rec := newRollbackEnv(t, running, script{})
	env.ExecuteWorkflow(Lifecycle, rollbackParams())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"auto snapshot", "stop", "apply s1", "start", "wait"}, rec.calls)
	assert.Equal(t, []domain.InstanceState{domain.InstanceRollback, domain.InstanceRollback, domain.InstanceRunning}, rec.states())
	require.Len(t, rec.autos, 1)
	auto := rec.autos[0]
	assert.Equal(t, AutoSnapshotBeforeRollback, auto.Name)
	assert.Contains(t, auto.Description, `"v1"`)
	assert.NotEmpty(t, auto.SnapshotID)
	assert.Equal(t, []string{"s1"}, auto.Spare, "retention never deletes the snapshot being restored")
	assert.Equal(t, domain.OperationSucceeded, rec.last().Status)
	assert.Equal(t, rollbackSteps, rec.last().Done)
	var res Result
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, domain.InstanceRunning, res.State)
}

func TestRollbackWhoseFlowsDoNotStartRestoresThePreviousFlows(t *testing.T) {
	env, rec := newRollbackEnv(t, running, script{flowsStart: []bool{false, true}})
	env.ExecuteWorkflow(Lifecycle, rollbackParams())
	err := env.GetWorkflowError()
	require.Error(t, err)
	auto := rec.autos[0].SnapshotID
	assert.Equal(t, []string{"auto snapshot", "stop", "apply s1", "start", "wait", "apply " + auto, "stop", "start", "wait"}, rec.calls,
		"the automatic snapshot goes back in and the runtime starts on it")
	final := rec.changes[len(rec.changes)-1]
	assert.Equal(t, domain.InstanceRunning, final.State, "the instance is left running, not broken")
	assert.Contains(t, final.Reason, "flows from before it run again")
	assert.Contains(t, final.Reason, "missing node types")
	assert.NotContains(t, rec.states(), domain.InstanceError)
	last := rec.last()
	assert.Equal(t, domain.OperationFailed, last.Status)
	assert.Contains(t, last.Error, "flows wait for missing node types", "the operation carries the runtime's error")
}

func TestRollbackThatCannotRestoreEndsInError(t *testing.T) {
	env, rec := newRollbackEnv(t, running, script{flowsStart: []bool{false, false}})
	env.ExecuteWorkflow(Lifecycle, rollbackParams())
	require.Error(t, env.GetWorkflowError())
	final := rec.changes[len(rec.changes)-1]
	assert.Equal(t, domain.InstanceError, final.State)
	assert.Contains(t, final.Reason, "starting the previous flows again failed too")
	assert.Equal(t, domain.OperationFailed, rec.last().Status)
}

func TestRollbackOfAStoppedInstanceOnlyReplacesItsContent(t *testing.T) {
	for _, state := range []domain.InstanceState{domain.InstanceStopped, domain.InstanceSuspended} {
		env, rec := newRollbackEnv(t, activities.RollbackTarget{SnapshotName: "v1", State: state}, script{})
		env.ExecuteWorkflow(Lifecycle, rollbackParams())
		require.NoError(t, env.GetWorkflowError())
		assert.Equal(t, []string{"auto snapshot", "apply s1"}, rec.calls, "no runtime is started")
		assert.Equal(t, []domain.InstanceState{domain.InstanceRollback, state}, rec.states())
		assert.Equal(t, domain.OperationSucceeded, rec.last().Status)
	}
}

func TestRollbackToAVanishedSnapshotTouchesNothing(t *testing.T) {
	env, rec := newRollbackEnv(t, running, script{})
	gone := temporal.NewNonRetryableApplicationError("The snapshot was not found.", activities.ErrTypeRejected, nil)
	env.OnActivity(sa.CheckRollback, mock.Anything, "i2", "s1").Return(activities.RollbackTarget{}, gone)
	p := rollbackParams()
	p.InstanceID = "i2"
	env.ExecuteWorkflow(Lifecycle, p)
	require.Error(t, env.GetWorkflowError())
	assert.Empty(t, rec.changes, "the instance's state is not touched")
	assert.Empty(t, rec.calls)
	assert.Equal(t, domain.OperationFailed, rec.last().Status)
	assert.Contains(t, rec.last().Error, "snapshot was not found")
}

func TestRollbackWhoseAutomaticSnapshotFailsChangesNothing(t *testing.T) {
	tooLarge := temporal.NewNonRetryableApplicationError("The snapshot would hold 25.0 MiB of flows and credentials; the limit is 20 MiB.", activities.ErrTypeRejected, nil)
	env, rec := newRollbackEnv(t, running, script{autoErr: tooLarge})
	env.ExecuteWorkflow(Lifecycle, rollbackParams())
	require.Error(t, env.GetWorkflowError())
	assert.Empty(t, rec.calls, "no stop, no write")
	assert.Equal(t, []domain.InstanceState{domain.InstanceRollback, domain.InstanceRunning}, rec.states())
	assert.Contains(t, rec.changes[1].Reason, "changed nothing")
	assert.Contains(t, rec.last().Error, "limit is 20 MiB")
}

func TestRollbackWhoseWriteIsRefusedStartsTheOldContentAgain(t *testing.T) {
	refused := temporal.NewNonRetryableApplicationError("The snapshot belongs to another application.", activities.ErrTypeRejected, nil)
	env, rec := newRollbackEnv(t, running, script{applyErr: map[string]error{"s1": refused}})
	env.ExecuteWorkflow(Lifecycle, rollbackParams())
	require.Error(t, env.GetWorkflowError())
	assert.Equal(t, []string{"auto snapshot", "stop", "start", "wait"}, rec.calls)
	assert.Equal(t, domain.InstanceRunning, rec.changes[len(rec.changes)-1].State)
	assert.Contains(t, rec.last().Error, "another application")
}
