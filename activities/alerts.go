package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/alerts"
)

// Alerts are the activities of the alert delivery workflow.
type Alerts struct {
	Deliverer *alerts.Deliverer
}

// ErrTypeAlertPermanent marks a delivery that retrying cannot help.
const ErrTypeAlertPermanent = "AlertDeliveryPermanent"

// PlannedDelivery is one delivery of an event.
type PlannedDelivery struct {
	ID      string
	Channel string
}

// PlanAlertDeliveries writes an event's delivery rows and returns those still to make.
func (a *Alerts) PlanAlertDeliveries(ctx context.Context, eventID string) ([]PlannedDelivery, error) {
	plan, err := a.Deliverer.Plan(ctx, eventID)
	if err != nil {
		return nil, nonRetryableIfNotFound(err)
	}
	out := make([]PlannedDelivery, len(plan))
	for i, p := range plan {
		out[i] = PlannedDelivery(p)
	}
	return out, nil
}

// DeliverAlert makes one attempt at a delivery.
func (a *Alerts) DeliverAlert(ctx context.Context, deliveryID string) error {
	err := a.Deliverer.Deliver(ctx, deliveryID)
	if errors.Is(err, alerts.ErrPermanent) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeAlertPermanent, nil)
	}
	return err
}

// GiveUpAlertDelivery marks a delivery failed after its last attempt.
func (a *Alerts) GiveUpAlertDelivery(ctx context.Context, deliveryID, reason string) error {
	return a.Deliverer.GiveUp(ctx, deliveryID, reason)
}
