package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Webhook event types the platform acts on.
const (
	EventCheckoutCompleted   = "checkout.session.completed"
	EventSubscriptionUpdated = "customer.subscription.updated"
	EventSubscriptionDeleted = "customer.subscription.deleted"
	EventInvoicePaymentFail  = "invoice.payment_failed"
	EventInvoicePaid         = "invoice.paid"
)

// WebhookResult says what a webhook did, for the log and for tests.
type WebhookResult struct {
	EventID  string `json:"eventId"`
	Type     string `json:"type"`
	TeamID   string `json:"teamId,omitempty"`
	Replayed bool   `json:"replayed,omitempty"` // seen before: nothing was done
	Ignored  string `json:"ignored,omitempty"`  // why the event changed nothing
	Status   string `json:"status,omitempty"`   // the team's subscription status afterwards
}

// event is the part of a Stripe event the platform reads.
type event struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ref is a Stripe reference: an ID string, or an expanded object with an id.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(b, []byte("{")) {
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*r = ref(*s)
	}
	return nil
}

type stripeObject struct {
	ID                string            `json:"id"`
	ClientReferenceID string            `json:"client_reference_id"`
	Customer          ref               `json:"customer"`
	Subscription      ref               `json:"subscription"`
	Status            string            `json:"status"`
	CurrentPeriodEnd  int64             `json:"current_period_end"`
	Metadata          map[string]string `json:"metadata"`
}

// VerifyWebhook checks a webhook's Stripe-Signature against the endpoint secret (and its timestamp against
// Stripe's five-minute tolerance). Anything else answers a 400, and nothing is done.
func (s *Service) VerifyWebhook(payload []byte, signature string) (event, error) {
	var ev event
	if s.WebhookSecret == "" || signature == "" {
		return ev, badSignature("The request carries no Stripe signature.")
	}
	if _, err := webhook.ConstructEventWithOptions(payload, signature, s.WebhookSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
		return ev, badSignature("The Stripe signature does not match: " + err.Error())
	}
	if err := json.Unmarshal(payload, &ev); err != nil || ev.ID == "" || ev.Type == "" {
		return ev, &domain.Error{Kind: domain.KindInvalid, Code: "invalid_event", Message: "The body is not a Stripe event."}
	}
	return ev, nil
}

func badSignature(msg string) error {
	return &domain.Error{Kind: domain.KindInvalid, Code: "bad_signature", Message: msg}
}

// HandleWebhook verifies and applies one Stripe event. Each event is applied at most once: its ID is
// recorded in the transaction that applies it, so a replay changes nothing. Status changes follow event
// time, so an older event delivered late does not undo a newer one. An event for a customer the platform
// does not know is acknowledged and logged.
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, signature string) (WebhookResult, error) {
	ev, obj, err := s.readWebhook(payload, signature)
	if err != nil {
		return WebhookResult{EventID: ev.ID, Type: ev.Type}, err
	}
	res := WebhookResult{EventID: ev.ID, Type: ev.Type}
	var notify bool
	err = s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		var err error
		notify, err = s.apply(ctx, tx, ev, obj, &res)
		return err
	})
	if err != nil {
		return res, err
	}
	if res.Ignored != "" {
		s.log().Info("stripe event changed nothing", "event", ev.ID, "type", ev.Type, "reason", res.Ignored)
	}
	if notify {
		s.StatusChanged(ctx, res.TeamID)
		s.UsageChanged(ctx, res.TeamID)
	}
	return res, nil
}

// readWebhook verifies a webhook and reads its event and the object the event is about.
func (s *Service) readWebhook(payload []byte, signature string) (event, stripeObject, error) {
	var obj stripeObject
	ev, err := s.VerifyWebhook(payload, signature)
	if err != nil {
		return ev, obj, err
	}
	if err := json.Unmarshal(ev.Data.Object, &obj); err != nil {
		return ev, obj, &domain.Error{Kind: domain.KindInvalid, Code: "invalid_event", Message: "The event's object cannot be read.", Detail: err.Error()}
	}
	return ev, obj, nil
}

// apply records the event and applies it inside tx; it reports whether the team's workflow must be told.
func (s *Service) apply(ctx context.Context, tx *storage.Store, ev event, obj stripeObject, res *WebhookResult) (bool, error) {
	sub, err := s.findSubscription(ctx, tx, ev.Type, obj)
	if err != nil {
		return false, err
	}
	var teamID *string
	if sub != nil {
		teamID, res.TeamID = &sub.TeamID, sub.TeamID
	}
	fresh, err := tx.RecordStripeEvent(ctx, ev.ID, ev.Type, teamID)
	if err != nil || !fresh {
		res.Replayed = !fresh
		return false, err
	}
	if sub == nil {
		res.Ignored = "unknown customer or subscription"
		if !isHandled(ev.Type) {
			res.Ignored = "event type not handled"
		}
		return false, nil
	}
	at := time.Unix(ev.Created, 0).UTC()
	if at.Before(sub.StatusAt.Truncate(time.Second)) {
		res.Ignored, res.Status = "older than the status it would change", sub.Status
		return false, nil
	}
	before := sub.Status
	changed, err := s.applyToSubscription(ctx, tx, ev.Type, obj, sub, at)
	if err == nil {
		err = emitProblem(ctx, tx, ev, before, sub)
	}
	res.Status = sub.Status
	if err == nil && !changed {
		res.Ignored = "nothing to change"
	}
	return changed, err
}

// emitProblem records a billing_problem alert, in the transaction that applies the event, when a payment failed
// or the subscription became past due, unpaid or cancelled; once per Stripe event.
func emitProblem(ctx context.Context, tx *storage.Store, ev event, before string, sub *storage.Subscription) error {
	var msg string
	switch {
	case ev.Type == EventInvoicePaymentFail:
		msg = "A payment failed; Stripe retries it. The subscription is " + sub.Status + "."
	case sub.Status == before:
		return nil
	case sub.Status == StatusPastDue, sub.Status == StatusUnpaid:
		msg = "The subscription is " + sub.Status + ": pay the open invoice, or the team's instances are suspended."
	case sub.Status == StatusCanceled:
		msg = "The subscription was cancelled; the team's instances are suspended."
	default:
		return nil
	}
	name := sub.TeamID
	if team, err := tx.GetTeam(ctx, sub.TeamID); err == nil {
		name = team.Name
	}
	_, err := alerts.Emit(ctx, tx, alerts.Event{TeamID: sub.TeamID, Kind: alerts.KindBillingProblem, SubjectType: "team",
		SubjectID: sub.TeamID, SubjectName: name, Message: msg, DedupKey: alerts.KindBillingProblem + ":" + ev.ID})
	return err
}

func isHandled(typ string) bool {
	switch typ {
	case EventCheckoutCompleted, EventSubscriptionUpdated, EventSubscriptionDeleted, EventInvoicePaymentFail, EventInvoicePaid:
		return true
	}
	return false
}

// findSubscription finds the team an event is about: by the checkout session's client reference, else by
// subscription, else by customer. Nil means none.
func (s *Service) findSubscription(ctx context.Context, tx *storage.Store, typ string, obj stripeObject) (*storage.Subscription, error) {
	if !isHandled(typ) {
		return nil, nil
	}
	if typ == EventCheckoutCompleted && obj.ClientReferenceID != "" {
		sub, err := tx.GetSubscriptionForUpdate(ctx, obj.ClientReferenceID)
		if err == nil || !domain.IsKind(err, domain.KindNotFound) {
			return sub, err
		}
		if _, err := tx.GetTeam(ctx, obj.ClientReferenceID); err != nil {
			return nil, ignoreNotFound(err)
		}
		return &storage.Subscription{TeamID: obj.ClientReferenceID, Status: StatusNone}, nil
	}
	subID := string(obj.Subscription)
	if typ == EventSubscriptionUpdated || typ == EventSubscriptionDeleted {
		subID = obj.ID
	}
	sub, err := tx.FindSubscription(ctx, subID, string(obj.Customer))
	if err != nil {
		return nil, ignoreNotFound(err)
	}
	return tx.GetSubscriptionForUpdate(ctx, sub.TeamID)
}

func ignoreNotFound(err error) error {
	if domain.IsKind(err, domain.KindNotFound) {
		return nil
	}
	return err
}

// applyToSubscription changes the row as the event says and audits it; it reports whether anything changed.
func (s *Service) applyToSubscription(ctx context.Context, tx *storage.Store, typ string, obj stripeObject, sub *storage.Subscription, at time.Time) (bool, error) {
	before := sub.Status
	body := map[string]any{"from": before}
	switch typ {
	case EventCheckoutCompleted:
		sub.Status, sub.CustomerID, sub.SubscriptionID, sub.CheckoutSessionID = StatusActive, string(obj.Customer), string(obj.Subscription), obj.ID
		sub.TrialEndsAt, sub.SyncedAt = nil, nil
		body["subscriptionId"] = sub.SubscriptionID
	case EventSubscriptionUpdated, EventSubscriptionDeleted:
		if sub.SubscriptionID != "" && obj.ID != sub.SubscriptionID {
			return false, nil // an old subscription of the same customer
		}
		sub.Status = obj.Status
		if typ == EventSubscriptionDeleted || obj.Status == "" {
			sub.Status = StatusCanceled
		}
		if obj.CurrentPeriodEnd > 0 {
			end := time.Unix(obj.CurrentPeriodEnd, 0).UTC()
			sub.CurrentPeriodEnd = &end
		}
	case EventInvoicePaymentFail:
		if sub.Status == StatusActive {
			sub.Status = StatusPastDue
		}
		body["invoice"] = obj.ID
	case EventInvoicePaid:
		if sub.Status == StatusPastDue || sub.Status == StatusUnpaid {
			sub.Status = StatusActive
		}
		body["invoice"] = obj.ID
	}
	sub.StatusAt = at
	if err := tx.UpsertSubscription(ctx, sub); err != nil {
		return false, err
	}
	body["to"] = sub.Status
	if err := audit(ctx, tx, sub.TeamID, auditEvent(typ), body); err != nil {
		return false, err
	}
	return sub.Status != before || typ == EventCheckoutCompleted, nil
}

func auditEvent(typ string) string {
	switch typ {
	case EventCheckoutCompleted:
		return "billing.subscribed"
	case EventInvoicePaymentFail:
		return "billing.payment_failed"
	case EventInvoicePaid:
		return "billing.invoice_paid"
	case EventSubscriptionDeleted:
		return "billing.subscription_cancelled"
	}
	return "billing.subscription_updated"
}
