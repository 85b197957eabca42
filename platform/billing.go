package platform

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/temporalenv"
	billingwf "github.com/flowyard/flowyard/workflows/billing"
	"github.com/flowyard/flowyard/workflows/instance"
)

// newBilling builds billing when a Stripe key is configured, and returns nils otherwise (billing off).
// instances may be nil where nothing is suspended from (the API-only process).
func newBilling(cfg config.Config, st *storage.Store, c client.Client, tcfg temporalenv.Config, log *slog.Logger, instances *instance.Client) (*billing.Service, *billingwf.Client) {
	if !cfg.BillingEnabled() {
		return nil, nil
	}
	wc := &billingwf.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueBilling)}
	svc := &billing.Service{Store: st, Stripe: billing.NewStripeClient(cfg.Stripe.Key, cfg.Stripe.APIURL, 20*time.Second),
		WebhookSecret: cfg.Stripe.WebhookSecret, Notify: wc, PublicURL: cfg.PublicURL, Log: log.With("component", "billing")}
	if instances != nil {
		svc.Instances = instanceSuspender{instances}
	}
	return svc, wc
}

// instanceSuspender suspends instances through their lifecycle workflows for billing.
type instanceSuspender struct{ c *instance.Client }

func (s instanceSuspender) Suspend(ctx context.Context, instanceID, teamID, operationID string) error {
	_, err := s.c.Run(ctx, instance.Params{InstanceID: instanceID, TeamID: teamID, OperationID: operationID, Action: instance.ActionSuspend})
	return err
}
