package billing

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
)

// pagesPerRun bounds one reconciliation run's history; larger platforms continue as new.
const pagesPerRun = 100

// Reconcile asks every billed team's workflow to compare Stripe with the store and correct drift, one page
// of teams per activity. Each team's own workflow does the work, so it stays the only writer of the team's
// subscription.
func Reconcile(ctx workflow.Context, p ReconcileParams) (ReconcileResult, error) {
	if p.PageSize <= 0 {
		p.PageSize = 200
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10},
	})
	for pages := 0; ; pages++ {
		if pages >= pagesPerRun {
			return ReconcileResult{}, workflow.NewContinueAsNewError(ctx, Reconcile, p)
		}
		var page activities.ReconcilePage
		if err := workflow.ExecuteActivity(ctx, a.SignalTeamsPage, p.Cursor, p.PageSize).Get(ctx, &page); err != nil {
			return ReconcileResult{Teams: p.Teams}, err
		}
		p.Teams += page.Teams
		if page.Next == "" {
			return ReconcileResult{Teams: p.Teams}, nil
		}
		p.Cursor = page.Next
	}
}
