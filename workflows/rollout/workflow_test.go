package rollout

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
)

// fleet plays the store and the devices: dispatched waves report back as scripted.
type fleet struct {
	sizes      []int
	failWave   map[int]int // wave → devices of it that fail
	silentWave map[int]bool
	dispatched []int
	expired    []int
	rolledBack bool
	saved      []activities.RolloutProgress
	planErr    error
	failSave   func(activities.RolloutProgress) bool // a save it says yes to fails (once; the local activity is retried)
}

func (f *fleet) counts(_ context.Context, _ string, wave int) (activities.RolloutCounts, error) {
	c := activities.RolloutCounts{}
	for w, n := range f.sizes {
		c.Total += n
		switch {
		case !contains(f.dispatched, w):
			c.Pending += n
		case f.silentWave[w] && !contains(f.expired, w):
			if w == wave {
				c.WaveUpdating += n
			}
		case f.silentWave[w]:
			c.Failed += n
		default:
			c.Failed += f.failWave[w]
			c.Updated += n - f.failWave[w]
		}
	}
	if f.rolledBack {
		c.RolledBack = c.Updated + c.Failed
	}
	return c, nil
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func newEnv(t *testing.T, f *fleet) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Rollout, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Rollouts{})
	env.OnActivity(a.PlanRollout, mock.Anything, mock.Anything).Return(func(context.Context, activities.PlanRollout) ([]int, error) {
		return f.sizes, f.planErr
	})
	env.OnActivity(a.DispatchWave, mock.Anything, mock.Anything).Return(func(_ context.Context, p activities.DispatchWave) error {
		f.dispatched = append(f.dispatched, p.Wave)
		return nil
	})
	env.OnActivity(activityCounts, mock.Anything, mock.Anything, mock.Anything).Return(f.counts)
	env.OnActivity(a.ExpireWave, mock.Anything, mock.Anything, mock.Anything).Return(func(_ context.Context, _ string, w int) error {
		f.expired = append(f.expired, w)
		return nil
	})
	env.OnActivity(a.RollBackDevices, mock.Anything, mock.Anything, mock.Anything).Return(func(context.Context, string, int) (int, error) {
		f.rolledBack = true
		return 0, nil
	})
	env.OnActivity(activitySaveProgress, mock.Anything, mock.Anything).Return(func(_ context.Context, p activities.RolloutProgress) error {
		if f.failSave != nil && f.failSave(p) {
			f.failSave = nil
			return errors.New("the store did not answer")
		}
		f.saved = append(f.saved, p)
		return nil
	})
	return env
}

func params() Params {
	return Params{RolloutID: "r1", GroupID: "g1", SnapshotID: "s2", Strategy: DefaultStrategy()}
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) Progress {
	var p Progress
	require.True(t, env.IsWorkflowCompleted())
	_ = env.GetWorkflowResult(&p)
	return p
}

func TestAllWavesSucceed(t *testing.T) {
	f := &fleet{sizes: []int{1, 9, 40, 50}}
	env := newEnv(t, f)
	env.ExecuteWorkflow(Rollout, params())
	require.NoError(t, env.GetWorkflowError())
	p := result(t, env)
	assert.Equal(t, domain.RolloutSucceeded, p.Status)
	assert.Equal(t, 100, p.Updated)
	assert.Equal(t, []int{0, 1, 2, 3}, f.dispatched, "each wave dispatched once, in order")
	assert.Equal(t, domain.RolloutSucceeded, f.saved[len(f.saved)-1].Status)
}

func TestCanaryFailureStopsAndRollsBack(t *testing.T) {
	f := &fleet{sizes: []int{1, 9, 40, 50}, failWave: map[int]int{0: 1}}
	env := newEnv(t, f)
	env.ExecuteWorkflow(Rollout, params())
	require.NoError(t, env.GetWorkflowError())
	p := result(t, env)
	assert.Equal(t, domain.RolloutRolledBack, p.Status)
	assert.Equal(t, []int{0}, f.dispatched, "no wave after the canary")
	assert.True(t, f.rolledBack)
	assert.Contains(t, p.Reason, "1 of 1 devices failed")
}

func TestFailuresWithoutAutoRollbackFail(t *testing.T) {
	f := &fleet{sizes: []int{10, 90}, failWave: map[int]int{1: 30}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves, pr.Strategy.AutoRollback = []int{10, 100}, false
	env.ExecuteWorkflow(Rollout, pr)
	assert.True(t, IsThresholdExceeded(env.GetWorkflowError()))
	assert.False(t, f.rolledBack)
	assert.Equal(t, domain.RolloutFailed, f.saved[len(f.saved)-1].Status)
}

// TestPlanningFailureIsNotAThresholdFailure: a rollout whose devices could not be planned fails as a planning
// failure; it was once labelled as stopped by its failure threshold.
func TestPlanningFailureIsNotAThresholdFailure(t *testing.T) {
	f := &fleet{planErr: temporal.NewNonRetryableApplicationError("the group has no devices", activities.ErrTypeRejected, nil)}
	env := newEnv(t, f)
	env.ExecuteWorkflow(Rollout, params())
	err := env.GetWorkflowError()
	assert.True(t, ErrPlanningFailed.Is(err), "%v", err)
	assert.False(t, IsThresholdExceeded(err))
	assert.Equal(t, domain.RolloutFailed, f.saved[len(f.saved)-1].Status)
	assert.Contains(t, f.saved[len(f.saved)-1].Reason, "planning failed")
}

func TestSilentDevicesMissTheWaveDeadline(t *testing.T) {
	f := &fleet{sizes: []int{1, 9}, silentWave: map[int]bool{0: true}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves, pr.Strategy.WaveTimeout = []int{10, 100}, 5*time.Minute
	start := env.Now()
	env.ExecuteWorkflow(Rollout, pr)
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []int{0}, f.expired)
	assert.Equal(t, domain.RolloutRolledBack, result(t, env).Status)
	assert.GreaterOrEqual(t, env.Now().Sub(start), 5*time.Minute, "the wave waited for its deadline (in virtual time)")
}

func TestApprovalBetweenWavesAndOperatorUpdates(t *testing.T) {
	f := &fleet{sizes: []int{1, 9}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves, pr.Strategy.Approval = []int{10, 100}, ApprovalBetweenWaves
	var refused, approveWhilePaused error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateResume, "u1", &testUpdateCallback{onReject: func(err error) { refused = err }}, "alice")
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		var q Progress
		v, err := env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&q))
		assert.Equal(t, domain.RolloutAwaitingApproval, q.Status)
		assert.Equal(t, []int{0}, f.dispatched, "the second wave waits for approval")
		env.UpdateWorkflow(UpdatePause, "u2", &testUpdateCallback{}, "alice")
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateApprove, "u3", &testUpdateCallback{onReject: func(err error) { approveWhilePaused = err }}, "alice")
		env.UpdateWorkflow(UpdateResume, "u4", &testUpdateCallback{}, "alice")
	}, 3*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateApprove, "u5", &testUpdateCallback{}, "alice")
	}, 4*time.Minute)
	env.ExecuteWorkflow(Rollout, pr)
	require.NoError(t, env.GetWorkflowError())
	assert.Error(t, refused, "resume is refused while the rollout is not paused")
	assert.Error(t, approveWhilePaused, "approve is refused while paused")
	assert.Equal(t, domain.RolloutSucceeded, result(t, env).Status)
	assert.Equal(t, []int{0, 1}, f.dispatched)
}

func TestAbortStopsBeforeTheNextWave(t *testing.T) {
	f := &fleet{sizes: []int{1, 9}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves, pr.Strategy.Approval = []int{10, 100}, ApprovalBetweenWaves
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateAbort, "u1", &testUpdateCallback{}, "alice") }, time.Minute)
	env.ExecuteWorkflow(Rollout, pr)
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, domain.RolloutAborted, result(t, env).Status)
	assert.Equal(t, []int{0}, f.dispatched)
}

// TestAnAbortThatEndsTheRolloutIsAnswered: an abort accepted while the rollout waits (for an approval, or paused)
// ends it, and the operator hears that it was done. The workflow used to finish while the abort's handler was
// still saving (here: its save is retried once), so the client got "workflow execution already completed" and the
// API answered 409 for an abort that had taken effect.
func TestAnAbortThatEndsTheRolloutIsAnswered(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(map[bool]string{false: "awaiting approval", true: "paused"}[paused], func(t *testing.T) {
			f := &fleet{sizes: []int{1, 9}}
			env := newEnv(t, f)
			pr := params()
			pr.Strategy.Waves, pr.Strategy.Approval = []int{10, 100}, ApprovalBetweenWaves
			var pause answer
			if paused {
				env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdatePause, "u0", pause.callback(), "alice") }, time.Minute)
			}
			abort := slowAbortAt(env, f, 2*time.Minute)
			env.ExecuteWorkflow(Rollout, pr)
			require.NoError(t, env.GetWorkflowError())
			assert.Equal(t, domain.RolloutAborted, result(t, env).Status)
			assert.Equal(t, []int{0}, f.dispatched)
			abort.assertAnswered(t)
			assert.Equal(t, domain.RolloutAborted, f.saved[len(f.saved)-1].Status, "the final status is saved last")
		})
	}
}

// TestARepeatedAbortIsAccepted: an abort sent again while the first takes effect (the wave under way finishes
// first; the rollout still reads running) is accepted and changes nothing, where it used to be refused with a
// conflict for an abort that was taking effect.
func TestARepeatedAbortIsAccepted(t *testing.T) {
	f := &fleet{sizes: []int{1, 9}, silentWave: map[int]bool{0: true}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves, pr.Strategy.FailureThreshold = []int{10, 100}, 1
	var abort, again answer
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateAbort, "u1", abort.callback(), "alice") }, time.Minute)
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateAbort, "u2", again.callback(), "bob") }, 2*time.Minute)
	env.ExecuteWorkflow(Rollout, pr)
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, domain.RolloutAborted, result(t, env).Status)
	assert.Equal(t, []int{0}, f.dispatched, "the abort stops the rollout before its next wave")
	abort.assertAnswered(t)
	again.assertAnswered(t)
}

// TestAnAbortAsTheLastWaveCompletesIsAnswered: an abort accepted while the last wave completes is answered; there
// is no next wave to stop, so the rollout ends as its last wave did.
func TestAnAbortAsTheLastWaveCompletesIsAnswered(t *testing.T) {
	f := &fleet{sizes: []int{10}, silentWave: map[int]bool{0: true}}
	env := newEnv(t, f)
	pr := params()
	pr.Strategy.Waves = []int{100}
	var abort answer
	// At 9s the wave's devices report and the abort arrives; its handler saves the counts of before (none
	// updated), and that save fails once and is retried a second later. The workflow's next poll, at 9.75s, sees
	// the wave done (and saves the new counts) while the handler is still saving.
	env.RegisterDelayedCallback(func() {
		f.silentWave[0] = false
		f.failSave = func(p activities.RolloutProgress) bool { return p.Status.Active() && p.Updated == 0 }
		env.UpdateWorkflow(UpdateAbort, "abort", abort.callback(), "alice")
	}, 9*time.Second)
	env.ExecuteWorkflow(Rollout, pr)
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, domain.RolloutSucceeded, result(t, env).Status)
	abort.assertAnswered(t)
}

func TestContinueAsNewCarriesTheState(t *testing.T) {
	f := &fleet{sizes: []int{1, 9, 40, 50}}
	env := newEnv(t, f)
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(Rollout, params())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can))
	assert.Equal(t, []int{0}, f.dispatched, "one wave per run when the server suggests a new run")
}

func TestInvalidStrategyIsRefused(t *testing.T) {
	env := newEnv(t, &fleet{sizes: []int{1}})
	pr := params()
	pr.Strategy.FailureThreshold = 1.5
	env.ExecuteWorkflow(Rollout, pr)
	require.Error(t, env.GetWorkflowError())
}

// testUpdateCallback records an update's outcome.
type testUpdateCallback struct {
	onReject   func(error)
	onComplete func(any, error)
}

func (c *testUpdateCallback) Accept() {}
func (c *testUpdateCallback) Reject(err error) {
	if c.onReject != nil {
		c.onReject(err)
	}
}
func (c *testUpdateCallback) Complete(v any, err error) {
	if c.onComplete != nil {
		c.onComplete(v, err)
	}
}

// answer is how an operator's Update ended, as the client that sent it hears.
type answer struct {
	refused, failed error
	answered        bool
}

func (a *answer) callback() *testUpdateCallback {
	return &testUpdateCallback{onReject: func(err error) { a.refused = err },
		onComplete: func(_ any, err error) { a.answered, a.failed = true, err }}
}

// assertAnswered checks that the Update was accepted and its client heard its result: the run did not end
// before its handler had finished.
func (a *answer) assertAnswered(t *testing.T) {
	t.Helper()
	assert.NoError(t, a.refused)
	assert.True(t, a.answered, "answered before the workflow finished")
	assert.NoError(t, a.failed)
}

// slowAbortAt sends an abort at the virtual time at, whose handler's save fails once and is retried (a second
// later), so that the handler is still running when the rollout could end.
func slowAbortAt(env *testsuite.TestWorkflowEnvironment, f *fleet, at time.Duration) *answer {
	var a answer
	env.RegisterDelayedCallback(func() {
		f.failSave = func(p activities.RolloutProgress) bool { return p.Status.Active() }
		env.UpdateWorkflow(UpdateAbort, "abort", a.callback(), "alice")
	}, at)
	return &a
}
