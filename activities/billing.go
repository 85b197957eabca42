package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/storage"
)

// TeamSignaler asks a team's billing workflow to reconcile; the billing workflow facade implements it.
type TeamSignaler interface {
	Reconcile(ctx context.Context, teamID string) error
}

// Billing are the activities of the billing workflows.
type Billing struct {
	Service *billing.Service
	Teams   TeamSignaler
}

// Error type of a Stripe refusal that a retry will not change.
const ErrTypeStripeRefused = "StripeRefused"

// SyncRequest asks for one sync of a team's subscription items.
type SyncRequest struct {
	TeamID    string
	Key       string // idempotency base, the same on every retry of this sync
	Reconcile bool   // read Stripe even if nothing changed here, and audit corrections
}

// SyncUsage brings the team's Stripe items in line with its usage. Stripe's temporary failures (5xx, 429,
// timeouts) are retried by the workflow's policy with the same key; a refusal is final.
func (a *Billing) SyncUsage(ctx context.Context, r SyncRequest) (billing.SyncResult, error) {
	res, err := a.Service.Sync(ctx, r.TeamID, r.Key, r.Reconcile)
	return res, finalIfRefused(err)
}

// TeamState reads what billing says about a team.
func (a *Billing) TeamState(ctx context.Context, teamID string) (billing.State, error) {
	return a.Service.TeamState(ctx, teamID)
}

// EndTrial ends a team's trial when it is due.
func (a *Billing) EndTrial(ctx context.Context, teamID string) (billing.State, error) {
	return a.Service.EndTrial(ctx, teamID)
}

// SuspendInstances suspends the team's instances that run (or could) through their lifecycle workflows. It
// fails, to be retried, while some are busy with another action.
func (a *Billing) SuspendInstances(ctx context.Context, teamID, reason string) (int, error) {
	return a.Service.SuspendInstances(ctx, teamID, reason)
}

// ReconcilePage is one page of teams asked to reconcile.
type ReconcilePage struct {
	Teams int
	Next  string // cursor of the next page; empty at the end
}

// SignalTeamsPage asks each team of one page of billed teams to reconcile its billing.
func (a *Billing) SignalTeamsPage(ctx context.Context, cursor string, limit int) (ReconcilePage, error) {
	subs, next, err := a.Service.Store.ListSubscriptions(ctx, storage.Page{Limit: limit, Cursor: cursor})
	if err != nil {
		return ReconcilePage{}, err
	}
	for _, sub := range subs {
		if err := a.Teams.Reconcile(ctx, sub.TeamID); err != nil {
			return ReconcilePage{}, err
		}
	}
	return ReconcilePage{Teams: len(subs), Next: next}, nil
}

func finalIfRefused(err error) error {
	var se *billing.Error
	if errors.As(err, &se) && !se.Temporary {
		return temporal.NewNonRetryableApplicationError(se.Error(), ErrTypeStripeRefused, err)
	}
	return err
}
