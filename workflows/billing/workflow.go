package billing

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	billingsvc "github.com/flowyard/flowyard/billing"
)

var a *activities.Billing

// Activity options. Stripe calls retry with exponential back-off for as long as Stripe fails temporarily
// (the same idempotency key each time); a refusal is final. Suspensions retry while instances are busy.
var (
	stateOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}
	syncOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeStripeRefused}},
	}
	suspendOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 2 * time.Hour,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 2 * time.Minute},
	}
)

// maxLoops bounds one run's history; the workflow continues as new after it (or when Temporal suggests).
const maxLoops = 500

// team is one run of a team's billing workflow.
type team struct {
	ctx         workflow.Context
	p           Params
	statusDirty bool
	debounce    workflow.Future // fires when the gathered usage changes are due for a sync
	trial       workflow.Future // fires when the trial ends
	trialAt     time.Time
	cancelTrial workflow.CancelFunc
	idle        workflow.Future
	cancelIdle  workflow.CancelFunc
	done        bool
	subscribed  bool // the last state read had a subscription in good standing
	usageCh     workflow.ReceiveChannel
	statusCh    workflow.ReceiveChannel
	reconcileCh workflow.ReceiveChannel
}

// Team keeps one team's billing right: usage changes are gathered for Params.Debounce and synced to Stripe
// at once; a status change is acted on at once (suspending the team's instances when billing says so); the
// trial ends on a durable timer; a reconcile signal compares Stripe with the store now.
func Team(ctx workflow.Context, p Params) error {
	if p.Debounce <= 0 {
		p.Debounce = DefaultDebounce
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = DefaultIdleTimeout
	}
	t := &team{ctx: ctx, p: p, statusDirty: true,
		usageCh:     workflow.GetSignalChannel(ctx, SignalUsageChanged),
		statusCh:    workflow.GetSignalChannel(ctx, SignalStatusChanged),
		reconcileCh: workflow.GetSignalChannel(ctx, SignalReconcile)}
	if p.Pending {
		t.startDebounce()
	}
	for loops := 0; ; loops++ {
		t.act()
		if t.done && !t.drain() {
			return nil
		}
		t.done = false
		if loops >= maxLoops || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			t.drain()
			return workflow.NewContinueAsNewError(ctx, Team, t.carry())
		}
		t.wait()
	}
}

// act does what is due: a status check, then a reconciliation.
func (t *team) act() {
	if t.statusDirty {
		t.statusDirty = false
		t.applyState(t.readState())
	}
	if t.p.Reconcile {
		t.p.Reconcile = false
		t.sync(true)
	}
}

// wait blocks until a signal or a timer, and handles it.
func (t *team) wait() {
	sel := workflow.NewSelector(t.ctx)
	sel.AddReceive(t.usageCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(t.ctx, nil)
		t.onUsage()
	})
	sel.AddReceive(t.statusCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(t.ctx, nil)
		t.statusDirty = true
	})
	sel.AddReceive(t.reconcileCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(t.ctx, nil)
		t.statusDirty, t.p.Reconcile = true, true
	})
	if t.debounce != nil {
		sel.AddFuture(t.debounce, func(workflow.Future) {
			t.debounce, t.p.Pending = nil, false
			t.sync(false)
		})
	}
	if t.trial != nil {
		sel.AddFuture(t.trial, func(f workflow.Future) {
			t.trial = nil
			if f.Get(t.ctx, nil) == nil {
				t.endTrial()
			}
		})
	}
	if t.debounce == nil && t.trial == nil {
		t.armIdle()
		sel.AddFuture(t.idle, func(f workflow.Future) {
			if f.Get(t.ctx, nil) == nil {
				t.done = true
			}
		})
	}
	sel.Select(t.ctx)
	if !t.done && t.cancelIdle != nil {
		t.cancelIdle()
		t.idle, t.cancelIdle = nil, nil
	}
}

// onUsage starts gathering usage changes; later changes join the pending sync.
func (t *team) onUsage() {
	if !t.p.Pending {
		t.p.Pending = true
		t.startDebounce()
	}
}

func (t *team) startDebounce() {
	t.debounce = workflow.NewTimer(t.ctx, t.p.Debounce)
}

func (t *team) armIdle() {
	if t.idle != nil {
		return
	}
	ctx, cancel := workflow.WithCancel(t.ctx)
	t.idle, t.cancelIdle = workflow.NewTimer(ctx, t.p.IdleTimeout), cancel
}

// drain takes signals that arrived but were not handled yet; it reports whether there were any.
func (t *team) drain() bool {
	got := false
	for t.usageCh.ReceiveAsync(nil) {
		got = true
		t.p.Pending = true
	}
	for t.statusCh.ReceiveAsync(nil) {
		got = true
		t.statusDirty = true
	}
	for t.reconcileCh.ReceiveAsync(nil) {
		got = true
		t.statusDirty, t.p.Reconcile = true, true
	}
	if got && t.p.Pending && t.debounce == nil {
		t.startDebounce()
	}
	return got
}

// carry is what the next run needs: status is re-read at its start, and the trial timer armed again.
func (t *team) carry() Params {
	p := t.p
	p.Pending = p.Pending || t.debounce != nil
	return p
}

func (t *team) readState() billingsvc.State {
	var st billingsvc.State
	ctx := workflow.WithActivityOptions(t.ctx, stateOptions)
	if err := workflow.ExecuteActivity(ctx, a.TeamState, t.p.TeamID).Get(t.ctx, &st); err != nil {
		workflow.GetLogger(t.ctx).Error("read billing state", "team", t.p.TeamID, "error", err)
	}
	return st
}

// applyState arms (or moves) the trial timer, suspends the team's instances when billing says so, and
// syncs a subscription that just came into being.
func (t *team) applyState(st billingsvc.State) {
	t.armTrial(st.TrialEndsAt)
	if st.Suspend {
		t.suspend("subscription " + st.Status)
	}
	if st.Subscribed && !t.subscribed && !t.p.Pending {
		t.p.Pending = true
		t.startDebounce()
	}
	t.subscribed = st.Subscribed
}

func (t *team) armTrial(endsAt *time.Time) {
	if endsAt == nil {
		if t.cancelTrial != nil {
			t.cancelTrial()
		}
		t.trial, t.cancelTrial, t.trialAt = nil, nil, time.Time{}
		return
	}
	if t.trial != nil && t.trialAt.Equal(*endsAt) {
		return
	}
	if t.cancelTrial != nil {
		t.cancelTrial()
	}
	ctx, cancel := workflow.WithCancel(t.ctx)
	wait := max(endsAt.Sub(workflow.Now(t.ctx)), 0)
	t.trial, t.cancelTrial, t.trialAt = workflow.NewTimer(ctx, wait), cancel, *endsAt
}

// endTrial ends the trial in the store (if it is still due) and applies what that means.
func (t *team) endTrial() {
	t.trialAt, t.cancelTrial = time.Time{}, nil
	var st billingsvc.State
	ctx := workflow.WithActivityOptions(t.ctx, stateOptions)
	if err := workflow.ExecuteActivity(ctx, a.EndTrial, t.p.TeamID).Get(t.ctx, &st); err != nil {
		workflow.GetLogger(t.ctx).Error("end trial", "team", t.p.TeamID, "error", err)
		t.statusDirty = true
		return
	}
	t.applyState(st)
}

func (t *team) suspend(reason string) {
	ctx := workflow.WithActivityOptions(t.ctx, suspendOptions)
	if err := workflow.ExecuteActivity(ctx, a.SuspendInstances, t.p.TeamID, reason).Get(t.ctx, nil); err != nil {
		// The hourly reconciliation tries again.
		workflow.GetLogger(t.ctx).Error("suspend the team's instances", "team", t.p.TeamID, "error", err)
	}
}

// sync runs one sync with an idempotency key unique to this run and sync, repeated by every retry.
func (t *team) sync(reconcile bool) {
	t.p.Seq++
	info := workflow.GetInfo(t.ctx)
	req := activities.SyncRequest{TeamID: t.p.TeamID, Reconcile: reconcile,
		Key: fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, t.p.Seq)}
	ctx := workflow.WithActivityOptions(t.ctx, syncOptions)
	var res billingsvc.SyncResult
	if err := workflow.ExecuteActivity(ctx, a.SyncUsage, req).Get(t.ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeStripeRefused {
			workflow.GetLogger(t.ctx).Error("Stripe refused the sync", "team", t.p.TeamID, "error", err)
			return
		}
		workflow.GetLogger(t.ctx).Error("sync billing", "team", t.p.TeamID, "error", err)
	}
}
