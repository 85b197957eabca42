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

// newUpgradeEnv is newRollbackEnv with the upgrade's own activities: CheckUpgrade answers target (or
// refuses), SetStack records the stack it is given.
func newUpgradeEnv(t *testing.T, target activities.UpgradeTarget, refuse error, sc script) (*testsuite.TestWorkflowEnvironment, *rollbackRecorder) {
	env, rec := newRollbackEnv(t, running, sc)
	env.OnActivity(a.CheckUpgrade, mock.Anything, "i1", "new-stack").Return(target, refuse)
	env.OnActivity(a.SetStack, mock.Anything, "i1", mock.Anything).Return(func(_ context.Context, _, stackID string) error {
		rec.calls = append(rec.calls, "stack "+stackID)
		return nil
	}).Maybe()
	return env, rec
}

func upgradeParams() Params {
	return Params{InstanceID: "i1", TeamID: "t1", OperationID: "op1", Action: ActionUpgrade, StackID: "new-stack"}
}

var runningOnOld = activities.UpgradeTarget{FromStackID: "old-stack", FromVersion: "4.1.14", ToVersion: "4.1.15", State: domain.InstanceRunning, ShouldRun: true}

func TestUpgradeSnapshotsFirstThenStopsChangesTheStackAndStarts(t *testing.T) {
	env, rec := newUpgradeEnv(t, runningOnOld, nil, script{})
	env.ExecuteWorkflow(Lifecycle, upgradeParams())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"auto snapshot", "stop", "stack new-stack", "start", "wait"}, rec.calls)
	assert.Equal(t, []domain.InstanceState{domain.InstanceUpgrading, domain.InstanceUpgrading, domain.InstanceRunning}, rec.states())
	require.Len(t, rec.autos, 1)
	assert.Equal(t, AutoSnapshotBeforeUpgrade, rec.autos[0].Name)
	assert.Contains(t, rec.autos[0].Description, "from Node-RED 4.1.14 to 4.1.15")
	assert.False(t, rec.autos[0].WithContext, "an upgrade leaves the persistent context alone")
	assert.Equal(t, domain.OperationSucceeded, rec.last().Status)
	assert.Equal(t, upgradeSteps, rec.last().Done)
}

func TestUpgradeWhoseFlowsDoNotStartPutsTheOldStackAndFlowsBack(t *testing.T) {
	env, rec := newUpgradeEnv(t, runningOnOld, nil, script{flowsStart: []bool{false, true}})
	env.ExecuteWorkflow(Lifecycle, upgradeParams())
	require.Error(t, env.GetWorkflowError())
	auto := rec.autos[0].SnapshotID
	assert.Equal(t, []string{"auto snapshot", "stop", "stack new-stack", "start", "wait", "stop", "stack old-stack", "apply " + auto, "start", "wait"}, rec.calls,
		"the old stack and the automatic snapshot come back, and the runtime starts on them")
	final := rec.changes[len(rec.changes)-1]
	assert.Equal(t, domain.InstanceRunning, final.State, "the instance is left running, not broken")
	assert.Contains(t, final.Reason, "the upgrade failed and the instance runs its previous stack and flows again")
	assert.Contains(t, final.Reason, "missing node types")
	assert.NotContains(t, rec.states(), domain.InstanceError)
	assert.Equal(t, domain.OperationFailed, rec.last().Status)
	assert.Contains(t, rec.last().Error, "missing node types", "the operation carries the runtime's error")
}

func TestUpgradeThatCannotGoBackEndsInError(t *testing.T) {
	env, rec := newUpgradeEnv(t, runningOnOld, nil, script{flowsStart: []bool{false, false}})
	env.ExecuteWorkflow(Lifecycle, upgradeParams())
	require.Error(t, env.GetWorkflowError())
	final := rec.changes[len(rec.changes)-1]
	assert.Equal(t, domain.InstanceError, final.State)
	assert.Contains(t, final.Reason, "starting the previous flows again failed too")
}

func TestUpgradeOfAStoppedInstanceOnlyChangesItsStack(t *testing.T) {
	stopped := runningOnOld
	stopped.State, stopped.ShouldRun = domain.InstanceStopped, false
	env, rec := newUpgradeEnv(t, stopped, nil, script{})
	env.ExecuteWorkflow(Lifecycle, upgradeParams())
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"auto snapshot", "stack new-stack"}, rec.calls, "nothing is started; the next start uses the new stack")
	assert.Equal(t, domain.InstanceStopped, rec.changes[len(rec.changes)-1].State)
}

func TestUpgradeToAStackTheInstanceMayNotTakeChangesNothing(t *testing.T) {
	refused := temporal.NewNonRetryableApplicationError("The stack is no longer offered for new instances or stack changes.", activities.ErrTypeRejected, nil)
	env, rec := newUpgradeEnv(t, activities.UpgradeTarget{}, refused, script{})
	env.ExecuteWorkflow(Lifecycle, upgradeParams())
	require.Error(t, env.GetWorkflowError())
	assert.Empty(t, rec.calls)
	assert.Empty(t, rec.changes, "not even the state moved")
	assert.Contains(t, rec.last().Error, "no longer offered")
}
