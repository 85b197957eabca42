package alert

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/workflows/facade"
)

var a *activities.Alerts

// planOptions plan and close deliveries: short store writes, retried for as long as the store is away.
var planOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 50},
}

// deliveryOptions make one delivery: an attempt is bounded by the HTTP client's or SMTP's own timeout, and
// failures back off from 2 s doubling (at most 10 minutes apart), 10 attempts over about 17 minutes, before the
// delivery is given up and logged as failed. Permanent failures (no SMTP server, a refused destination) are not retried.
var deliveryOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
		MaximumAttempts: 10, NonRetryableErrorTypes: []string{activities.ErrTypeAlertPermanent}},
}

// Deliver plans the event's deliveries and makes them all at once; each that fails for good is marked failed.
func Deliver(ctx workflow.Context, p Params) (Result, error) {
	var plan []activities.PlannedDelivery
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, planOptions), a.PlanAlertDeliveries, p.EventID).Get(ctx, &plan); err != nil {
		return Result{}, err
	}
	futures := make([]workflow.Future, len(plan))
	for i, d := range plan {
		futures[i] = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, deliveryOptions), a.DeliverAlert, d.ID)
	}
	var res Result
	for i, f := range futures {
		err := f.Get(ctx, nil)
		if err == nil {
			res.Delivered++
			continue
		}
		res.Failed++
		closing := workflow.WithActivityOptions(ctx, planOptions)
		if err := workflow.ExecuteActivity(closing, a.GiveUpAlertDelivery, plan[i].ID, facade.Message(err)).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	return res, nil
}
