package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Subscription statuses: Stripe's own (mirrored from its webhooks) and three of Flowyard's.
const (
	StatusNone       = "none"        // a billed team that has not subscribed
	StatusTrial      = "trial"       // in its trial, no subscription needed
	StatusTrialEnded = "trial_ended" // the trial ended without a subscription
	StatusActive     = "active"
	StatusTrialing   = "trialing" // Stripe's own trial period on a subscription
	StatusPastDue    = "past_due" // a payment failed; Stripe retries, the team keeps working meanwhile
	StatusUnpaid     = "unpaid"
	StatusCanceled   = "canceled"
)

// Subscribed reports whether the status is a Stripe subscription in good standing, whose items the platform
// keeps in step with usage.
func Subscribed(status string) bool {
	return status == StatusActive || status == StatusPastDue || status == StatusTrialing
}

// Notifier tells a team's billing workflow that something changed. The workflow facade implements it.
type Notifier interface {
	UsageChanged(ctx context.Context, teamID string) error
	StatusChanged(ctx context.Context, teamID string) error
}

// InstanceSuspender suspends one instance through its lifecycle workflow. It answers a domain conflict
// while another action runs on the instance.
type InstanceSuspender interface {
	Suspend(ctx context.Context, instanceID, teamID, operationID string) error
}

// Service is billing's logic over the store and Stripe.
type Service struct {
	Store         *storage.Store
	Stripe        Stripe
	WebhookSecret string
	Notify        Notifier          // nil: nobody is told (tests)
	Instances     InstanceSuspender // nil: instances are not suspended (tests)
	PublicURL     string            // where Checkout sends the owner back
	Log           *slog.Logger
	Now           func() time.Time // nil: time.Now
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// teamBilling loads a team's type and its subscription row (a zero row with status none when it has none).
func (s *Service) teamBilling(ctx context.Context, st *storage.Store, teamID string) (domain.TeamTypeProperties, *storage.Subscription, error) {
	team, err := st.GetTeam(ctx, teamID)
	if err != nil {
		return domain.TeamTypeProperties{}, nil, err
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, st, team.TeamTypeID)
	if err != nil {
		return domain.TeamTypeProperties{}, nil, err
	}
	sub, err := st.GetSubscription(ctx, teamID)
	if domain.IsKind(err, domain.KindNotFound) {
		return tt.Properties, &storage.Subscription{TeamID: teamID, Status: StatusNone}, nil
	}
	return tt.Properties, sub, err
}

// TeamCreated starts a new team's trial when its type has one, or records that it must subscribe. Run it in
// the transaction that creates the team, and call StatusChanged after it commits so the trial's timer is set.
func (s *Service) TeamCreated(ctx context.Context, tx *storage.Store, team *storage.Team) error {
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	if !tt.Properties.Billing.Billed() {
		return nil
	}
	sub := &storage.Subscription{TeamID: team.ID, Status: StatusNone}
	if days := tt.Properties.Trial.Days; days > 0 {
		ends := s.now().Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Microsecond)
		sub.Status, sub.TrialEndsAt = StatusTrial, &ends
	}
	return tx.UpsertSubscription(ctx, sub)
}

// CheckCanRun refuses, with a 402, to create (creating) or start an instance in a team whose billing does not
// allow it: a billed team type without a subscription in good standing or a running trial. During a trial
// limited to one instance type, only one instance of that type may be created.
func (s *Service) CheckCanRun(ctx context.Context, st *storage.Store, teamID, instanceTypeID string, creating bool) error {
	props, sub, err := s.teamBilling(ctx, st, teamID)
	if err != nil || !props.Billing.Billed() || Subscribed(sub.Status) {
		return err
	}
	if sub.Status == StatusTrial && sub.TrialEndsAt != nil && s.now().Before(*sub.TrialEndsAt) {
		return s.checkTrialAllows(ctx, st, props.Trial, teamID, instanceTypeID, creating)
	}
	return paymentRequired(sub.Status)
}

func (s *Service) checkTrialAllows(ctx context.Context, st *storage.Store, trial domain.TeamTrial, teamID, instanceTypeID string, creating bool) error {
	if !creating || trial.InstanceTypeID == "" {
		return nil
	}
	if instanceTypeID != trial.InstanceTypeID {
		return &domain.Error{Kind: domain.KindPaymentRequired, Code: "trial_instance_type",
			Message:     "During the trial the team may only create instances of the trial's instance type; subscribe to use others.",
			Validations: []domain.FieldError{{Field: "instanceTypeId", Detail: "must be " + trial.InstanceTypeID + " during the trial"}}}
	}
	n, err := st.CountTeamInstances(ctx, teamID, "")
	if err != nil {
		return err
	}
	if n >= 1 {
		return &domain.Error{Kind: domain.KindPaymentRequired, Code: "trial_limit",
			Message: "During the trial the team may run one instance; subscribe to add more."}
	}
	return nil
}

func paymentRequired(status string) error {
	msg := "The team needs a subscription before it can create or start instances; an owner can subscribe at POST /api/v1/teams/{teamId}/billing/checkout."
	switch status {
	case StatusTrialEnded, StatusTrial:
		msg = "The team's trial has ended; an owner can subscribe at POST /api/v1/teams/{teamId}/billing/checkout to create or start instances again."
	case StatusCanceled:
		msg = "The team's subscription was cancelled; an owner can subscribe again at POST /api/v1/teams/{teamId}/billing/checkout."
	case StatusUnpaid:
		msg = "The team's subscription is unpaid; instances can be created or started again once the open invoice is paid."
	}
	return &domain.Error{Kind: domain.KindPaymentRequired, Code: "billing_required", Message: msg, Detail: "Subscription status: " + status + "."}
}

// UsageChanged tells the team's billing workflow that its usage changed, when the team has a subscription to
// keep in step. A failure is logged: the hourly reconciliation repairs what a lost signal leaves behind.
func (s *Service) UsageChanged(ctx context.Context, teamID string) {
	if s.Notify == nil {
		return
	}
	sub, err := s.Store.GetSubscription(ctx, teamID)
	if err != nil || !Subscribed(sub.Status) {
		return
	}
	if err := s.Notify.UsageChanged(ctx, teamID); err != nil {
		s.log().Warn("signal billing usage change", "team", teamID, "err", err)
	}
}

// StatusChanged tells the team's billing workflow that its subscription status (or trial) changed.
func (s *Service) StatusChanged(ctx context.Context, teamID string) {
	if s.Notify == nil {
		return
	}
	if _, err := s.Store.GetSubscription(ctx, teamID); err != nil {
		return // not a billed team
	}
	if err := s.Notify.StatusChanged(ctx, teamID); err != nil {
		s.log().Warn("signal billing status change", "team", teamID, "err", err)
	}
}

// State is what a team's billing workflow needs to know to act.
type State struct {
	Status      string
	TrialEndsAt *time.Time // set while a trial runs
	Subscribed  bool       // a Stripe subscription whose items follow usage
	Suspend     bool       // billing says the team's instances must be suspended
}

// TeamState reads a team's billing state. A team that is gone has an empty state.
func (s *Service) TeamState(ctx context.Context, teamID string) (State, error) {
	props, sub, err := s.teamBilling(ctx, s.Store, teamID)
	if domain.IsKind(err, domain.KindNotFound) {
		return State{Status: StatusNone}, nil
	}
	if err != nil {
		return State{}, err
	}
	st := State{Status: sub.Status, Subscribed: Subscribed(sub.Status) && sub.SubscriptionID != ""}
	if !props.Billing.Billed() {
		return st, nil
	}
	switch sub.Status {
	case StatusTrial:
		st.TrialEndsAt = sub.TrialEndsAt
	case StatusTrialEnded:
		st.Suspend = props.Trial.SuspendsAtEnd()
	case StatusCanceled, StatusUnpaid, "incomplete_expired":
		st.Suspend = true
	}
	return st, nil
}

// EndTrial ends a team's trial if it is due: the status becomes trial_ended and the audit log says so. It
// reports the state afterwards; a trial moved later (or already converted to a subscription) is left alone.
func (s *Service) EndTrial(ctx context.Context, teamID string) (State, error) {
	err := s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		sub, err := tx.GetSubscriptionForUpdate(ctx, teamID)
		if domain.IsKind(err, domain.KindNotFound) {
			return nil
		}
		if err != nil || sub.Status != StatusTrial || sub.TrialEndsAt == nil || s.now().Before(*sub.TrialEndsAt) {
			return err
		}
		sub.Status, sub.StatusAt = StatusTrialEnded, s.now()
		if err := tx.UpdateSubscription(ctx, sub, "status", "status_at"); err != nil {
			return err
		}
		return audit(ctx, tx, teamID, "billing.trial_ended", map[string]any{"trialEndsAt": sub.TrialEndsAt})
	})
	if err != nil {
		return State{}, fmt.Errorf("end trial: %w", err)
	}
	return s.TeamState(ctx, teamID)
}

// SuspendInstances suspends every instance of the team that is not suspended already, each through its
// lifecycle workflow, recording an operation and an audit entry. Instances busy with another action are
// left for a retry: the error then says how many.
func (s *Service) SuspendInstances(ctx context.Context, teamID, reason string) (int, error) {
	if s.Instances == nil {
		return 0, nil
	}
	list, err := s.Store.ListTeamInstancesInStates(ctx, teamID, true, domain.InstanceSuspended, domain.InstanceSuspending, domain.InstanceDeleting)
	if err != nil {
		return 0, err
	}
	started, busy := 0, 0
	for _, in := range list {
		err := s.suspendOne(ctx, &in, reason)
		switch {
		case err == nil:
			started++
		case domain.IsKind(err, domain.KindConflict):
			busy++
		default:
			return started, err
		}
	}
	if busy > 0 {
		return started, fmt.Errorf("%d instances are busy with another action; suspend them later", busy)
	}
	return started, nil
}

func (s *Service) suspendOne(ctx context.Context, in *storage.Instance, reason string) error {
	op := &storage.Operation{ID: domain.NewID(), Kind: "suspend", SubjectType: "instance", SubjectID: in.ID, TeamID: &in.TeamID,
		Status: domain.OperationPending, WorkflowID: "instance/" + in.ID}
	err := s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if _, _, err := tx.InsertOperation(ctx, op); err != nil {
			return err
		}
		return tx.InsertAudit(ctx, &storage.AuditEntry{TeamID: &in.TeamID, Event: "instance.suspend", EntityType: "instance", EntityID: in.ID,
			Body: map[string]any{"by": "billing", "reason": reason}})
	})
	if err != nil {
		return err
	}
	if err := s.Instances.Suspend(ctx, in.ID, in.TeamID, op.ID); err != nil {
		op.Status, op.Error = domain.OperationFailed, err.Error()
		if _, uerr := s.Store.UpdateOperation(ctx, op, domain.OperationPending); uerr != nil {
			s.log().Error("mark suspend operation failed", "operation", op.ID, "err", uerr)
		}
		return err
	}
	return nil
}

// SyncResult says what a sync did.
type SyncResult struct {
	Skipped     string       `json:"skipped,omitempty"` // why nothing was compared
	StripeCalls int          `json:"stripeCalls"`
	Changes     []ItemChange `json:"changes,omitempty"`
}

// Sync brings a subscribed team's Stripe items in line with its usage. key is the caller's idempotency base:
// the same key on a retry replays Stripe's first answer instead of applying twice. A change-driven sync
// (reconcile false) trusts the items it last wrote and calls Stripe only when usage moved away from them;
// a reconciliation always reads Stripe, corrects any drift and records each correction in the audit log.
func (s *Service) Sync(ctx context.Context, teamID, key string, reconcile bool) (SyncResult, error) {
	props, sub, err := s.teamBilling(ctx, s.Store, teamID)
	if domain.IsKind(err, domain.KindNotFound) {
		return SyncResult{Skipped: "team gone"}, nil
	}
	if err != nil {
		return SyncResult{}, err
	}
	if !Subscribed(sub.Status) || sub.SubscriptionID == "" {
		return SyncResult{Skipped: "no subscription in good standing"}, nil
	}
	usage, err := s.Store.TeamUsage(ctx, teamID)
	if err != nil {
		return SyncResult{}, err
	}
	want := Want(Lines(props.Billing, usage))
	if !reconcile && sub.SyncedAt != nil && sameItems(fromBilled(sub.Items), want) {
		return SyncResult{Skipped: "already billed for this usage"}, nil
	}
	p, err := s.pushItems(ctx, sub.SubscriptionID, want, props.Billing.Proration, key)
	res := SyncResult{StripeCalls: p.calls, Changes: p.changes}
	if err != nil {
		return res, err
	}
	return res, s.recordSync(ctx, sub, p.before, p.after, want, reconcile && len(p.changes) > 0)
}

// pushed is what pushItems did: the changes it sent, the subscription before and after, and its Stripe calls.
type pushed struct {
	changes       []ItemChange
	before, after Subscription
	calls         int
}

// pushItems brings a subscription's items in Stripe to want: it reads the subscription and sends the changes,
// if any, in one update whose idempotency key derives from key and the changes.
func (s *Service) pushItems(ctx context.Context, subscriptionID string, want []Item, proration, key string) (pushed, error) {
	p := pushed{calls: 1}
	cur, err := s.Stripe.GetSubscription(ctx, subscriptionID)
	if err != nil {
		return p, fmt.Errorf("read subscription: %w", err)
	}
	p.before, p.after, p.changes = cur, cur, Diff(cur.Items, want)
	if len(p.changes) == 0 {
		return p, nil
	}
	p.calls++
	upd := SubscriptionUpdate{Changes: p.changes, Proration: proration, IdempotencyKey: requestKey(key, subscriptionID, p.changes)}
	if p.after, err = s.Stripe.UpdateSubscription(ctx, subscriptionID, upd); err != nil {
		return p, fmt.Errorf("update subscription items: %w", err)
	}
	return p, nil
}

// recordSync writes the items now billed, mirrors the status Stripe reported (a missed webhook is repaired
// here), and audits a drift correction.
func (s *Service) recordSync(ctx context.Context, sub *storage.Subscription, before, after Subscription, want []Item, drift bool) error {
	var statusMoved bool
	err := s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		var err error
		if statusMoved, err = s.writeItems(ctx, tx, sub, after); err != nil || !drift {
			return err
		}
		return audit(ctx, tx, sub.TeamID, "billing.drift_corrected", map[string]any{"subscriptionId": sub.SubscriptionID,
			"stripe": before.Items, "corrected": want})
	})
	if err == nil && statusMoved {
		s.StatusChanged(ctx, sub.TeamID)
	}
	return err
}

// writeItems records on a team's subscription row what Stripe answered: the items now billed, the period's
// end, and its status (reporting whether that moved).
func (s *Service) writeItems(ctx context.Context, tx *storage.Store, sub *storage.Subscription, after Subscription) (bool, error) {
	at := s.now()
	sub.Items, sub.SyncedAt = toBilled(after.Items), &at
	cols := []string{"items", "synced_at"}
	if !after.CurrentPeriodEnd.IsZero() {
		sub.CurrentPeriodEnd, cols = &after.CurrentPeriodEnd, append(cols, "current_period_end")
	}
	statusMoved := after.Status != "" && after.Status != sub.Status
	if statusMoved {
		sub.Status, sub.StatusAt, cols = after.Status, at, append(cols, "status", "status_at")
	}
	return statusMoved, tx.UpdateSubscription(ctx, sub, cols...)
}

// ChangeTeamType bills a team for the team type it moves to. Run it last in the transaction that moves the
// team, after the team's row names the new type: a refusal rolls the move back.
//
// A team with a subscription in good standing has its Stripe items replaced, in the request, by the new
// type's (plan, instance and device prices with their free allowances, at the new type's proration); when
// Stripe refuses or does not answer, the team stays on its type. A team without a subscription row that moves
// onto a billed type gets one with status none, so it must subscribe before it creates or starts instances
// (like a new team of that type without a trial).
func (s *Service) ChangeTeamType(ctx context.Context, tx *storage.Store, teamID string) error {
	props, sub, err := s.teamBilling(ctx, tx, teamID)
	if err != nil {
		return err
	}
	if !Subscribed(sub.Status) || sub.SubscriptionID == "" {
		if props.Billing.Billed() && sub.CreatedAt.IsZero() { // no row yet: the team was not billed
			return tx.UpsertSubscription(ctx, &storage.Subscription{TeamID: teamID, Status: StatusNone})
		}
		return nil
	}
	if sub, err = tx.GetSubscriptionForUpdate(ctx, teamID); err != nil { // a webhook waits until the move is done
		return err
	}
	usage, err := tx.TeamUsage(ctx, teamID)
	if err != nil {
		return err
	}
	want := Want(Lines(props.Billing, usage))
	p, err := s.pushItems(ctx, sub.SubscriptionID, want, props.Billing.Proration, "team-type/"+teamID+"/"+domain.NewID())
	if err != nil {
		s.log().Error("change subscription for a new team type", "team", teamID, "err", err)
		return stripeUnavailable(err)
	}
	if _, err := s.writeItems(ctx, tx, sub, p.after); err != nil {
		return err
	}
	return audit(ctx, tx, teamID, "billing.team_type_changed", map[string]any{"subscriptionId": sub.SubscriptionID, "changes": p.changes, "items": want})
}

// Checkout starts a Stripe Checkout session for a team to subscribe, with the team's current usage as line
// items, and remembers it on the team's subscription row.
func (s *Service) Checkout(ctx context.Context, teamID, email, successURL, cancelURL string) (CheckoutSession, error) {
	props, sub, err := s.teamBilling(ctx, s.Store, teamID)
	if err != nil {
		return CheckoutSession{}, err
	}
	if !props.Billing.Billed() {
		return CheckoutSession{}, domain.Unprocessable("not_billed", "The team's type is not billed; it needs no subscription.")
	}
	if Subscribed(sub.Status) {
		return CheckoutSession{}, domain.Conflict("already_subscribed", "The team already has a subscription.")
	}
	usage, err := s.Store.TeamUsage(ctx, teamID)
	if err != nil {
		return CheckoutSession{}, err
	}
	items := Want(Lines(props.Billing, usage))
	if len(items) == 0 {
		return CheckoutSession{}, domain.Unprocessable("nothing_to_bill", "The team holds nothing billable yet; create an instance first.")
	}
	base := s.PublicURL + "/teams/" + teamID + "/billing"
	if successURL == "" {
		successURL = base + "?checkout=success"
	}
	if cancelURL == "" {
		cancelURL = base + "?checkout=cancelled"
	}
	sess, err := s.Stripe.CreateCheckoutSession(ctx, CheckoutRequest{TeamID: teamID, CustomerID: sub.CustomerID, CustomerEmail: email,
		Items: items, SuccessURL: successURL, CancelURL: cancelURL, IdempotencyKey: "checkout/" + teamID + "/" + domain.NewID()})
	if err != nil {
		s.log().Error("create checkout session", "team", teamID, "err", err)
		return CheckoutSession{}, stripeUnavailable(err)
	}
	err = s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		sub.CheckoutSessionID = sess.ID
		if err := tx.UpsertSubscription(ctx, sub); err != nil {
			return err
		}
		return audit(ctx, tx, teamID, "billing.checkout_started", map[string]any{"sessionId": sess.ID, "items": items})
	})
	return sess, err
}

func stripeUnavailable(err error) error {
	var se *Error
	if errors.As(err, &se) && !se.Temporary {
		return &domain.Error{Kind: domain.KindUnprocessable, Code: "stripe_refused", Message: "Stripe refused the request.", Detail: se.Message}
	}
	return domain.Unavailable("stripe_unavailable", "Stripe did not answer; try again in a moment.")
}

// CancelForTeam cancels a team's Stripe subscription when the team is deleted. Run it last in the
// transaction that deletes the team: if Stripe fails, the team stays.
func (s *Service) CancelForTeam(ctx context.Context, tx *storage.Store, teamID string) error {
	sub, err := tx.GetSubscription(ctx, teamID)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && (sub.SubscriptionID == "" || sub.Status == StatusCanceled) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.Stripe.CancelSubscription(ctx, sub.SubscriptionID, "cancel/"+sub.SubscriptionID); err != nil {
		s.log().Error("cancel subscription", "team", teamID, "err", err)
		return stripeUnavailable(err)
	}
	return nil
}

func audit(ctx context.Context, tx *storage.Store, teamID, event string, body map[string]any) error {
	return tx.InsertAudit(ctx, &storage.AuditEntry{TeamID: &teamID, Event: event, EntityType: "team", EntityID: teamID, Body: body})
}

// View is a team's billing as its owners see it.
type View struct {
	Enabled        bool                 `json:"enabled"`
	Billed         bool                 `json:"billed"` // the team's type is billed
	Status         string               `json:"status"`
	TrialEndsAt    *time.Time           `json:"trialEndsAt,omitempty"`
	CustomerID     string               `json:"customerId,omitempty"`
	SubscriptionID string               `json:"subscriptionId,omitempty"`
	NextInvoiceAt  *time.Time           `json:"nextInvoiceAt,omitempty"`
	SyncedAt       *time.Time           `json:"syncedAt,omitempty"`
	Lines          []Line               `json:"lines"` // what the team is billed for now
	Items          []storage.BilledItem `json:"items"` // the subscription's items as last written to or read from Stripe
}

// TeamView reads a team's billing for its owners, from the store (no Stripe call).
func (s *Service) TeamView(ctx context.Context, teamID string) (View, error) {
	props, sub, err := s.teamBilling(ctx, s.Store, teamID)
	if err != nil {
		return View{}, err
	}
	usage, err := s.Store.TeamUsage(ctx, teamID)
	if err != nil {
		return View{}, err
	}
	v := View{Enabled: true, Billed: props.Billing.Billed(), Status: sub.Status, TrialEndsAt: sub.TrialEndsAt, CustomerID: sub.CustomerID,
		SubscriptionID: sub.SubscriptionID, NextInvoiceAt: sub.CurrentPeriodEnd, SyncedAt: sub.SyncedAt,
		Lines: Lines(props.Billing, usage), Items: sub.Items}
	if !v.Billed {
		v.Status = "not_billed"
	}
	if v.Lines == nil {
		v.Lines = []Line{}
	}
	if v.Items == nil {
		v.Items = []storage.BilledItem{}
	}
	return v, nil
}
