package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/stripetest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/instance"
)

const webhookSecret = "whsec_api_test"

// startedRuns records the lifecycle runs the API starts instead of running them.
type startedRuns struct{ runs []instance.Params }

func (r *startedRuns) Run(_ context.Context, p instance.Params) (string, error) {
	r.runs = append(r.runs, p)
	return "run-" + p.InstanceID, nil
}

// billedWorld is a running API with billing on, talking to stripe-mock, and a team on a billed type.
type billedWorld struct {
	*world
	typeID, instanceTypeID, stackID, templateID string
	stripe                                      *outageStripe
}

// outageStripe is stripe-mock that can be made unreachable, as Stripe is in an outage.
type outageStripe struct {
	billing.Stripe
	down atomic.Bool
}

var errStripeDown = &billing.Error{Message: "dial tcp: connection refused", Temporary: true}

func (s *outageStripe) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	if s.down.Load() {
		return billing.Subscription{}, errStripeDown
	}
	return s.Stripe.GetSubscription(ctx, id)
}

func (s *outageStripe) UpdateSubscription(ctx context.Context, id string, req billing.SubscriptionUpdate) (billing.Subscription, error) {
	if s.down.Load() {
		return billing.Subscription{}, errStripeDown
	}
	return s.Stripe.UpdateSubscription(ctx, id, req)
}

func newBilledWorld(t *testing.T, trialDays int) *billedWorld {
	stripe := &outageStripe{Stripe: billing.NewStripeClient(stripetest.MockKey, stripetest.StartMock(t), 10*time.Second)}
	runs := &startedRuns{}
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, "sqlite", func(d *api.Deps) {
		d.Instances = runs
		d.Sealer = sealer
		d.Billing = &billing.Service{Store: d.Store, Stripe: stripe,
			WebhookSecret: webhookSecret, PublicURL: "http://127.0.0.1", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	})
	w := &world{env: env, byRole: map[string]*apitest.Client{}, userIDs: map[string]string{}}
	for _, name := range append([]string{"admin", "outsider"}, roleNames...) {
		u, err := api.NewUser(name+"@example.com", name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		c := env.Client(t)
		c.Login(name+"@example.com", testPassword)
		w.byRole[name] = c
	}
	w.admin = w.byRole["admin"]
	bw := &billedWorld{world: w, stripe: stripe}
	bw.instanceTypeID = firstID(t, w.admin, "/api/v1/instance-types")
	bw.stackID = firstID(t, w.admin, "/api/v1/stacks")
	bw.templateID = firstID(t, w.admin, "/api/v1/templates")
	props := map[string]any{"billing": map[string]any{"planPriceId": "price_plan", "instancePrices": map[string]string{bw.instanceTypeID: "price_instance"},
		"devicePriceId": "price_device", "freeDevices": 2}}
	if trialDays > 0 {
		props["trial"] = map[string]any{"days": trialDays, "instanceTypeId": bw.instanceTypeID}
	}
	bad := w.admin.Do("POST", "/api/v1/team-types", map[string]any{"name": "Bad", "properties": map[string]any{"trial": map[string]any{"days": 3, "onEnd": "explode"}}})
	require.Equal(t, 400, bad.Status, "%s", bad.Raw)
	bw.typeID = w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Pro", "selfService": true, "properties": props}).String("id")
	w.teamID = w.byRole["owner"].Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Billed", "slug": "billed", "teamTypeId": bw.typeID}).String("id")
	for _, role := range roleNames[1:] {
		w.admin.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": role + "@example.com", "role": role})
	}
	return bw
}

func firstID(t *testing.T, c *apitest.Client, path string) string {
	t.Helper()
	items := c.Must(200, "GET", path, nil).Body["items"].([]any)
	require.NotEmpty(t, items)
	return items[0].(map[string]any)["id"].(string)
}

func (bw *billedWorld) createInstance(name string) *apitest.Response {
	app := bw.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+bw.teamID+"/applications", map[string]any{"name": "app-" + name}).String("id")
	return bw.byRole["owner"].Do("POST", "/api/v1/applications/"+app+"/instances", map[string]any{"name": name,
		"instanceTypeId": bw.instanceTypeID, "stackId": bw.stackID, "templateId": bw.templateID})
}

// sendEvent posts a Stripe event signed with secret ("" = unsigned).
func sendEvent(t *testing.T, env *apitest.Env, secret, id, typ string, created time.Time, object map[string]any) *http.Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": created.Unix(), "data": map[string]any{"object": object}})
	require.NoError(t, err)
	req, err := http.NewRequest("POST", env.URL+"/api/v1/billing/stripe-webhook", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if secret != "" {
		req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestBillingGateCheckoutAndWebhookLifecycle(t *testing.T) {
	bw := newBilledWorld(t, 0)
	owner := bw.byRole["owner"]

	r := bw.createInstance("first")
	require.Equal(t, 402, r.Status, "%s", r.Raw)
	assert.Equal(t, "billing_required", r.String("code"))
	assert.Contains(t, r.String("message"), "subscription")

	view := owner.Must(200, "GET", "/api/v1/teams/"+bw.teamID+"/billing", nil)
	assert.Equal(t, "none", view.String("status"))
	assert.Equal(t, 403, bw.byRole["member"].Do("GET", "/api/v1/teams/"+bw.teamID+"/billing", nil).Status, "owners only")
	assert.Equal(t, 404, bw.byRole["outsider"].Do("GET", "/api/v1/teams/"+bw.teamID+"/billing", nil).Status)
	assert.Equal(t, 403, bw.byRole["member"].Do("POST", "/api/v1/teams/"+bw.teamID+"/billing/checkout", nil).Status)

	sess := owner.Must(201, "POST", "/api/v1/teams/"+bw.teamID+"/billing/checkout", map[string]any{"successUrl": "http://127.0.0.1/done"})
	assert.NotEmpty(t, sess.String("id"), "a Checkout session from stripe-mock")

	// Bad and missing signatures: 400, nothing done.
	at := time.Now()
	completed := map[string]any{"id": "cs_1", "object": "checkout.session", "client_reference_id": bw.teamID, "customer": "cus_1", "subscription": "sub_1"}
	assert.Equal(t, 400, sendEvent(t, bw.env, "", "evt_1", billing.EventCheckoutCompleted, at, completed).StatusCode)
	assert.Equal(t, 400, sendEvent(t, bw.env, "whsec_wrong", "evt_1", billing.EventCheckoutCompleted, at, completed).StatusCode)
	assert.Equal(t, 402, bw.createInstance("second").Status, "still blocked")

	assert.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_1", billing.EventCheckoutCompleted, at, completed).StatusCode)
	assert.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_1", billing.EventCheckoutCompleted, at, completed).StatusCode, "a replay is acknowledged")
	audit := owner.Must(200, "GET", "/api/v1/teams/"+bw.teamID+"/audit-log", nil)
	assert.Equal(t, 1, strings.Count(string(audit.Raw), "billing.subscribed"), "and changes nothing")

	r = bw.createInstance("third")
	require.Equal(t, 202, r.Status, "%s", r.Raw)
	created := r
	view = owner.Must(200, "GET", "/api/v1/teams/"+bw.teamID+"/billing", nil)
	assert.Equal(t, "active", view.String("status"))
	assert.Equal(t, "sub_1", view.String("subscriptionId"))
	assert.Contains(t, string(view.Raw), `"kind":"instances"`)

	// Unpaid: new instances and starts answer 402; paid again: allowed.
	assert.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_2", billing.EventSubscriptionUpdated, at.Add(time.Minute),
		map[string]any{"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "unpaid"}).StatusCode)
	r = bw.createInstance("fourth")
	assert.Equal(t, 402, r.Status)
	third := created.Body["instance"].(map[string]any)["id"].(string)
	r = bw.byRole["owner"].Do("POST", "/api/v1/instances/"+third+"/actions/start", nil)
	assert.Equal(t, 402, r.Status, "%s", r.Raw)
	assert.Equal(t, 202, bw.byRole["owner"].Do("POST", "/api/v1/instances/"+third+"/actions/suspend", nil).Status, "suspending is always allowed")
	assert.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_3", billing.EventInvoicePaid, at.Add(2*time.Minute),
		map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1"}).StatusCode)
	assert.Equal(t, 202, bw.createInstance("fifth").Status)

	// An event for a customer nobody knows is acknowledged.
	assert.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_4", billing.EventInvoicePaymentFail, at,
		map[string]any{"id": "in_9", "object": "invoice", "customer": "cus_unknown", "subscription": "sub_unknown"}).StatusCode)
}

// A subscribed team's owner moves it to another self-service type: the subscription's items change in Stripe
// (stripe-mock) in the request; with Stripe unreachable the request fails and the team stays where it was.
func TestTeamTypeChangeGoesThroughTheSubscription(t *testing.T) {
	bw := newBilledWorld(t, 0)
	owner := bw.byRole["owner"]
	team := "/api/v1/teams/" + bw.teamID
	completed := map[string]any{"id": "cs_1", "object": "checkout.session", "client_reference_id": bw.teamID, "customer": "cus_1", "subscription": "sub_1"}
	require.Equal(t, 200, sendEvent(t, bw.env, webhookSecret, "evt_1", billing.EventCheckoutCompleted, time.Now(), completed).StatusCode)
	require.Equal(t, 202, bw.createInstance("one").Status)
	plus := bw.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Pro Plus", "selfService": true, "properties": map[string]any{
		"billing": map[string]any{"planPriceId": "price_plus", "instancePrices": map[string]string{bw.instanceTypeID: "price_plus_instance"}}}}).String("id")
	billingBefore := owner.Must(200, "GET", team+"/billing", nil).Raw
	auditBefore := owner.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw

	bw.stripe.down.Store(true)
	r := owner.Do("PATCH", team, map[string]any{"teamTypeId": plus})
	assert.Equal(t, 503, r.Status, "%s", r.Raw)
	assert.Equal(t, "stripe_unavailable", r.String("code"))
	assert.Equal(t, bw.typeID, owner.Must(200, "GET", team, nil).String("teamTypeId"), "the team stays on its type")
	assert.Equal(t, string(billingBefore), string(owner.Must(200, "GET", team+"/billing", nil).Raw), "its billing is untouched")
	assert.Equal(t, string(auditBefore), string(owner.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw))

	bw.stripe.down.Store(false)
	assert.Equal(t, plus, owner.Must(200, "PATCH", team, map[string]any{"teamTypeId": plus}).String("teamTypeId"))
	view := owner.Must(200, "GET", team+"/billing", nil)
	assert.NotEmpty(t, view.String("syncedAt"), "the subscription was changed, and what Stripe answered recorded")
	assert.Contains(t, string(view.Raw), `"priceId":"price_plus_instance"`, "the team is billed at the new type's prices")
	audit := string(owner.Must(200, "GET", team+"/audit-log?limit=500", nil).Raw)
	assert.Contains(t, audit, `"event":"billing.team_type_changed"`)
	assert.Contains(t, audit, `"priceId":"price_plus"`, "the change sent to Stripe holds the new plan")
}

func TestTrialAllowsOneInstanceOfItsType(t *testing.T) {
	bw := newBilledWorld(t, 14)
	view := bw.byRole["owner"].Must(200, "GET", "/api/v1/teams/"+bw.teamID+"/billing", nil)
	assert.Equal(t, "trial", view.String("status"))
	assert.NotEmpty(t, view.String("trialEndsAt"))
	require.Equal(t, 202, bw.createInstance("one").Status)
	r := bw.createInstance("two")
	assert.Equal(t, 402, r.Status)
	assert.Equal(t, "trial_limit", r.String("code"))
}

func TestBillingOffLeavesThePlatformAlone(t *testing.T) {
	w := newWorld(t, "sqlite")
	v := w.byRole["owner"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/billing", nil)
	assert.Equal(t, false, v.Body["enabled"])
	r := w.env.Client(t).Do("POST", "/api/v1/billing/stripe-webhook", map[string]any{"id": "evt_1"})
	assert.Equal(t, 404, r.Status)
	assert.Equal(t, "billing_disabled", r.String("code"))
}
