package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/internal/mqttdevice"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/relay"
)

// newBrokerWorld is a deviceWorld whose API reaches devices through the relay and the real embedded MQTT broker,
// on the same store: the single-process path (on Postgres, listening as a replica does, alone).
func newBrokerWorld(t *testing.T, dialect string, more ...func(*api.Deps)) (*deviceWorld, *broker.Broker) {
	t.Helper()
	var started *broker.Broker
	w := newDeviceWorldWith(t, dialect, nil, append(more, func(d *api.Deps) {
		svc := &devices.Service{Store: d.Store, Sealer: d.Sealer, ForgeURL: d.Config.PublicURL, BrokerURL: d.Config.BrokerURL}
		b, err := broker.Start(context.Background(), broker.Config{Listen: "127.0.0.1:0", Devices: svc,
			Log: slog.New(slog.DiscardHandler), MaxPacketBytes: 1 << 20})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		rel := relay.New(d.Store, nil)
		rel.Attach(b)
		rel.AckTimeout = 500 * time.Millisecond // no other process holds a device here
		ctx, cancel := context.WithCancel(context.Background())
		listened := make(chan struct{})
		go func() { defer close(listened); rel.Listen(ctx) }()
		t.Cleanup(func() { cancel(); <-listened })
		waitFor(t, "the relay to listen", func() bool { return rel.Check(ctx) == nil })
		started, d.Broker, d.DeviceLive, d.DeviceEditor = b, rel, rel, rel
	})...)
	return w, started
}

// fixture reads a message of a FlowFuse agent from testdata/flowfuse-agent with its placeholders filled in.
func fixture(t *testing.T, name string, values map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "flowfuse-agent", name))
	require.NoError(t, err)
	s := string(b)
	for k, v := range values {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	require.NotContains(t, s, "{{", "%s has a placeholder the test does not fill", name)
	require.True(t, json.Valid([]byte(s)), name)
	return []byte(s)
}

// connectFFAgent connects a FlowFuse agent's MQTT side as the fixtures describe it: signed in as
// device:<team>:<device>, subscribed to its command topic.
func connectFFAgent(t *testing.T, b *broker.Broker, d registered) *mqttdevice.Device {
	t.Helper()
	broker := d.raw.Body["credentials"].(map[string]any)["broker"].(map[string]any)
	return mqttdevice.Connect(t, "tcp://"+b.Addr(), broker["username"].(string), broker["password"].(string))
}

// TestFlowFuseAgentMessages drives the platform with the messages a FlowFuse device agent 4.x sends: the
// HTTP check-in, the MQTT status heartbeat (also the null one of an agent that is updating), and the reply to
// `upload`, whose state is the agent's whole state object.
func TestFlowFuseAgentMessages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		d := w.register(t, "Line 3")
		app := w.appIDs[0]
		w.assign(t, d, map[string]any{"applicationId": app})
		w.assign(t, d, map[string]any{"targetSnapshotId": w.snapID})
		hash := d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil).String("hash")
		values := map[string]string{"teamId": w.teamID, "deviceId": d.id, "applicationId": app, "snapshotId": w.snapID, "settingsHash": hash}

		// HTTP mode: the agent's state object, in sync, is a 200 {} and is recorded.
		r := d.agent.Do("POST", "/api/v1/devices/"+d.id+"/live/state", json.RawMessage(fixture(t, "live-state.json", values)))
		require.Equal(t, 200, r.Status, string(r.Raw))
		assert.Equal(t, "{}", string(r.Raw))
		got := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+d.id, nil)
		assert.Equal(t, "running", got.String("state"))
		assert.Equal(t, w.snapID, got.String("activeSnapshotId"))
		assert.Equal(t, "4.2.1", got.String("agentVersion"))

		// MQTT: a null status is an agent updating; the heartbeat with a stale settings hash gets an update.
		a := connectFFAgent(t, broker, d)
		a.Publish(t, "status", json.RawMessage(fixture(t, "status-updating.json", nil)))
		waitState(t, w, d.id, "updating")
		stale := map[string]string{}
		for k, v := range values {
			stale[k] = v
		}
		stale["settingsHash"] = "stale"
		a.Publish(t, "status", json.RawMessage(fixture(t, "status.json", stale)))
		upd := a.Next(t, "update")
		assert.Equal(t, hash, upd["settings"])
		assert.Equal(t, w.snapID, upd["snapshot"])
		assert.Equal(t, app, upd["application"])
		assert.NotContains(t, upd, "project", "the owner key of the other type is left out")
		waitState(t, w, d.id, "running")

		// upload: the agent answers with its state object, flows, credentials and package.
		creds, err := nodered.EncryptCredentials(d.secret, map[string]any{"1b2c3d4e5f607182": map[string]any{"user": "line3", "password": "pw"}})
		require.NoError(t, err)
		var sealed map[string]string
		require.NoError(t, json.Unmarshal(creds, &sealed))
		answer := make(chan *apitest.Response, 1)
		go func() {
			answer <- w.as["member"].Do("POST", "/api/v1/devices/"+d.id+"/snapshots", map[string]any{"name": "line 3 as it runs"})
		}()
		req := a.Next(t, "upload")
		reply := map[string]string{"correlationData": req["correlationData"].(string), "credentials": sealed["$"]}
		for k, v := range values {
			reply[k] = v
		}
		a.Client.Publish(req["responseTopic"].(string), 0, false, fixture(t, "upload-reply.json", reply))
		pulled := <-answer
		require.Equal(t, 201, pulled.Status, string(pulled.Raw))
		snap, err := w.env.Store.GetSnapshot(context.Background(), pulled.String("id"))
		require.NoError(t, err)
		var flows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(snap.Flows), &flows))
		require.Len(t, flows, 3)
		assert.Equal(t, "Line 3", flows[0]["label"])
		assert.Equal(t, "4.1.15", snap.Modules["node-red"])
		deviceSecret, err := w.sealer.Open(snap.CredentialSecret)
		require.NoError(t, err)
		plain, err := nodered.DecryptCredentials(deviceSecret, json.RawMessage(snap.Credentials))
		require.NoError(t, err)
		assert.Equal(t, "pw", plain["1b2c3d4e5f607182"].(map[string]any)["password"])
	})
}

// waitState waits until the device shows state.
func waitState(t *testing.T, w *deviceWorld, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+id, nil)
		if got.String("state") == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device did not show %q within 10 s: %s", state, got.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFlowFuseAgentOneTimeCodeSetup is FlowFuse's installer run with a one-time code (`--otc <code> --ff-url
// <url>`), in the messages its agent sends: the settings probe, the code exchanged for the device's new
// credentials (the old ones, and the broker connection that used them, end at once), the flows the user chose
// imported as the device's target, and a code that works once. A provisioning token's code registers a new
// device into what the token names.
func TestFlowFuseAgentOneTimeCodeSetup(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		old := w.register(t, "Line 3")
		w.assign(t, old, map[string]any{"applicationId": w.appIDs[0]})
		oldAgent := connectFFAgent(t, broker, old)

		assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/devices/"+old.id+"/one-time-code", nil).Status, "owners make codes")
		code := w.as["owner"].Must(201, "POST", "/api/v1/devices/"+old.id+"/one-time-code", nil)
		otc := code.String("otc")
		require.GreaterOrEqual(t, len(otc), 8, "FlowFuse's agent wants 8 characters or more")
		assert.Contains(t, code.String("command"), "--otc '"+otc+"' --ff-url http://forge.test")
		assert.Equal(t, 200, old.agent.Do("GET", "/api/v1/devices/"+old.id+"/live/settings", nil).Status,
			"a code changes nothing until it is used")

		setup := w.env.Client(t)
		probe := setup.Do("GET", "/api/v1/settings/", nil)
		assert.Contains(t, []int{200, 204, 401, 403, 404}, probe.Status, "the agent's reachability probe")
		setup.Bearer = base64.StdEncoding.EncodeToString([]byte(otc))
		got := setup.Do("POST", "/api/v1/devices/", json.RawMessage(fixture(t, "otc-setup.json", nil)))
		require.Equal(t, 200, got.Status, string(got.Raw))
		assert.Equal(t, old.id, got.String("id"))
		assert.Equal(t, "Devices", got.Body["team"].(map[string]any)["name"], "the agent prints the team's name")
		assert.Equal(t, "2.33.2", got.Body["meta"].(map[string]any)["ffVersion"], "newer than 2.16.0: the agent offers the flow import")
		creds := got.Body["credentials"].(map[string]any)
		assert.NotEqual(t, old.token, creds["token"])
		assert.NotEqual(t, old.secret, creds["credentialSecret"])
		assert.Contains(t, got.String("agentConfig"), "token: "+creds["token"].(string))

		again := setup.Do("POST", "/api/v1/devices/", json.RawMessage(fixture(t, "otc-setup.json", nil)))
		assert.Equal(t, 401, again.Status, "a code works once")
		assert.Equal(t, 401, old.agent.Do("GET", "/api/v1/devices/"+old.id+"/live/settings", nil).Status,
			"the old device token no longer works")
		waitDisconnected(t, oldAgent)

		// The flow import the agent offers right after setup: a snapshot of those flows becomes the device's target.
		fresh := w.env.Client(t)
		fresh.Bearer = creds["token"].(string)
		local := "the-local-node-red-secret"
		localCreds, err := nodered.EncryptCredentials(local, map[string]any{"b2c3d4e5f6071829": map[string]any{"user": "packing", "password": "pw"}})
		require.NoError(t, err)
		var sealed map[string]string
		require.NoError(t, json.Unmarshal(localCreds, &sealed))
		imp := fixture(t, "otc-flow-import.json", map[string]string{"credentials": sealed["$"], "localCredentialSecret": local})
		r := fresh.Do("POST", "/api/v1/devices/"+old.id+"/live/state", json.RawMessage(imp))
		require.Equal(t, 200, r.Status, string(r.Raw))
		dev := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+old.id, nil)
		target := dev.String("targetSnapshotId")
		require.NotEmpty(t, target)
		snap := fresh.Must(200, "GET", "/api/v1/devices/"+old.id+"/live/snapshot", nil)
		assert.Equal(t, target, snap.String("id"))
		assert.Equal(t, "4.1.15", snap.Body["modules"].(map[string]any)["node-red"])
		raw, err := json.Marshal(snap.Body["credentials"])
		require.NoError(t, err)
		plain, err := nodered.DecryptCredentials(creds["credentialSecret"].(string), raw)
		require.NoError(t, err, "re-encrypted from the local secret to the device's new one")
		assert.Equal(t, "pw", plain["b2c3d4e5f6071829"].(map[string]any)["password"])
		assert.Equal(t, 409, fresh.Do("POST", "/api/v1/devices/"+old.id+"/live/state", json.RawMessage(imp)).Status, "imported once per setup")

		// A provisioning token's code registers a device into the token's application, named after the host.
		tok := w.as["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "line", "applicationId": w.appIDs[1]})
		tokCode := w.as["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens/"+tok.String("id")+"/one-time-codes", nil).String("otc")
		setup.Bearer = base64.StdEncoding.EncodeToString([]byte(tokCode))
		added := setup.Do("POST", "/api/v1/devices/", json.RawMessage(fixture(t, "otc-setup.json", nil)))
		require.Equal(t, 200, added.Status, string(added.Raw))
		assert.NotEqual(t, old.id, added.String("id"))
		assert.Equal(t, "line-3-gateway", added.String("name"))
		assert.Equal(t, w.appIDs[1], added.String("applicationId"))
		unused := w.as["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens/"+tok.String("id")+"/one-time-codes", nil).String("otc")
		w.as["owner"].Must(204, "DELETE", "/api/v1/teams/"+w.teamID+"/provisioning-tokens/"+tok.String("id"), nil)
		setup.Bearer = base64.StdEncoding.EncodeToString([]byte(unused))
		assert.Equal(t, 401, setup.Do("POST", "/api/v1/devices/", json.RawMessage(fixture(t, "otc-setup.json", nil))).Status,
			"a revoked token's codes go with it")
		assert.Equal(t, 404, w.as["owner"].Do("POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens/nope/one-time-codes", nil).Status)
	})
}

// waitDisconnected waits until the broker has closed an agent's connection.
func waitDisconnected(t *testing.T, a *mqttdevice.Device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.Client.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatal("the broker kept the connection of revoked credentials open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRegenerateCredentials: an owner regenerates a device's credentials; the old token and broker password
// stop working at once, the connection that used them closes, and the answer (shown once) holds the agent's new
// device.yml, which works.
func TestRegenerateCredentials(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		d := w.register(t, "Line 3")
		a := connectFFAgent(t, broker, d)
		path := "/api/v1/devices/" + d.id + "/credentials"
		assert.Equal(t, 403, w.as["member"].Do("POST", path, nil).Status)
		assert.Equal(t, 404, w.as["outsider"].Do("POST", path, nil).Status)
		r := w.as["owner"].Must(200, "POST", path, nil)
		waitDisconnected(t, a)
		assert.Equal(t, 401, d.agent.Do("GET", "/api/v1/devices/"+d.id+"/live/settings", nil).Status)
		oldBroker := d.raw.Body["credentials"].(map[string]any)["broker"].(map[string]any)
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + broker.Addr()).SetClientID(oldBroker["username"].(string)).
			SetUsername(oldBroker["username"].(string)).SetPassword(oldBroker["password"].(string)).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		tok := cl.Connect()
		require.True(t, tok.WaitTimeout(10*time.Second))
		assert.Error(t, tok.Error(), "the old broker password is refused")

		var cfg struct {
			DeviceID         string `yaml:"deviceId"`
			Token            string `yaml:"token"`
			CredentialSecret string `yaml:"credentialSecret"`
			ForgeURL         string `yaml:"forgeURL"`
			BrokerPassword   string `yaml:"brokerPassword"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(r.String("agentConfig")), &cfg))
		assert.Equal(t, d.id, cfg.DeviceID)
		assert.Equal(t, "http://forge.test", cfg.ForgeURL)
		assert.NotEqual(t, d.token, cfg.Token)
		fresh := w.env.Client(t)
		fresh.Bearer = cfg.Token
		fresh.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil)
		d.raw = r
		connectFFAgent(t, broker, d)
		got := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+d.id, nil)
		assert.NotContains(t, string(got.Raw), cfg.Token, "shown once")
	})
}

// TestFlowFuseAgentFixturesListed: every fixture is described in the fixtures' README, with its placeholders.
func TestFlowFuseAgentFixturesListed(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("testdata", "flowfuse-agent", "README.md"))
	require.NoError(t, err)
	names, err := filepath.Glob(filepath.Join("testdata", "flowfuse-agent", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, name := range names {
		base := filepath.Base(name)
		assert.Contains(t, string(readme), "`"+base+"`", "the README does not describe %s", base)
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`\{\{\w+\}\}`).FindAllString(string(b), -1) {
			assert.Contains(t, string(readme), "`"+m+"`", "the README does not explain %s of %s", m, base)
		}
	}
}
