// Package stripetest gives tests a Stripe: stripe-mock (Stripe's own mock server, which checks every request
// against Stripe's API description but keeps no state) and Fake, a small stateful double behind the same
// billing.Stripe interface for tests that need a Stripe that remembers (drift repair, retries, call counts).
package stripetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/flowyard/flowyard/billing"
)

// Fake is an in-memory Stripe: subscriptions with items, idempotency keys as Stripe honours them (same key
// and request: the first answer again, nothing applied; same key, other request: an error), Stripe's refusal
// to hold one price twice, scripted failures, and a count of every call.
type Fake struct {
	mu        sync.Mutex
	subs      map[string]*billing.Subscription
	sessions  []billing.CheckoutRequest
	idem      map[string]idemEntry
	calls     map[string]int
	failures  []error // returned by the next calls, in order, before anything is applied
	lose      int     // the next updates are applied but answer as if the connection dropped
	seq       int
	cancelled map[string]bool
}

type idemEntry struct {
	hash [32]byte
	sub  billing.Subscription
}

// NewFake returns an empty Stripe.
func NewFake() *Fake {
	return &Fake{subs: map[string]*billing.Subscription{}, idem: map[string]idemEntry{}, calls: map[string]int{}, cancelled: map[string]bool{}}
}

// Server500 is what Stripe answers when it fails on its side.
var Server500 = &billing.Error{Status: http.StatusInternalServerError, Code: "api_error", Message: "An unknown error occurred", Temporary: true}

// Timeout is a request that got no answer.
var Timeout = &billing.Error{Message: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)", Temporary: true}

// AddSubscription creates an active subscription for a customer with items (IDs assigned) and returns its ID.
func (f *Fake) AddSubscription(customerID string, items ...billing.Item) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("sub_fake%d", f.seq)
	sub := &billing.Subscription{ID: id, CustomerID: customerID, Status: "active", CurrentPeriodEnd: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, it := range items {
		sub.Items = append(sub.Items, f.newItem(it.PriceID, it.Quantity))
	}
	f.subs[id] = sub
	return id
}

func (f *Fake) newItem(price string, q int64) billing.Item {
	f.seq++
	return billing.Item{ID: fmt.Sprintf("si_fake%d", f.seq), PriceID: price, Quantity: q}
}

// SetQuantity changes an item's quantity behind the platform's back (drift), adding the item if missing.
func (f *Fake) SetQuantity(subID, priceID string, q int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := f.subs[subID]
	for i := range sub.Items {
		if sub.Items[i].PriceID == priceID {
			sub.Items[i].Quantity = q
			return
		}
	}
	sub.Items = append(sub.Items, f.newItem(priceID, q))
}

// SetStatus changes a subscription's status behind the platform's back.
func (f *Fake) SetStatus(subID, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[subID].Status = status
}

// Quantities returns a subscription's quantity per price.
func (f *Fake) Quantities(subID string) map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for _, it := range f.subs[subID].Items {
		out[it.PriceID] += it.Quantity
	}
	return out
}

// FailNext makes the next calls fail with errs, one each, before anything is applied.
func (f *Fake) FailNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, errs...)
}

// LoseNextUpdates makes the next n updates apply on "Stripe's side" but answer a timeout, as when a
// connection drops after Stripe committed.
func (f *Fake) LoseNextUpdates(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lose += n
}

// Calls returns how many calls were made: all of them, or those of the named methods.
func (f *Fake) Calls(methods ...string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for m, c := range f.calls {
		if len(methods) == 0 || slices.Contains(methods, m) {
			n += c
		}
	}
	return n
}

// ResetCalls forgets the call counts.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
}

// Sessions returns the Checkout sessions created.
func (f *Fake) Sessions() []billing.CheckoutRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sessions)
}

// call counts a call and pops a scripted failure. Callers hold f.mu.
func (f *Fake) call(method string) error {
	f.calls[method]++
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return err
	}
	return nil
}

// CreateCheckoutSession records the request and returns a session.
func (f *Fake) CreateCheckoutSession(ctx context.Context, req billing.CheckoutRequest) (billing.CheckoutSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateCheckoutSession"); err != nil {
		return billing.CheckoutSession{}, err
	}
	f.sessions = append(f.sessions, req)
	f.seq++
	id := fmt.Sprintf("cs_fake%d", f.seq)
	return billing.CheckoutSession{ID: id, URL: "https://checkout.stripe.test/" + id}, nil
}

// GetSubscription returns a copy of a subscription.
func (f *Fake) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("GetSubscription"); err != nil {
		return billing.Subscription{}, err
	}
	sub, ok := f.subs[id]
	if !ok {
		return billing.Subscription{}, &billing.Error{Status: 404, Code: "resource_missing", Message: "No such subscription: " + id}
	}
	return clone(sub), nil
}

// UpdateSubscription applies item changes as Stripe does, honouring the idempotency key.
func (f *Fake) UpdateSubscription(ctx context.Context, id string, req billing.SubscriptionUpdate) (billing.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateSubscription"); err != nil {
		return billing.Subscription{}, err
	}
	body, _ := json.Marshal(req.Changes)
	hash := sha256.Sum256(append([]byte(id), body...))
	if e, ok := f.idem[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
		if e.hash != hash {
			return billing.Subscription{}, &billing.Error{Status: 400, Code: "idempotency_error", Message: "Keys for idempotent requests can only be used with the same parameters they were first used with."}
		}
		return e.sub, nil
	}
	sub, ok := f.subs[id]
	if !ok {
		return billing.Subscription{}, &billing.Error{Status: 404, Code: "resource_missing", Message: "No such subscription: " + id}
	}
	next, err := f.applyChanges(sub, req.Changes)
	if err != nil {
		return billing.Subscription{}, err
	}
	f.subs[id] = next
	out := clone(next)
	if req.IdempotencyKey != "" {
		f.idem[req.IdempotencyKey] = idemEntry{hash: hash, sub: out}
	}
	if f.lose > 0 {
		f.lose--
		return billing.Subscription{}, Timeout
	}
	return out, nil
}

func (f *Fake) applyChanges(sub *billing.Subscription, changes []billing.ItemChange) (*billing.Subscription, error) {
	next := clone(sub)
	for _, ch := range changes {
		i := slices.IndexFunc(next.Items, func(it billing.Item) bool { return it.ID == ch.ID })
		switch {
		case ch.ID == "":
			if slices.ContainsFunc(next.Items, func(it billing.Item) bool { return it.PriceID == ch.PriceID }) {
				return nil, &billing.Error{Status: 400, Code: "parameter_invalid", Message: "Cannot add multiple subscription items with the same price: " + ch.PriceID}
			}
			next.Items = append(next.Items, f.newItem(ch.PriceID, ch.Quantity))
		case i < 0:
			return nil, &billing.Error{Status: 400, Code: "resource_missing", Message: "No such subscription item: " + ch.ID}
		case ch.Delete:
			next.Items = slices.Delete(next.Items, i, i+1)
		default:
			next.Items[i].Quantity = ch.Quantity
		}
	}
	if len(next.Items) == 0 {
		return nil, &billing.Error{Status: 400, Code: "parameter_invalid", Message: "A subscription must keep at least one item."}
	}
	return &next, nil
}

// CancelSubscription marks a subscription canceled.
func (f *Fake) CancelSubscription(ctx context.Context, id, idempotencyKey string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CancelSubscription"); err != nil {
		return err
	}
	if sub, ok := f.subs[id]; ok {
		sub.Status = "canceled"
	}
	return nil
}

func clone(s *billing.Subscription) billing.Subscription {
	out := *s
	out.Items = slices.Clone(s.Items)
	return out
}
