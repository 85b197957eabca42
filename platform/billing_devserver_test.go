package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/billingtest"
	"github.com/flowyard/flowyard/billing/stripetest"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
	"github.com/flowyard/flowyard/worker"
	billingwf "github.com/flowyard/flowyard/workflows/billing"
)

// suspensions records the instances billing suspends.
type suspensions struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *suspensions) Suspend(_ context.Context, instanceID, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[instanceID] = true
	return nil
}

func (s *suspensions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// TestBillingOnTheTemporalDevServer runs the billing worker against the real Temporal dev server: a burst of
// usage signals becomes one sync, the Schedule's reconciliation repairs drift made behind the platform's
// back (and audits it), and a cancelled subscription suspends the team's instances.
func TestBillingOnTheTemporalDevServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := dialTemporal(t, startTemporal(t))

	st := storagetest.New(t, "sqlite")
	tm := billingtest.NewTeam(t, st, nil)
	fake := stripetest.NewFake()
	subID := fake.AddSubscription("cus_1", billing.Item{PriceID: billingtest.PlanPrice, Quantity: 1})
	tm.Subscribe(subID)
	wc := &billingwf.Client{Temporal: c, TaskQueue: "billing", Debounce: 2 * time.Second, IdleTimeout: 5 * time.Second}
	suspended := &suspensions{ids: map[string]bool{}}
	svc := &billing.Service{Store: st, Stripe: fake, Notify: wc, Instances: suspended, WebhookSecret: "whsec_e2e", Log: quiet}
	w := worker.NewBilling(c, wc.TaskQueue, &activities.Billing{Service: svc, Teams: wc})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	for range 3 {
		tm.AddInstance("running")
	}
	for range 100 {
		svc.UsageChanged(ctx, tm.ID)
	}
	waitFor(t, 45*time.Second, "Stripe bills two instances", func() bool { return fake.Quantities(subID)[billingtest.InstancePrice] == 2 })
	t.Logf("100 usage signals through the dev server: %d Stripe calls", fake.Calls())
	assert.LessOrEqual(t, fake.Calls(), 4)

	fake.SetQuantity(subID, billingtest.InstancePrice, 9)
	require.NoError(t, wc.EnsureSchedule(ctx, time.Hour))
	require.NoError(t, wc.EnsureSchedule(ctx, 30*time.Minute), "creating it again updates it")
	require.NoError(t, wc.TriggerReconcile(ctx))
	waitFor(t, 45*time.Second, "the reconciliation puts the quantity back", func() bool { return fake.Quantities(subID)[billingtest.InstancePrice] == 2 })
	replaytest.RecordScheduled(t, c, billingwf.ScheduleID, "billing", "replay_reconcile.json")
	waitFor(t, 45*time.Second, "the correction is audited", func() bool {
		entries, _, err := st.ListAudit(ctx, tm.ID, storage.Page{})
		require.NoError(t, err)
		for _, e := range entries {
			if e.Event == "billing.drift_corrected" {
				return true
			}
		}
		return false
	})

	body, err := json.Marshal(map[string]any{"id": "evt_del", "object": "event", "type": billing.EventSubscriptionDeleted, "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{"id": subID, "object": "subscription", "customer": "cus_1", "status": "canceled"}}})
	require.NoError(t, err)
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_e2e", Timestamp: time.Now()}).Header
	_, err = svc.HandleWebhook(ctx, body, sig)
	require.NoError(t, err)
	waitFor(t, 45*time.Second, "the cancelled team's three instances are suspended", func() bool { return suspended.count() == 3 })
	require.NoError(t, c.GetWorkflow(ctx, billingwf.WorkflowID(tm.ID), "").Get(ctx, nil), "the workflow ends once idle")
	replaytest.Record(t, c, billingwf.WorkflowID(tm.ID), "", "billing", "replay_team.json")
}
