// Package billing bills teams through Stripe: one subscription per team with an item for the team's plan, one
// per instance type and one for devices. It computes what a team should be billed for from the store, brings
// Stripe in line with idempotent requests, applies Stripe's webhooks and decides when billing blocks a team.
// It holds no Temporal code: the per-team workflow (workflows/billing) calls it through activities.
package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stripe is the part of Stripe's API the platform uses. StripeClient talks to Stripe (or stripe-mock);
// stripetest.Fake keeps state in memory for tests that need a Stripe that remembers.
type Stripe interface {
	CreateCheckoutSession(ctx context.Context, req CheckoutRequest) (CheckoutSession, error)
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	UpdateSubscription(ctx context.Context, id string, req SubscriptionUpdate) (Subscription, error)
	CancelSubscription(ctx context.Context, id, idempotencyKey string) error
}

// Item is one subscription item: a price and how many of it.
type Item struct {
	ID       string `json:"id,omitempty"` // si_…, empty for an item not created yet
	PriceID  string `json:"priceId"`
	Quantity int64  `json:"quantity"`
}

// Subscription is what the platform reads of a Stripe subscription.
type Subscription struct {
	ID               string
	CustomerID       string
	Status           string
	CurrentPeriodEnd time.Time
	Items            []Item
}

// ItemChange is one change in a subscription update: a new item (no ID), a new quantity for an existing
// item, or a deletion. Quantities are absolute, never increments, so a repeated change cannot double-count.
type ItemChange struct {
	ID       string `json:"id,omitempty"`
	PriceID  string `json:"priceId,omitempty"`
	Quantity int64  `json:"quantity"`
	Delete   bool   `json:"delete,omitempty"`
}

// SubscriptionUpdate changes a subscription's items in one request.
type SubscriptionUpdate struct {
	Changes        []ItemChange
	Proration      string // Stripe's proration_behavior; empty = always_invoice
	IdempotencyKey string
}

// CheckoutRequest starts a Stripe Checkout session that creates a team's subscription.
type CheckoutRequest struct {
	TeamID         string
	CustomerID     string // an existing customer, or empty
	CustomerEmail  string // prefilled for a new customer
	Items          []Item
	SuccessURL     string
	CancelURL      string
	IdempotencyKey string
}

// CheckoutSession is where the team owner pays.
type CheckoutSession struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// Error is a failed Stripe request. Temporary errors (5xx, 429, timeouts, network) are worth retrying with
// back-off; the others will fail again.
type Error struct {
	Status    int // HTTP status; 0 when no answer came
	Code      string
	Message   string
	Temporary bool
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return "stripe: " + e.Message
	}
	return fmt.Sprintf("stripe: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsTemporary reports whether err is worth retrying.
func IsTemporary(err error) bool {
	var se *Error
	if errors.As(err, &se) {
		return se.Temporary
	}
	return err != nil
}
