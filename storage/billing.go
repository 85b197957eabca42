package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Subscription mirrors a team's Stripe subscription (or its trial). Status is Stripe's subscription status
// (active, past_due, unpaid, canceled, incomplete, ...) or one of Flowyard's own: trial, trial_ended, none
// (billed but never subscribed).
type Subscription struct {
	bun.BaseModel     `bun:"table:subscriptions,alias:sub"`
	TeamID            string `bun:",pk"`
	Status            string
	CustomerID        string
	SubscriptionID    string
	CheckoutSessionID string
	TrialEndsAt       *time.Time
	CurrentPeriodEnd  *time.Time
	StatusAt          time.Time    // the time of the Stripe event that set Status; older events do not move it
	Items             []BilledItem `bun:",type:text"`
	SyncedAt          *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// BilledItem is one item of a subscription as last written to (or read from) Stripe.
type BilledItem struct {
	ItemID   string `json:"itemId,omitempty"`
	PriceID  string `json:"priceId"`
	Quantity int64  `json:"quantity"`
}

// Usage is what a team holds that it may be billed for.
type Usage struct {
	InstancesByType map[string]int // instances that are not suspended or being deleted, per instance type
	Devices         int
}

// Instance states that cost nothing: a suspended instance, or one on its way out.
var unbilledStates = []domain.InstanceState{domain.InstanceSuspended, domain.InstanceDeleting}

// UpsertSubscription writes a team's subscription row, creating it when missing.
func (s *Store) UpsertSubscription(ctx context.Context, sub *Subscription) error {
	sub.UpdatedAt = now()
	if sub.CreatedAt.IsZero() {
		sub.CreatedAt = sub.UpdatedAt
	}
	if sub.StatusAt.IsZero() {
		sub.StatusAt = sub.UpdatedAt
	}
	if sub.Items == nil {
		sub.Items = []BilledItem{}
	}
	_, err := s.db.NewInsert().Model(sub).On("CONFLICT (team_id) DO UPDATE").
		Set("status = EXCLUDED.status").Set("customer_id = EXCLUDED.customer_id").
		Set("subscription_id = EXCLUDED.subscription_id").Set("checkout_session_id = EXCLUDED.checkout_session_id").
		Set("trial_ends_at = EXCLUDED.trial_ends_at").Set("current_period_end = EXCLUDED.current_period_end").
		Set("status_at = EXCLUDED.status_at").Set("items = EXCLUDED.items").Set("synced_at = EXCLUDED.synced_at").
		Set("updated_at = EXCLUDED.updated_at").Exec(ctx)
	return err
}

// GetSubscription returns a team's subscription row.
func (s *Store) GetSubscription(ctx context.Context, teamID string) (*Subscription, error) {
	sub := new(Subscription)
	err := s.db.NewSelect().Model(sub).Where("team_id = ?", teamID).Scan(ctx)
	return sub, classify(err, "subscription")
}

// GetSubscriptionForUpdate returns a team's subscription row, locked until the transaction ends on Postgres
// (SQLite transactions already hold the write lock).
func (s *Store) GetSubscriptionForUpdate(ctx context.Context, teamID string) (*Subscription, error) {
	sub := new(Subscription)
	q := s.db.NewSelect().Model(sub).Where("team_id = ?", teamID)
	if s.Dialect() == "pg" {
		q = q.For("UPDATE")
	}
	return sub, classify(q.Scan(ctx), "subscription")
}

// FindSubscription finds the row of a Stripe subscription, or failing that of a Stripe customer.
func (s *Store) FindSubscription(ctx context.Context, subscriptionID, customerID string) (*Subscription, error) {
	sub := new(Subscription)
	if subscriptionID != "" {
		err := s.db.NewSelect().Model(sub).Where("subscription_id = ?", subscriptionID).Limit(1).Scan(ctx)
		if err = classify(err, "subscription"); !domain.IsKind(err, domain.KindNotFound) {
			return sub, err
		}
	}
	if customerID == "" {
		return nil, domain.NotFound("subscription")
	}
	err := s.db.NewSelect().Model(sub).Where("customer_id = ?", customerID).OrderExpr("updated_at DESC").Limit(1).Scan(ctx)
	return sub, classify(err, "subscription")
}

// UpdateSubscription writes the given columns of a subscription row.
func (s *Store) UpdateSubscription(ctx context.Context, sub *Subscription, columns ...string) error {
	sub.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(sub).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "subscription")
}

// ListSubscriptions returns a page of every team's subscription row, for reconciliation.
func (s *Store) ListSubscriptions(ctx context.Context, p Page) ([]Subscription, string, error) {
	q := s.db.NewSelect().Model((*Subscription)(nil))
	return listPage(ctx, q, "team_id", p, func(sub *Subscription) string { return sub.TeamID })
}

type stripeEvent struct {
	bun.BaseModel `bun:"table:stripe_events"`
	ID            string `bun:",pk"`
	Type          string
	TeamID        *string
	ReceivedAt    time.Time
}

// RecordStripeEvent remembers that a Stripe event was applied. It reports false when the event was seen
// before, so that a replayed webhook changes nothing. Run it in the transaction that applies the event.
func (s *Store) RecordStripeEvent(ctx context.Context, id, typ string, teamID *string) (bool, error) {
	_, err := s.db.NewInsert().Model(&stripeEvent{ID: id, Type: typ, TeamID: teamID, ReceivedAt: now()}).Exec(ctx)
	if isUniqueViolation(err) {
		return false, nil
	}
	return err == nil, err
}

// TeamUsage counts what a team may be billed for: its instances that are neither suspended nor being
// deleted, per instance type, and its devices.
func (s *Store) TeamUsage(ctx context.Context, teamID string) (Usage, error) {
	var rows []struct {
		InstanceTypeID string
		N              int
	}
	err := s.db.NewSelect().Model((*Instance)(nil)).ColumnExpr("instance_type_id, count(*) AS n").
		Where("team_id = ?", teamID).Where("state NOT IN (?)", bun.List(unbilledStates)).
		Group("instance_type_id").Scan(ctx, &rows)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{InstancesByType: map[string]int{}}
	for _, r := range rows {
		u.InstancesByType[r.InstanceTypeID] = r.N
	}
	u.Devices, err = count(s.db.NewSelect().Model((*Device)(nil)).Where("team_id = ?", teamID).Count(ctx))
	return u, err
}

// ListTeamInstancesInStates returns a team's instances in one of the states, or in none of them when not is
// set.
func (s *Store) ListTeamInstancesInStates(ctx context.Context, teamID string, not bool, states ...domain.InstanceState) ([]Instance, error) {
	var out []Instance
	q := s.db.NewSelect().Model(&out).Where("team_id = ?", teamID)
	if not {
		q = q.Where("state NOT IN (?)", bun.List(states))
	} else {
		q = q.Where("state IN (?)", bun.List(states))
	}
	return out, q.Order("id").Scan(ctx)
}
