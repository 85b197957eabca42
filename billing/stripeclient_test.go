package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/stripetest"
)

// stripe-mock checks every request against Stripe's API description: a request of the wrong shape answers
// an error, so each call succeeding here means the client sends what Stripe accepts.
func TestStripeClientRequestShapesAgainstStripeMock(t *testing.T) {
	c := billing.NewStripeClient(stripetest.MockKey, stripetest.StartMock(t), 10*time.Second)
	ctx := context.Background()

	sess, err := c.CreateCheckoutSession(ctx, billing.CheckoutRequest{TeamID: "team1", CustomerEmail: "owner@example.com",
		Items:      []billing.Item{{PriceID: "price_plan", Quantity: 1}, {PriceID: "price_small", Quantity: 3}},
		SuccessURL: "http://127.0.0.1/ok", CancelURL: "http://127.0.0.1/cancel", IdempotencyKey: "checkout/team1/a"})
	require.NoError(t, err)
	assert.NotEmpty(t, sess.ID)

	_, err = c.CreateCheckoutSession(ctx, billing.CheckoutRequest{TeamID: "team1", CustomerID: "cus_123",
		Items: []billing.Item{{PriceID: "price_plan", Quantity: 1}}, SuccessURL: "http://127.0.0.1/ok", CancelURL: "http://127.0.0.1/cancel"})
	require.NoError(t, err, "an existing customer")

	sub, err := c.GetSubscription(ctx, "sub_123")
	require.NoError(t, err)
	assert.NotEmpty(t, sub.ID)
	assert.NotEmpty(t, sub.Status)

	for _, proration := range []string{"", "create_prorations", "none"} {
		_, err = c.UpdateSubscription(ctx, "sub_123", billing.SubscriptionUpdate{Proration: proration, IdempotencyKey: "sync/team1/1/" + proration,
			Changes: []billing.ItemChange{{ID: "si_a", Quantity: 4}, {PriceID: "price_devices", Quantity: 2}, {ID: "si_b", Delete: true}, {ID: "si_c", Quantity: 0}}})
		require.NoError(t, err, "proration %q", proration)
	}

	require.NoError(t, c.CancelSubscription(ctx, "sub_123", "cancel/sub_123"))
}

func TestStripeClientClassifiesErrors(t *testing.T) {
	url := stripetest.StartMock(t)
	ctx := context.Background()
	// stripe-mock refuses a value outside an enumeration with a 400: not worth retrying.
	_, err := billing.NewStripeClient(stripetest.MockKey, url, 10*time.Second).UpdateSubscription(ctx, "sub_1",
		billing.SubscriptionUpdate{Proration: "sometimes", Changes: []billing.ItemChange{{ID: "si_a", Quantity: 1}}})
	require.Error(t, err)
	assert.False(t, billing.IsTemporary(err), "%v", err)
	var se *billing.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 400, se.Status)

	// Nothing listens: no answer at all, worth retrying.
	_, err = billing.NewStripeClient(stripetest.MockKey, "http://127.0.0.1:1", 2*time.Second).GetSubscription(ctx, "sub_1")
	require.Error(t, err)
	assert.True(t, billing.IsTemporary(err), "%v", err)
}
