package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
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
}

func newBilledWorld(t *testing.T, trialDays int) *billedWorld {
	stripeURL := stripetest.StartMock(t)
	runs := &startedRuns{}
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, "sqlite", func(d *api.Deps) {
		d.Instances = runs
		d.Sealer = sealer
		d.Billing = &billing.Service{Store: d.Store, Stripe: billing.NewStripeClient(stripetest.MockKey, stripeURL, 10*time.Second),
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
	bw := &billedWorld{world: w}
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
	bw.typeID = w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Pro", "properties": props}).String("id")
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
