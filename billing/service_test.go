package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/billingtest"
	"github.com/flowyard/flowyard/billing/stripetest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

const secret = "whsec_test"

func newService(st *storage.Store, s billing.Stripe) *billing.Service {
	return &billing.Service{Store: st, Stripe: s, WebhookSecret: secret, PublicURL: "http://127.0.0.1:8080"}
}

func TestLinesAndDiff(t *testing.T) {
	props := billingtest.Properties("small")
	lines := billing.Lines(props.Billing, storage.Usage{InstancesByType: map[string]int{"small": 4}, Devices: 1})
	want := billing.Want(lines)
	assert.Equal(t, []billing.Item{{PriceID: billingtest.InstancePrice, Quantity: 3}, {PriceID: billingtest.PlanPrice, Quantity: 1}}, want,
		"one instance and two devices are free")

	current := []billing.Item{{ID: "si_1", PriceID: billingtest.PlanPrice, Quantity: 1}, {ID: "si_2", PriceID: billingtest.DevicePrice, Quantity: 5}}
	assert.Equal(t, []billing.ItemChange{{ID: "si_2", Delete: true}, {PriceID: billingtest.InstancePrice, Quantity: 3}}, billing.Diff(current, want))
	assert.Empty(t, billing.Diff([]billing.Item{{ID: "si_1", PriceID: "a", Quantity: 2}}, []billing.Item{{PriceID: "a", Quantity: 2}}))
	assert.Equal(t, []billing.ItemChange{{ID: "si_1", Quantity: 0}, {ID: "si_2", Delete: true}},
		billing.Diff([]billing.Item{{ID: "si_1", PriceID: "a", Quantity: 2}, {ID: "si_2", PriceID: "b", Quantity: 1}}, nil),
		"Stripe keeps at least one item")
}

// The drift repair: Stripe's quantity is changed behind the platform's back; a reconciliation reads Stripe,
// puts the quantity back and records the correction in the audit log.
func TestReconcileRepairsDrift(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		fake := stripetest.NewFake()
		svc := newService(st, fake)
		tm := billingtest.NewTeam(t, st, nil)
		for range 3 {
			tm.AddInstance("running")
		}
		tm.AddInstance("suspended")
		subID := fake.AddSubscription("cus_1", billing.Item{PriceID: billingtest.PlanPrice, Quantity: 1})
		tm.Subscribe(subID)

		res, err := svc.Sync(ctx, tm.ID, "k/1", false)
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{billingtest.PlanPrice: 1, billingtest.InstancePrice: 2}, fake.Quantities(subID),
			"three running instances, one free; the suspended one is not billed")
		assert.Equal(t, 2, res.StripeCalls)

		res, err = svc.Sync(ctx, tm.ID, "k/2", false)
		require.NoError(t, err)
		assert.Zero(t, res.StripeCalls, "nothing changed here: Stripe is not asked")

		fake.SetQuantity(subID, billingtest.InstancePrice, 9)
		fake.SetQuantity(subID, billingtest.DevicePrice, 4)
		res, err = svc.Sync(ctx, tm.ID, "k/3", true)
		require.NoError(t, err)
		assert.Len(t, res.Changes, 2)
		assert.Equal(t, map[string]int64{billingtest.PlanPrice: 1, billingtest.InstancePrice: 2}, fake.Quantities(subID))

		entries, _, err := st.ListAudit(ctx, tm.ID, storage.Page{})
		require.NoError(t, err)
		require.NotEmpty(t, entries)
		last := entries[len(entries)-1]
		assert.Equal(t, "billing.drift_corrected", last.Event)
		assert.Contains(t, fmt.Sprint(last.Body["stripe"]), "9")

		res, err = svc.Sync(ctx, tm.ID, "k/4", true)
		require.NoError(t, err)
		assert.Empty(t, res.Changes, "a second reconciliation finds nothing")
		after, _, err := st.ListAudit(ctx, tm.ID, storage.Page{})
		require.NoError(t, err)
		assert.Len(t, after, len(entries), "and audits nothing")
	})
}

// Stripe answering 500, or applying an update whose answer never arrives: retrying the same sync (same
// key) converges and never counts twice.
func TestSyncRetriesNeverDoubleCount(t *testing.T) {
	st := storagetest.New(t, "sqlite")
	ctx := context.Background()
	fake := stripetest.NewFake()
	svc := newService(st, fake)
	tm := billingtest.NewTeam(t, st, nil)
	subID := fake.AddSubscription("cus_1", billing.Item{PriceID: billingtest.PlanPrice, Quantity: 1})
	tm.Subscribe(subID)
	for range 4 {
		tm.AddInstance("running")
	}

	fake.FailNext(stripetest.Server500, stripetest.Timeout)
	fake.LoseNextUpdates(1)
	attempts := 0
	for ; attempts < 10; attempts++ {
		_, err := svc.Sync(ctx, tm.ID, "team/run/1", false)
		if err == nil {
			break
		}
		require.True(t, billing.IsTemporary(err), "%v", err)
	}
	assert.Equal(t, 3, attempts, "500, timeout and a lost answer, then success")
	assert.Equal(t, map[string]int64{billingtest.PlanPrice: 1, billingtest.InstancePrice: 3}, fake.Quantities(subID))
	assert.Equal(t, 1, fake.Calls("UpdateSubscription"), "the retry after the lost answer read Stripe, saw the change applied and sent nothing")

	// A lost answer retried blindly with the same key replays Stripe's first answer: still no double count.
	tm.AddInstance("running")
	fake.LoseNextUpdates(1)
	_, err := svc.Sync(ctx, tm.ID, "team/run/2", false)
	require.Error(t, err)
	_, err = svc.Sync(ctx, tm.ID, "team/run/2", false)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{billingtest.PlanPrice: 1, billingtest.InstancePrice: 4}, fake.Quantities(subID))
}

func TestTrialAndPaymentGate(t *testing.T) {
	st := storagetest.New(t, "sqlite")
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := newService(st, stripetest.NewFake())
	svc.Now = func() time.Time { return now }
	tm := billingtest.NewTeam(t, st, func(p *domain.TeamTypeProperties) {
		p.Trial = domain.TeamTrial{Days: 14}
	})
	team, err := st.GetTeam(ctx, tm.ID)
	require.NoError(t, err)
	p := billingtest.Properties(tm.InstanceTypeID)
	p.Trial = domain.TeamTrial{Days: 14, InstanceTypeID: tm.InstanceTypeID}
	tt, err := storage.GetObject[storage.TeamType](ctx, st, tm.TypeID)
	require.NoError(t, err)
	tt.Properties = p
	require.NoError(t, storage.UpdateObject(ctx, st, tt, "properties"))
	require.NoError(t, svc.TeamCreated(ctx, st, team))

	require.NoError(t, svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, true), "the trial allows one instance")
	assert.True(t, domain.IsKind(svc.CheckCanRun(ctx, st, tm.ID, "other-type", true), domain.KindPaymentRequired))
	tm.AddInstance("running")
	err = svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, true)
	assert.Equal(t, "trial_limit", code(err))
	require.NoError(t, svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, false), "starting the one instance is fine")

	state, err := svc.EndTrial(ctx, tm.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.StatusTrial, state.Status, "not due yet")
	now = now.Add(15 * 24 * time.Hour)
	assert.Equal(t, "billing_required", code(svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, false)), "an expired trial blocks even before its timer fires")
	state, err = svc.EndTrial(ctx, tm.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.StatusTrialEnded, state.Status)
	assert.True(t, state.Suspend)
	err = svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, true)
	assert.Equal(t, "billing_required", code(err))
	de, _ := domain.AsError(err)
	assert.Contains(t, de.Message, "trial has ended")
}

func code(err error) string {
	de, _ := domain.AsError(err)
	if de == nil {
		return ""
	}
	return de.Code
}

// signed builds a Stripe event and signs it as Stripe does.
func signed(t testing.TB, id, typ string, created time.Time, object map[string]any) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": created.Unix(), "api_version": "2023-10-16",
		"data": map[string]any{"object": object}})
	require.NoError(t, err)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	return body, sp.Header
}

func TestWebhookLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		svc := newService(st, stripetest.NewFake())
		tm := billingtest.NewTeam(t, st, nil)
		t0 := time.Now().Add(time.Minute)

		body, sig := signed(t, "evt_1", billing.EventCheckoutCompleted, t0, map[string]any{"id": "cs_1", "object": "checkout.session",
			"client_reference_id": tm.ID, "customer": "cus_1", "subscription": "sub_1"})
		_, err := svc.HandleWebhook(ctx, body, "t=1,v1=deadbeef")
		assert.Equal(t, "bad_signature", code(err))
		_, err = svc.HandleWebhook(ctx, body, "")
		assert.Equal(t, "bad_signature", code(err))
		_, err = st.GetSubscription(ctx, tm.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "a bad signature does nothing")

		res, err := svc.HandleWebhook(ctx, body, sig)
		require.NoError(t, err)
		assert.Equal(t, billing.StatusActive, res.Status)
		res, err = svc.HandleWebhook(ctx, body, sig)
		require.NoError(t, err)
		assert.True(t, res.Replayed)

		sub, err := st.GetSubscription(ctx, tm.ID)
		require.NoError(t, err)
		assert.Equal(t, "sub_1", sub.SubscriptionID)
		assert.Equal(t, "cus_1", sub.CustomerID)

		step := func(id, typ string, at time.Time, obj map[string]any) billing.WebhookResult {
			b, s := signed(t, id, typ, at, obj)
			r, err := svc.HandleWebhook(ctx, b, s)
			require.NoError(t, err)
			return r
		}
		assert.Equal(t, billing.StatusPastDue, step("evt_2", billing.EventInvoicePaymentFail, t0.Add(time.Minute),
			map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1"}).Status)
		assert.Equal(t, billing.StatusActive, step("evt_3", billing.EventInvoicePaid, t0.Add(2*time.Minute),
			map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1"}).Status)
		assert.Equal(t, billing.StatusUnpaid, step("evt_4", billing.EventSubscriptionUpdated, t0.Add(3*time.Minute),
			map[string]any{"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "unpaid", "current_period_end": t0.Add(720 * time.Hour).Unix()}).Status)
		late := step("evt_5", billing.EventSubscriptionUpdated, t0.Add(time.Minute),
			map[string]any{"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active"})
		assert.Equal(t, billing.StatusUnpaid, late.Status, "an older event delivered late does not undo a newer one")
		assert.NotEmpty(t, late.Ignored)
		assert.Equal(t, billing.StatusCanceled, step("evt_6", billing.EventSubscriptionDeleted, t0.Add(4*time.Minute),
			map[string]any{"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "canceled"}).Status)
		state, err := svc.TeamState(ctx, tm.ID)
		require.NoError(t, err)
		assert.True(t, state.Suspend, "a cancelled subscription suspends the team")

		unknown := step("evt_7", billing.EventInvoicePaid, t0, map[string]any{"id": "in_9", "object": "invoice", "customer": "cus_nobody", "subscription": "sub_nobody"})
		assert.Empty(t, unknown.TeamID)
		assert.Equal(t, "unknown customer or subscription", unknown.Ignored)

		entries, _, err := st.ListAudit(ctx, tm.ID, storage.Page{})
		require.NoError(t, err)
		var events []string
		for _, e := range entries {
			events = append(events, e.Event)
		}
		assert.Equal(t, []string{"billing.subscribed", "billing.payment_failed", "billing.invoice_paid", "billing.subscription_updated",
			"billing.subscription_cancelled"}, events, "one audit entry per applied event, none for the replay")

		alerted, err := st.UndispatchedAlertEvents(ctx, 100)
		require.NoError(t, err)
		var problems []string
		for _, e := range alerted {
			assert.Equal(t, "billing_problem", e.Kind)
			problems = append(problems, e.DedupKey)
		}
		assert.Equal(t, []string{"billing_problem:evt_2", "billing_problem:evt_4", "billing_problem:evt_6"}, problems,
			"an alert for the failed payment, the unpaid and the cancelled subscription; none for the paid invoice or the late event")
	})
}

func TestCheckoutUsesTheTeamsUsage(t *testing.T) {
	st := storagetest.New(t, "sqlite")
	ctx := context.Background()
	fake := stripetest.NewFake()
	svc := newService(st, fake)
	tm := billingtest.NewTeam(t, st, nil)
	tm.AddInstance("running")
	tm.AddInstance("running")
	sess, err := svc.Checkout(ctx, tm.ID, "owner@example.com", "", "")
	require.NoError(t, err)
	assert.NotEmpty(t, sess.URL)
	req := fake.Sessions()[0]
	assert.Equal(t, tm.ID, req.TeamID)
	assert.Equal(t, []billing.Item{{PriceID: billingtest.InstancePrice, Quantity: 1}, {PriceID: billingtest.PlanPrice, Quantity: 1}}, req.Items)
	sub, err := st.GetSubscription(ctx, tm.ID)
	require.NoError(t, err)
	assert.Equal(t, sess.ID, sub.CheckoutSessionID)

	fake.FailNext(stripetest.Server500)
	_, err = svc.Checkout(ctx, tm.ID, "owner@example.com", "", "")
	assert.True(t, domain.IsKind(err, domain.KindUnavailable), "%v", err)
}

// teamOnFakeStripe is a team of a billed type (props changed by edit) and the billing service over a fake Stripe.
func teamOnFakeStripe(t *testing.T, st *storage.Store, edit func(*domain.TeamTypeProperties)) (*stripetest.Fake, *billing.Service, *billingtest.Team) {
	fake := stripetest.NewFake()
	return fake, newService(st, fake), billingtest.NewTeam(t, st, edit)
}

// moveTeam puts a team on another team type the way the API does: the team's row, then billing, last, in one
// transaction.
func moveTeam(ctx context.Context, st *storage.Store, svc *billing.Service, teamID, typeID string) error {
	return st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		team, err := tx.GetTeam(ctx, teamID)
		if err != nil {
			return err
		}
		team.TeamTypeID = typeID
		if err := tx.UpdateTeam(ctx, team, "team_type_id"); err != nil {
			return err
		}
		return svc.ChangeTeamType(ctx, tx, teamID)
	})
}

// A subscribed team moving to another type has its Stripe items replaced by the new type's in the transaction
// that moves it; when Stripe fails, the team stays on its type and Stripe keeps its items.
func TestTeamTypeChangeReplacesTheSubscriptionItems(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		fake, svc, tm := teamOnFakeStripe(t, st, nil)
		tm.AddInstance("running")
		tm.AddInstance("running")
		subID := fake.AddSubscription("cus_1", billing.Item{PriceID: billingtest.PlanPrice, Quantity: 1}, billing.Item{PriceID: billingtest.InstancePrice, Quantity: 1})
		tm.Subscribe(subID)
		plus := &storage.TeamType{ID: domain.NewID(), Name: "Plus", Active: true, Properties: domain.TeamTypeProperties{Billing: domain.TeamBilling{
			PlanPriceID: "price_plus", InstancePrices: map[string]string{tm.InstanceTypeID: "price_plus_instance"}}}}
		require.NoError(t, storage.InsertObject(ctx, st, plus))

		fake.FailNext(stripetest.Server500)
		err := moveTeam(ctx, st, svc, tm.ID, plus.ID)
		assert.Equal(t, "stripe_unavailable", code(err), "%v", err)
		team, err := st.GetTeam(ctx, tm.ID)
		require.NoError(t, err)
		assert.Equal(t, tm.TypeID, team.TeamTypeID, "Stripe failed: the team stays")
		assert.Equal(t, map[string]int64{billingtest.PlanPrice: 1, billingtest.InstancePrice: 1}, fake.Quantities(subID))

		require.NoError(t, moveTeam(ctx, st, svc, tm.ID, plus.ID))
		assert.Equal(t, map[string]int64{"price_plus": 1, "price_plus_instance": 2}, fake.Quantities(subID),
			"the new plan, and both instances at the new type's price (it has no free one)")
		sub, err := st.GetSubscription(ctx, tm.ID)
		require.NoError(t, err)
		assert.NotNil(t, sub.SyncedAt)
		assert.ElementsMatch(t, []string{"price_plus", "price_plus_instance"}, []string{sub.Items[0].PriceID, sub.Items[1].PriceID})
		entries, _, err := st.ListAudit(ctx, tm.ID, storage.Page{})
		require.NoError(t, err)
		assert.Equal(t, "billing.team_type_changed", entries[len(entries)-1].Event)
		res, err := svc.Sync(ctx, tm.ID, "k/after", false)
		require.NoError(t, err)
		assert.Zero(t, res.StripeCalls, "the usage sync that follows finds the team billed already")
	})
}

// A team that was not billed and moves onto a billed type must subscribe before it creates or starts instances.
func TestTeamMovingOntoABilledTypeMustSubscribe(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		fake, svc, tm := teamOnFakeStripe(t, st, func(p *domain.TeamTypeProperties) { p.Billing = domain.TeamBilling{} })
		require.NoError(t, svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, true), "a free team runs instances")
		billed := &storage.TeamType{ID: domain.NewID(), Name: "Billed", Active: true, Properties: billingtest.Properties(tm.InstanceTypeID)}
		require.NoError(t, storage.InsertObject(ctx, st, billed))

		require.NoError(t, moveTeam(ctx, st, svc, tm.ID, billed.ID))
		assert.Equal(t, "billing_required", code(svc.CheckCanRun(ctx, st, tm.ID, tm.InstanceTypeID, true)))
		sub, err := st.GetSubscription(ctx, tm.ID)
		require.NoError(t, err, "the team has a subscription row, so its billing workflow follows it")
		assert.Equal(t, billing.StatusNone, sub.Status)
		assert.Zero(t, fake.Calls(), "Stripe is not asked: there is no subscription to change")
	})
}
