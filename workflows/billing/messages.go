// Package billing holds the billing workflows. Each team with billing has one long-lived workflow,
// billing/<teamID>, that is the only writer of its Stripe subscription: it debounces usage changes into one
// sync, ends trials by a durable timer, and suspends the team's instances when billing says so. A Temporal
// Schedule runs Reconcile hourly, which asks every billed team's workflow to compare Stripe with the store
// and correct drift.
package billing

import "time"

// Registered names; histories depend on them, so they never change.
const (
	WorkflowName          = "billing.team"
	ReconcileWorkflowName = "billing.reconcile"
)

// Signals a team's workflow takes. None carries a payload: the workflow reads the store.
const (
	SignalUsageChanged  = "usage-changed"  // an instance or device was added, suspended, resumed or removed
	SignalStatusChanged = "status-changed" // the subscription's status or the trial changed
	SignalReconcile     = "reconcile"      // compare Stripe with the store now, and correct drift
)

// ScheduleID is the Temporal Schedule that runs Reconcile.
const ScheduleID = "billing-reconcile"

// Defaults of Params.
const (
	DefaultDebounce    = 5 * time.Second
	DefaultIdleTimeout = 30 * time.Minute
)

// WorkflowID derives a team's billing workflow ID from the team ID.
func WorkflowID(teamID string) string { return "billing/" + teamID }

// Params start (or continue) a team's billing workflow.
type Params struct {
	TeamID string
	// Debounce is how long the workflow gathers usage changes before one sync: a burst of changes costs one
	// read and at most one write of the subscription.
	Debounce time.Duration
	// IdleTimeout is how long the workflow waits for news before it ends; the next signal starts it again.
	// A running trial keeps it alive until the trial ends.
	IdleTimeout time.Duration

	// Carried across continue-as-new.
	Pending   bool // a usage change not synced yet
	Reconcile bool // a reconciliation asked for and not done yet
	Seq       int  // syncs so far, part of each sync's idempotency key
}

// ReconcileParams start a reconciliation over every billed team.
type ReconcileParams struct {
	PageSize int    // teams signalled per activity; default 200
	Cursor   string // where a continued run resumes
	Teams    int    // teams signalled by earlier runs
}

// ReconcileResult says how many teams were asked to reconcile.
type ReconcileResult struct {
	Teams int
}
