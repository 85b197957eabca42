package stackmove

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// stack plays the store: its instances are planned into waves with storage.WaveSizes and handed out in
// batches; the fake lifecycle fails the instances in fail.
type stack struct {
	mu       sync.Mutex
	ids      []string
	sizes    []int
	status   map[string]domain.StackMoveInstanceStatus
	wave     map[string]int
	fail     map[string]bool
	busy     map[string]int // instance → how many more starts find it busy
	batches  [][]string
	upgrades []instance.Params
	saved    []activities.StackMoveProgress
}

func newStack(n int, fail ...string) *stack {
	s := &stack{status: map[string]domain.StackMoveInstanceStatus{}, wave: map[string]int{}, fail: map[string]bool{}, busy: map[string]int{}}
	for i := range n {
		s.ids = append(s.ids, fmt.Sprintf("i%02d", i))
	}
	for _, id := range fail {
		s.fail[id] = true
	}
	return s
}

func (s *stack) plan(_ context.Context, p activities.PlanStackMove) ([]int, error) {
	s.sizes = storage.WaveSizes(len(s.ids), p.Waves)
	i := 0
	for w, n := range s.sizes {
		for ; n > 0; n-- {
			s.status[s.ids[i]], s.wave[s.ids[i]] = domain.StackMoveInstancePending, w
			i++
		}
	}
	return s.sizes, nil
}

func (s *stack) next(_ context.Context, req activities.NextStackMoves) ([]activities.StackMoveTarget, error) {
	var out []activities.StackMoveTarget
	var ids []string
	for _, id := range s.ids {
		if s.wave[id] == req.Wave && s.status[id] == domain.StackMoveInstancePending && len(out) < req.Count {
			s.status[id] = domain.StackMoveInstanceMoving
			out = append(out, activities.StackMoveTarget{InstanceID: id, TeamID: "t-" + id, OperationID: "op-" + id})
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		s.batches = append(s.batches, ids)
	}
	return out, nil
}

func (s *stack) finish(_ context.Context, r activities.StackMoveResult) error {
	s.status[r.InstanceID] = domain.StackMoveInstanceMoved
	if !r.Moved {
		s.status[r.InstanceID] = domain.StackMoveInstanceFailed
	}
	return nil
}

func (s *stack) counts(context.Context, string) (activities.StackMoveCounts, error) {
	c := activities.StackMoveCounts{Total: len(s.ids)}
	for _, st := range s.status {
		switch st {
		case domain.StackMoveInstancePending:
			c.Pending++
		case domain.StackMoveInstanceMoved:
			c.Moved++
		case domain.StackMoveInstanceFailed:
			c.Failed++
		}
	}
	return c, nil
}

// lifecycle stands in for instance.Lifecycle: an upgrade that fails for the instances in fail.
func (s *stack) lifecycle(ctx workflow.Context, p instance.Params) (instance.Result, error) {
	s.mu.Lock()
	s.upgrades = append(s.upgrades, p)
	s.mu.Unlock()
	if s.fail[p.InstanceID] {
		return instance.Result{State: domain.InstanceRunning}, temporal.NewNonRetryableApplicationError("flows wait for missing node types", "RuntimeFailed", nil)
	}
	return instance.Result{State: domain.InstanceRunning}, nil
}

func newEnv(t *testing.T, s *stack) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Move, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterWorkflowWithOptions(s.lifecycle, workflow.RegisterOptions{Name: instance.WorkflowName})
	env.RegisterActivity(&activities.StackMoves{})
	env.OnActivity(a.PlanStackMove, mock.Anything, mock.Anything).Return(s.plan)
	env.OnActivity(a.NextStackMoves, mock.Anything, mock.Anything).Return(s.next)
	env.OnActivity(a.FinishStackMoveInstance, mock.Anything, mock.Anything).Return(s.finish)
	env.OnActivity(activityCounts, mock.Anything, mock.Anything).Return(s.counts)
	env.OnActivity(activitySaveProgress, mock.Anything, mock.Anything).Return(func(_ context.Context, p activities.StackMoveProgress) error {
		s.saved = append(s.saved, p)
		return nil
	})
	return env
}

func params(st Strategy) Params {
	return Params{MoveID: "m1", FromStackID: "old", ToStackID: "new", OperationID: "op-move", InstanceQueue: "instances", Strategy: st}
}

func TestMoveUpgradesEveryInstanceInWavesAFewAtATime(t *testing.T) {
	s := newStack(20)
	env := newEnv(t, s)
	env.ExecuteWorkflow(Move, params(Strategy{Waves: []int{10, 50, 100}, FailureThreshold: 0.1, Concurrency: 4}))
	require.NoError(t, env.GetWorkflowError())
	var p Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	assert.Equal(t, Progress{Status: domain.StackMoveSucceeded, Wave: 3, Waves: 3, Total: 20, Moved: 20}, p)
	assert.Equal(t, []int{2, 8, 10}, s.sizes)
	for _, b := range s.batches {
		assert.LessOrEqual(t, len(b), 4, "at most Concurrency at once")
	}
	assert.Len(t, s.batches, 1+2+3, "wave 1 in one batch, wave 2 in two, wave 3 in three")
	require.Len(t, s.upgrades, 20)
	for _, u := range s.upgrades {
		assert.Equal(t, instance.ActionUpgrade, u.Action)
		assert.Equal(t, "new", u.StackID)
		assert.Equal(t, "op-"+u.InstanceID, u.OperationID, "each upgrade reports on its own operation")
	}
	assert.Equal(t, domain.StackMoveSucceeded, s.saved[len(s.saved)-1].Status)
	assert.Equal(t, "op-move", s.saved[len(s.saved)-1].OperationID)
}

func TestMoveStopsPastTheFailureThresholdAndLeavesTheRest(t *testing.T) {
	s := newStack(20, "i03", "i05")
	env := newEnv(t, s)
	env.ExecuteWorkflow(Move, params(Strategy{Waves: []int{10, 50, 100}, FailureThreshold: 0.1, Concurrency: 4}))
	err := env.GetWorkflowError()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	assert.Contains(t, appErr.Message(), "over the 10% threshold")
	last := s.saved[len(s.saved)-1]
	assert.Equal(t, domain.StackMoveFailed, last.Status)
	assert.Equal(t, 1, last.Wave, "stopped in the second wave")
	assert.Equal(t, 2, last.Failed)
	assert.Equal(t, 14, last.Pending, "the rest of the second wave and the last wave are never started")
	assert.Len(t, s.upgrades, 6, "the first wave (2) and the second wave's first batch (4)")
	for _, id := range s.ids[6:] {
		assert.Equal(t, domain.StackMoveInstancePending, s.status[id], id)
		assert.False(t, slices.ContainsFunc(s.upgrades, func(p instance.Params) bool { return p.InstanceID == id }), id)
	}
}

func TestMoveRefusesABadStrategy(t *testing.T) {
	s := newStack(3)
	env := newEnv(t, s)
	env.ExecuteWorkflow(Move, params(Strategy{Waves: []int{50, 20}, FailureThreshold: 0.1, Concurrency: 1}))
	require.Error(t, env.GetWorkflowError())
	assert.Empty(t, s.upgrades)
	assert.Contains(t, s.saved[len(s.saved)-1].Reason, "waves must end at 100")
}
