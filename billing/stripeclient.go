package billing

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultAPIURL is Stripe's API.
const DefaultAPIURL = "https://api.stripe.com"

// StripeClient is Stripe over HTTP, on stripe-go. It makes one attempt per call: retries belong to the
// workflow, which backs off and repeats the same idempotency key.
type StripeClient struct {
	api *client.API
}

// NewStripeClient talks to the Stripe API at apiURL (DefaultAPIURL when empty; stripe-mock in tests) with
// the secret key. timeout bounds each request.
func NewStripeClient(key, apiURL string, timeout time.Duration) *StripeClient {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(strings.TrimRight(apiURL, "/")),
		HTTPClient:        &http.Client{Timeout: timeout},
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	api := &client.API{}
	api.Init(key, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &StripeClient{api: api}
}

// CreateCheckoutSession starts a subscription-mode Checkout session for a team. The team ID travels as the
// client reference and in the subscription's metadata, so the webhook can tell whose subscription it is.
func (c *StripeClient) CreateCheckoutSession(ctx context.Context, req CheckoutRequest) (CheckoutSession, error) {
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		SuccessURL:        stripe.String(req.SuccessURL),
		CancelURL:         stripe.String(req.CancelURL),
		ClientReferenceID: stripe.String(req.TeamID),
		Metadata:          map[string]string{"team": req.TeamID},
		SubscriptionData:  &stripe.CheckoutSessionSubscriptionDataParams{Metadata: map[string]string{"team": req.TeamID}},
	}
	switch {
	case req.CustomerID != "":
		p.Customer = stripe.String(req.CustomerID)
	case req.CustomerEmail != "":
		p.CustomerEmail = stripe.String(req.CustomerEmail)
	}
	for _, it := range req.Items {
		p.LineItems = append(p.LineItems, &stripe.CheckoutSessionLineItemParams{Price: stripe.String(it.PriceID), Quantity: stripe.Int64(it.Quantity)})
	}
	p.Context = ctx
	if req.IdempotencyKey != "" {
		p.SetIdempotencyKey(req.IdempotencyKey)
	}
	s, err := c.api.CheckoutSessions.New(p)
	if err != nil {
		return CheckoutSession{}, classify(ctx, err)
	}
	return CheckoutSession{ID: s.ID, URL: s.URL}, nil
}

// GetSubscription reads a subscription with its items.
func (c *StripeClient) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	p := &stripe.SubscriptionParams{}
	p.Context = ctx
	s, err := c.api.Subscriptions.Get(id, p)
	if err != nil {
		return Subscription{}, classify(ctx, err)
	}
	return fromStripe(s), nil
}

// UpdateSubscription changes items in one request, with the idempotency key.
func (c *StripeClient) UpdateSubscription(ctx context.Context, id string, req SubscriptionUpdate) (Subscription, error) {
	proration := req.Proration
	if proration == "" {
		proration = "always_invoice"
	}
	p := &stripe.SubscriptionParams{ProrationBehavior: stripe.String(proration)}
	for _, ch := range req.Changes {
		item := &stripe.SubscriptionItemsParams{}
		switch {
		case ch.Delete:
			item.ID, item.Deleted = stripe.String(ch.ID), stripe.Bool(true)
		case ch.ID != "":
			item.ID, item.Quantity = stripe.String(ch.ID), stripe.Int64(ch.Quantity)
		default:
			item.Price, item.Quantity = stripe.String(ch.PriceID), stripe.Int64(ch.Quantity)
		}
		p.Items = append(p.Items, item)
	}
	p.Context = ctx
	if req.IdempotencyKey != "" {
		p.SetIdempotencyKey(req.IdempotencyKey)
	}
	s, err := c.api.Subscriptions.Update(id, p)
	if err != nil {
		return Subscription{}, classify(ctx, err)
	}
	return fromStripe(s), nil
}

// CancelSubscription cancels a subscription at once, invoicing what is owed.
func (c *StripeClient) CancelSubscription(ctx context.Context, id, idempotencyKey string) error {
	p := &stripe.SubscriptionCancelParams{InvoiceNow: stripe.Bool(true), Prorate: stripe.Bool(true)}
	p.Context = ctx
	if idempotencyKey != "" {
		p.SetIdempotencyKey(idempotencyKey)
	}
	_, err := c.api.Subscriptions.Cancel(id, p)
	return classify(ctx, err)
}

func fromStripe(s *stripe.Subscription) Subscription {
	out := Subscription{ID: s.ID, Status: string(s.Status)}
	if s.Customer != nil {
		out.CustomerID = s.Customer.ID
	}
	if s.CurrentPeriodEnd > 0 {
		out.CurrentPeriodEnd = time.Unix(s.CurrentPeriodEnd, 0).UTC()
	}
	if s.Items != nil {
		for _, it := range s.Items.Data {
			item := Item{ID: it.ID, Quantity: it.Quantity}
			if it.Price != nil {
				item.PriceID = it.Price.ID
			}
			out.Items = append(out.Items, item)
		}
	}
	return out
}

// classify turns stripe-go's errors into *Error, telling temporary failures from permanent ones.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		temporary := se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests ||
			se.HTTPStatusCode == http.StatusConflict
		msg := se.Msg
		if msg == "" {
			msg = http.StatusText(se.HTTPStatusCode)
		}
		return &Error{Status: se.HTTPStatusCode, Code: string(se.Code), Message: msg, Temporary: temporary}
	}
	if ctx.Err() != nil {
		return &Error{Message: ctx.Err().Error(), Temporary: true}
	}
	// Network errors and timeouts: no answer came, so the request may or may not have been applied; the
	// retry repeats the idempotency key.
	return &Error{Message: err.Error(), Temporary: true}
}
