package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/comms"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/nodered"
)

// newBrokerWorld is a deviceWorld whose API talks to the real embedded MQTT broker, on the same store.
func newBrokerWorld(t *testing.T, dialect string) (*deviceWorld, *comms.Broker) {
	t.Helper()
	var broker *comms.Broker
	w := newDeviceWorldWith(t, dialect, nil, func(d *api.Deps) {
		svc := &devices.Service{Store: d.Store, Sealer: d.Sealer, ForgeURL: d.Config.PublicURL, BrokerURL: d.Config.BrokerURL}
		b, err := comms.Start(context.Background(), comms.Config{Listen: "127.0.0.1:0", Devices: svc,
			Log: slog.New(slog.DiscardHandler), MaxPacketBytes: 1 << 20})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		broker, d.Broker = b, b
	})
	return w, broker
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

// ffAgent is a FlowFuse agent's MQTT side as the fixtures describe it: signed in as device:<team>:<device>,
// subscribed to its command topic.
type ffAgent struct {
	cl       paho.Client
	topic    string // ff/v1/<team>/d/<device>/
	commands chan map[string]any
}

func connectFFAgent(t *testing.T, b *comms.Broker, d registered) *ffAgent {
	t.Helper()
	broker := d.raw.Body["credentials"].(map[string]any)["broker"].(map[string]any)
	user := broker["username"].(string)
	parts := strings.Split(user, ":")
	a := &ffAgent{topic: "ff/v1/" + parts[1] + "/d/" + parts[2] + "/", commands: make(chan map[string]any, 16)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID(user).SetUsername(user).
		SetPassword(broker["password"].(string)).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	a.cl = paho.NewClient(opts)
	tok := a.cl.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { a.cl.Disconnect(0) })
	tok = a.cl.Subscribe(a.topic+"command", 0, func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			a.commands <- cmd
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	return a
}

func (a *ffAgent) publish(t *testing.T, sub string, payload []byte) {
	t.Helper()
	tok := a.cl.Publish(a.topic+sub, 0, false, payload)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
}

// next waits for the next command named name, skipping others.
func (a *ffAgent) next(t *testing.T, name string) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case cmd := <-a.commands:
			if cmd["command"] == name {
				return cmd
			}
		case <-timeout:
			t.Fatalf("no %q command within 10 s", name)
		}
	}
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
		a.publish(t, "status", fixture(t, "status-updating.json", nil))
		waitState(t, w, d.id, "updating")
		stale := map[string]string{}
		for k, v := range values {
			stale[k] = v
		}
		stale["settingsHash"] = "stale"
		a.publish(t, "status", fixture(t, "status.json", stale))
		upd := a.next(t, "update")
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
		req := a.next(t, "upload")
		reply := map[string]string{"correlationData": req["correlationData"].(string), "credentials": sealed["$"]}
		for k, v := range values {
			reply[k] = v
		}
		a.cl.Publish(req["responseTopic"].(string), 0, false, fixture(t, "upload-reply.json", reply))
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
