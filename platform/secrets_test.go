package platform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/billing/stripetest"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

const secretsWebhookSecret = "whsec_secrets_at_rest_test"

// TestNoSecretInClearAtRest runs a scenario that creates every kind of secret the platform holds (passwords, a
// session, a personal token, an instance with its runtime tokens, snapshots with credentials, an export and an
// import under a passphrase, a device with its token, broker password and credential secret, provisioning
// tokens and a device provisioned with its own flows and credential secret, a device group with a rollout, a
// pipeline with a promotion, a snapshot schedule, fleet settings with an npmrc token and a local editor password,
// one-time codes, regenerated device credentials, a billed team with Stripe's keys, a single sign-on client secret,
// a two-factor key and recovery codes), then reads every row of every table the database's catalog lists and
// checks that none of the secrets appears in clear.
func TestNoSecretInClearAtRest(t *testing.T) {
	stripeURL := stripetest.StartMock(t)
	dev := startDev(t, "--stripe-key", stripetest.MockKey, "--stripe-api-url", stripeURL, "--stripe-webhook-secret", secretsWebhookSecret)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	s := &secretScenario{t: t, dev: dev, c: c, secrets: map[string]string{"admin password": "admin-password",
		"Stripe secret key": stripetest.MockKey, "Stripe webhook secret": secretsWebhookSecret}}

	s.secrets["session token"] = sessionToken(t, dev.URL, "admin@example.com", "admin-password")
	s.secrets["personal token"] = c.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")
	c.Must(201, "POST", "/api/v1/users", map[string]any{"email": "second@example.com", "name": "Second", "password": "second-user-password"})
	s.secrets["second user's password"] = "second-user-password"

	objects := seededObjects(c)
	s.app = newApp(t, c, "secrets")
	id, op := postInstance(t, c, s.app, "secret-keeper", objects)
	require.Equal(t, "succeeded", waitOperation(t, c, op).String("status"))
	s.runtimeSecrets(filepath.Join(dev.DataDir, "instances", id))
	deployWithCredentials(t, c, id, "s3cr3t-broker-password")
	s.secrets["node credential"] = "s3cr3t-broker-password"
	s.snap = c.Must(201, "POST", "/api/v1/instances/"+id+"/snapshots", map[string]any{"name": "with creds"}).String("id")
	s.exportAndImport(id)
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/snapshot-schedule", map[string]any{"every": "1h"})

	s.team = c.Must(200, "GET", "/api/v1/applications/"+s.app, nil).String("teamId")
	device := s.registerDevice()
	s.secrets["provisioning token"] = c.Must(201, "POST", "/api/v1/teams/"+s.team+"/provisioning-tokens", map[string]any{"name": "p"}).String("token")
	// No rule sends to it and it is never tested: nothing is delivered to this address outside the machine.
	s.secrets["webhook signing secret"] = c.Must(201, "POST", "/api/v1/teams/"+s.team+"/webhooks", map[string]any{"name": "ops", "url": "https://203.0.113.20/hook"}).String("secret")
	s.provisionWithFlows()
	s.groupRollout(device)
	s.promote(id)
	s.fleetSettingsAndCodes(device)
	s.bill(objects)
	s.accountSecrets()

	st, err := storage.Open(context.Background(), filepath.Join(dev.DataDir, "flowyard.db"))
	require.NoError(t, err)
	defer st.Close()
	tables, err := st.DumpTables(context.Background())
	require.NoError(t, err)
	var b strings.Builder
	for _, rows := range tables {
		b.WriteString(strings.Join(rows, "\n"))
	}
	dump := b.String()
	for _, row := range []string{"secret-keeper", "secret-group", "secret-pipeline", "imported under a passphrase", "provisioned-flows", "sub_secrets"} {
		require.Contains(t, dump, row, "the dump holds the scenario's rows")
	}
	require.NotEmpty(t, tables["rollouts"], "the dump holds the rollout")
	require.NotEmpty(t, tables["promotions"], "the dump holds the promotion")
	require.NotEmpty(t, tables["snapshot_schedules"], "the dump holds the snapshot schedule")
	require.Contains(t, dump, `"$"`, "the instance's credentials are stored, encrypted in Node-RED's format")
	for what, secret := range s.secrets {
		require.NotEmpty(t, secret, what)
		assert.NotContains(t, dump, secret, "%s is stored in clear", what)
	}
	// Workflow histories are at rest too, in Temporal's own database (its file and write-ahead log).
	history := temporalFiles(t, filepath.Join(dev.DataDir, "temporal"))
	require.Contains(t, history, "instance/"+id, "Temporal's files hold the scenario's workflows")
	for what, secret := range s.secrets {
		assert.NotContains(t, history, secret, "%s is in Temporal's histories in clear", what)
	}
}

// temporalFiles returns the bytes of every file of the Temporal dev server's data dir (database, WAL, log) as text.
func temporalFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		b.Write(raw)
		return err
	}))
	return b.String()
}

// secretScenario builds the scenario and collects the secrets it was shown.
type secretScenario struct {
	t               *testing.T
	dev             devEnv
	c               *apitest.Client
	secrets         map[string]string
	app, team, snap string
	provisioned     string // a device that brought its own flows
}

// deployWithCredentials deploys an mqtt-broker config node with a password through the platform.
func deployWithCredentials(t *testing.T, c *apitest.Client, id, password string) {
	t.Helper()
	flows := []any{map[string]any{"id": "b1", "type": "mqtt-broker", "name": "broker", "broker": "127.0.0.1", "port": "1883",
		"credentials": map[string]any{"user": "u", "password": password}}}
	rev := c.Must(200, "GET", "/api/v1/instances/"+id+"/flows", nil).String("rev")
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/flows", map[string]any{"flows": flows, "rev": rev,
		"credentials": map[string]any{"b1": map[string]any{"user": "u", "password": password}}})
}

// runtimeSecrets reads what only the instance's Node-RED is given: its runtime token and its credential secret,
// in the secrets file its settings.js reads.
func (s *secretScenario) runtimeSecrets(instanceDir string) {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(instanceDir, "secrets.json"))
	require.NoError(s.t, err)
	var secrets nodered.Secrets
	require.NoError(s.t, json.Unmarshal(raw, &secrets))
	s.secrets["instance runtime token"] = secrets.InstanceToken
	s.secrets["instance credential secret"] = secrets.CredentialSecret
}

// sessionToken signs in and returns the session cookie's value.
func sessionToken(t *testing.T, url, email, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(url+"/api/v1/auth/login", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "flowyard_session" {
			return ck.Value
		}
	}
	t.Fatal("sign-in set no session cookie")
	return ""
}

// exportAndImport exports the snapshot under a passphrase and imports it back: the passphrase is never kept.
func (s *secretScenario) exportAndImport(instanceID string) {
	s.t.Helper()
	const passphrase = "export-passphrase-kept-nowhere"
	doc := s.c.Must(200, "POST", "/api/v1/snapshots/"+s.snap+"/export", map[string]any{"credentialSecret": passphrase})
	var exported map[string]any
	require.NoError(s.t, json.Unmarshal(doc.Raw, &exported))
	exported["name"] = "imported under a passphrase"
	s.c.Must(201, "POST", "/api/v1/instances/"+instanceID+"/snapshots/import", map[string]any{"snapshot": exported, "credentialSecret": passphrase})
	s.secrets["export passphrase"] = passphrase
}

// registerDevice registers a device in the application and returns its ID.
func (s *secretScenario) registerDevice() string {
	s.t.Helper()
	d := s.c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gw", "type": "gateway", "team": s.team})
	s.collectDevice("device", d)
	s.c.Must(200, "PATCH", "/api/v1/devices/"+d.String("id"), map[string]any{"applicationId": s.app})
	return d.String("id")
}

func (s *secretScenario) collectDevice(what string, d *apitest.Response) {
	creds := d.Body["credentials"].(map[string]any)
	s.secrets[what+" token"] = creds["token"].(string)
	s.secrets[what+" credential secret"] = creds["credentialSecret"].(string)
	if b, ok := creds["broker"].(map[string]any); ok {
		s.secrets[what+" broker password"] = b["password"].(string)
	}
}

// provisionWithFlows has an agent register with a provisioning token and bring its existing flows, encrypted
// with its own credential secret (one-time-code setup): neither the secret nor the credentials stay in clear.
func (s *secretScenario) provisionWithFlows() {
	s.t.Helper()
	tok := s.c.Must(201, "POST", "/api/v1/teams/"+s.team+"/provisioning-tokens", map[string]any{"name": "into app", "applicationId": s.app}).String("token")
	s.secrets["application provisioning token"] = tok
	agent := (&apitest.Env{URL: s.dev.URL}).Client(s.t)
	agent.Bearer = tok
	d := agent.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "provisioned", "type": "gateway", "team": s.team})
	s.collectDevice("provisioned device", d)
	s.provisioned = d.String("id")
	const agentSecret, password = "agent-own-credential-secret", "agent-flow-password"
	creds, err := nodered.EncryptCredentials(agentSecret, map[string]any{"r1": map[string]any{"user": "bob", "password": password}})
	require.NoError(s.t, err)
	agent.Bearer = s.secrets["provisioned device token"]
	report := map[string]any{"state": "provisioning", "ownerType": "application", "application": s.app, "snapshot": nil, "settings": nil,
		"agentVersion": "4.2.1", "provisioning": map[string]any{"name": "provisioned-flows", "credentialSecret": agentSecret,
			"deviceConfig": map[string]any{"flows": []any{map[string]any{"id": "r1", "type": "http request", "url": "http://x"}}, "credentials": creds}}}
	r := agent.Do("POST", "/api/v1/devices/"+d.String("id")+"/live/state", report)
	require.Contains(s.t, []int{200, 409}, r.Status, "%s", r.Raw)
	s.secrets["agent's credential secret"], s.secrets["agent's flow password"] = agentSecret, password
}

// groupRollout puts the device in a group and rolls the snapshot out to it.
func (s *secretScenario) groupRollout(device string) {
	s.t.Helper()
	group := s.c.Must(201, "POST", "/api/v1/applications/"+s.app+"/device-groups", map[string]any{"name": "secret-group"}).String("id")
	s.c.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{device}})
	s.c.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": s.snap})
	// The device fetches its target: its credentials, re-encrypted to its own secret, are not cached in clear.
	agent := (&apitest.Env{URL: s.dev.URL}).Client(s.t)
	agent.Bearer = s.secrets["device token"]
	waitFor(s.t, time.Minute, "the device to be given the snapshot", func() bool {
		return agent.Must(200, "GET", "/api/v1/devices/"+device+"/live/state", nil).String("snapshot") == s.snap
	})
	agent.Must(200, "GET", "/api/v1/devices/"+device+"/live/snapshot", nil)
}

// fleetSettingsAndCodes gives a group fleet settings with a registry token in its .npmrc and a local editor
// password, makes one-time codes for a device and a provisioning token, and regenerates the device's credentials.
func (s *secretScenario) fleetSettingsAndCodes(device string) {
	s.t.Helper()
	group := s.c.Must(201, "POST", "/api/v1/applications/"+s.app+"/device-groups", map[string]any{"name": "fleet-group"}).String("id")
	s.c.Must(200, "PATCH", "/api/v1/device-groups/"+group, map[string]any{"settings": map[string]any{
		"palette":   map[string]any{"npmrc": "//npm.example.com/:_authToken=npm_s3cr3t_registry_token\n"},
		"localAuth": map[string]any{"enabled": true, "user": "operator", "password": "s3cr3t-local-editor"}}})
	s.secrets["registry token in an npmrc"] = "npm_s3cr3t_registry_token"
	s.secrets["local editor password"] = "s3cr3t-local-editor"
	s.secrets["device one-time code"] = s.c.Must(201, "POST", "/api/v1/devices/"+device+"/one-time-code", nil).String("otc")
	tok := s.c.Must(201, "POST", "/api/v1/teams/"+s.team+"/provisioning-tokens", map[string]any{"name": "codes"}).String("id")
	s.secrets["provisioning one-time code"] = s.c.Must(201, "POST", "/api/v1/teams/"+s.team+"/provisioning-tokens/"+tok+"/one-time-codes", nil).String("otc")
	creds := s.c.Must(200, "POST", "/api/v1/devices/"+device+"/credentials", nil).Body["credentials"].(map[string]any)
	s.secrets["regenerated device token"] = creds["token"].(string)
	s.secrets["regenerated credential secret"] = creds["credentialSecret"].(string)
	if b, ok := creds["broker"].(map[string]any); ok {
		s.secrets["regenerated broker password"] = b["password"].(string)
	}
}

// promote promotes the instance through a pipeline into a device group (of the provisioned device).
func (s *secretScenario) promote(instanceID string) {
	s.t.Helper()
	group := s.c.Must(201, "POST", "/api/v1/applications/"+s.app+"/device-groups", map[string]any{"name": "promoted-group"}).String("id")
	s.c.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{s.provisioned}})
	pid := s.c.Must(201, "POST", "/api/v1/applications/"+s.app+"/pipelines", map[string]any{"name": "secret-pipeline"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	first := s.c.Must(201, "POST", stages, map[string]any{"name": "dev", "target": map[string]any{"instanceId": instanceID}, "action": "create_snapshot"}).String("id")
	s.c.Must(201, "POST", stages, map[string]any{"name": "fleet", "target": map[string]any{"deviceGroupId": group}})
	pr := s.c.Must(202, "POST", stages+"/"+first+"/promote", nil).Body["promotion"].(map[string]any)["id"].(string)
	// The promotion then waits for the device to report the snapshot running; its snapshot is what holds credentials.
	waitFor(s.t, time.Minute, "the promotion's snapshot", func() bool {
		return s.c.Must(200, "GET", "/api/v1/promotions/"+pr, nil).String("snapshotId") != ""
	})
}

// bill subscribes a team of a billed type through Checkout and a signed webhook.
func (s *secretScenario) bill(objects map[string]any) {
	s.t.Helper()
	props := map[string]any{"billing": map[string]any{"planPriceId": "price_plan", "instancePrices": map[string]string{objects["instanceTypeId"].(string): "price_instance"}}}
	typ := s.c.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Billed", "properties": props}).String("id")
	team := s.c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Billed team", "teamTypeId": typ}).String("id")
	s.c.Must(201, "POST", "/api/v1/teams/"+team+"/billing/checkout", map[string]any{"successUrl": "http://127.0.0.1/done"})
	body, err := json.Marshal(map[string]any{"id": "evt_secrets", "object": "event", "type": billing.EventCheckoutCompleted, "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{"id": "cs_secrets", "object": "checkout.session", "client_reference_id": team, "customer": "cus_secrets", "subscription": "sub_secrets"}}})
	require.NoError(s.t, err)
	req, err := http.NewRequest("POST", s.dev.URL+"/api/v1/billing/stripe-webhook", strings.NewReader(string(body)))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secretsWebhookSecret, Timestamp: time.Now()}).Header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	require.Equal(s.t, 200, resp.StatusCode)
}
