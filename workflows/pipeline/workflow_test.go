package pipeline

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
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// world records what the promotion did: the store it saved into, the children it ran.
type world struct {
	saved       []activities.PromotionProgress
	plannedAt   time.Time
	instances   []instance.Params
	devices     []string
	rollouts    []rollout.Params
	rolloutEnds domain.RolloutStatus
	planErr     error
	toDevices   bool
}

var start = time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, w *world, targets []domain.StageTarget) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.RegisterWorkflowWithOptions(Promote, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, p instance.Params) (instance.Result, error) {
		w.instances = append(w.instances, p)
		return instance.Result{State: domain.InstanceRunning}, nil
	}, workflow.RegisterOptions{Name: instance.WorkflowName})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, p rollout.Params) (rollout.Progress, error) {
		w.rollouts = append(w.rollouts, p)
		return rollout.Progress{Status: w.rolloutEnds, Reason: "canary failed"}, nil
	}, workflow.RegisterOptions{Name: rollout.WorkflowName})
	env.RegisterActivity(&activities.Pipelines{})
	env.OnActivity(a.PlanPromotion, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.PlanRequest) (activities.PromotionPlan, error) {
		w.plannedAt = env.Now()
		if w.planErr != nil {
			return activities.PromotionPlan{}, w.planErr
		}
		return activities.PromotionPlan{SnapshotID: "snap-1", Targets: targets, DeployToDevices: w.toDevices}, nil
	})
	env.OnActivity(a.SavePromotionProgress, mock.Anything, mock.Anything).Return(func(_ context.Context, pp activities.PromotionProgress) error {
		w.saved = append(w.saved, pp)
		return nil
	})
	env.OnActivity(a.RecordTargetOperation, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.SetDeviceTarget, mock.Anything, mock.Anything, mock.Anything).Return(func(_ context.Context, id, snap string) error {
		w.devices = append(w.devices, id+"="+snap)
		return nil
	})
	env.OnActivity(a.RecordGroupRollout, mock.Anything, mock.Anything).Return("team-1", nil)
	env.OnActivity(a.DeployToInstanceDevices, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.InstanceDevicesDeploy) (int, error) {
		w.devices = append(w.devices, req.InstanceID+"="+req.PromotedSnapshotID)
		return 3, nil
	})
	return env
}

func (w *world) statuses() []domain.PromotionStatus {
	var out []domain.PromotionStatus
	for _, s := range w.saved {
		if len(out) == 0 || out[len(out)-1] != s.Status {
			out = append(out, s.Status)
		}
	}
	return out
}

// update sends an Update after delay and reports its outcome into *rejected (nil: accepted).
func update(env *testsuite.TestWorkflowEnvironment, delay time.Duration, name string, d Decision, rejected *error) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { *rejected = err },
			OnAccept:   func() {},
			OnComplete: func(any, error) {},
		}, d)
	}, delay)
}

var everyKind = []domain.StageTarget{{Kind: domain.TargetInstance, ID: "staging"}, {Kind: domain.TargetDevice, ID: "edge-1"},
	{Kind: domain.TargetDeviceGroup, ID: "fleet"}}

func TestApprovedScheduledPromotionRunsAtItsTimeIntoEveryTarget(t *testing.T) {
	w := &world{rolloutEnds: domain.RolloutSucceeded}
	env := newEnv(t, w, everyKind)
	at := start.Add(48 * time.Hour)
	var bySelf, byMember, byOwner error
	update(env, time.Hour, UpdateApprove, Decision{UserID: "alice", Role: "owner"}, &bySelf)
	update(env, 2*time.Hour, UpdateApprove, Decision{UserID: "bob", Role: "member"}, &byMember)
	update(env, 30*time.Hour, UpdateApprove, Decision{UserID: "carol", Role: "owner"}, &byOwner)
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1", TeamID: "team-1", RequestedBy: "alice", At: at,
		RequiresApproval: true, ApproverRole: "owner", ForbidSelfApproval: true})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assert.ErrorIs(t, bySelf, errSelfApproval)
	assert.ErrorIs(t, byMember, errRole)
	assert.NoError(t, byOwner)

	var got Progress
	require.NoError(t, env.GetWorkflowResult(&got))
	assert.Equal(t, domain.PromotionSucceeded, got.Status)
	assert.Equal(t, "carol", got.DecidedBy)
	assert.False(t, w.plannedAt.Before(at), "the snapshot is resolved at the scheduled time, not before")
	assert.Equal(t, []domain.PromotionStatus{domain.PromotionAwaitingApproval, domain.PromotionScheduled, domain.PromotionRunning, domain.PromotionSucceeded}, w.statuses())
	require.Len(t, w.instances, 1)
	assert.Equal(t, instance.Params{InstanceID: "staging", TeamID: "team-1", OperationID: w.instances[0].OperationID,
		Action: instance.ActionRollback, SnapshotID: "snap-1", Promote: true}, w.instances[0])
	assert.Equal(t, []string{"edge-1=snap-1"}, w.devices)
	require.Len(t, w.rollouts, 1)
	assert.Equal(t, "fleet", w.rollouts[0].GroupID)
	for _, r := range got.Results {
		assert.Equal(t, domain.PromotionTargetSucceeded, r.Status, r.ID)
	}
}

func TestRejectedPromotionTouchesNothing(t *testing.T) {
	w := &world{}
	env := newEnv(t, w, everyKind)
	var rejected error
	update(env, 24*time.Hour, UpdateReject, Decision{UserID: "carol", Role: "owner"}, &rejected)
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1", RequestedBy: "alice", RequiresApproval: true, ApproverRole: "owner"})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, rejected)
	var got Progress
	require.NoError(t, env.GetWorkflowResult(&got))
	assert.Equal(t, domain.PromotionRejected, got.Status)
	assert.True(t, w.plannedAt.IsZero())
	assert.Empty(t, w.instances)
}

func TestScheduledPromotionCanBeCanceledUntilItsTime(t *testing.T) {
	w := &world{}
	env := newEnv(t, w, everyKind)
	var early error
	update(env, time.Hour, UpdateCancel, Decision{UserID: "alice"}, &early)
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1", RequestedBy: "alice", At: start.Add(8 * time.Hour)})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, early)
	var got Progress
	require.NoError(t, env.GetWorkflowResult(&got))
	assert.Equal(t, domain.PromotionCanceled, got.Status)
	assert.True(t, w.plannedAt.IsZero(), "nothing was resolved or deployed")

	w2 := &world{rolloutEnds: domain.RolloutSucceeded}
	env2 := newEnv(t, w2, everyKind[:1])
	env2.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p2", RequestedBy: "alice", At: start.Add(8 * time.Hour)})
	require.NoError(t, env2.GetWorkflowError())
	assert.Len(t, w2.instances, 1, "at its time the promotion ran")
}

func TestPromotionWhoseSourceWentAwayFailsWithTheReason(t *testing.T) {
	w := &world{planErr: temporal.NewNonRetryableApplicationError("The source instance of this promotion no longer exists.", activities.ErrTypeRejected, nil)}
	env := newEnv(t, w, everyKind)
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1", At: start.Add(time.Hour)})
	require.Error(t, env.GetWorkflowError())
	last := w.saved[len(w.saved)-1]
	assert.Equal(t, domain.PromotionFailed, last.Status)
	assert.Equal(t, "The source instance of this promotion no longer exists.", last.Reason)
}

func TestAFailedTargetDoesNotStopTheOthers(t *testing.T) {
	w := &world{rolloutEnds: domain.RolloutRolledBack}
	targets := []domain.StageTarget{{Kind: domain.TargetDeviceGroup, ID: "fleet"}, {Kind: domain.TargetDevice, ID: "edge-1"}}
	env := newEnv(t, w, targets)
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1"})
	err := env.GetWorkflowError()
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app))
	assert.Contains(t, app.Message(), "1 of 2 targets failed")
	last := w.saved[len(w.saved)-1]
	assert.Equal(t, domain.PromotionTargetFailed, last.Results[0].Status)
	assert.Contains(t, last.Results[0].Detail, "rolled_back")
	assert.Equal(t, domain.PromotionTargetSucceeded, last.Results[1].Status)
}

func TestDeployToDevicesPassesTheSnapshotOnFromEachInstance(t *testing.T) {
	w := &world{toDevices: true}
	env := newEnv(t, w, everyKind[:1])
	env.ExecuteWorkflow(WorkflowName, Params{PromotionID: "p1"})
	require.NoError(t, env.GetWorkflowError())
	var got Progress
	require.NoError(t, env.GetWorkflowResult(&got))
	assert.Equal(t, domain.PromotionTargetSucceeded, got.Results[0].Status)
	assert.Equal(t, "and its 3 devices", got.Results[0].Detail)
	assert.Equal(t, []string{everyKind[0].ID + "=snap-1"}, w.devices, "the instance's devices get what the instance now runs")
}
