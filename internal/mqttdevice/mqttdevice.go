// Package mqttdevice is a device's MQTT side for tests that span processes: a paho client signed in as
// device:<team>:<device> to one broker, subscribed to its command topic, that publishes only what the test
// tells it to. It never sends a heartbeat, so a command that reaches it was pushed by the platform.
package mqttdevice

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// Device is one connected device.
type Device struct {
	Client   paho.Client
	Topic    string // ff/v1/<team>/d/<device>/
	Commands chan map[string]any
	Lost     chan error // the connection closed by the broker
}

// Connect signs in to the broker at url ("tcp://host:port") with a device's broker credentials and subscribes
// to its command topic; the connection is closed when the test ends.
func Connect(t testing.TB, url, username, password string) *Device {
	t.Helper()
	parts := strings.Split(username, ":")
	require.Len(t, parts, 3, "a device's broker username is device:<team>:<device>")
	d := &Device{Topic: "ff/v1/" + parts[1] + "/d/" + parts[2] + "/", Commands: make(chan map[string]any, 64), Lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(username).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.Lost <- err })
	d.Client = paho.NewClient(opts)
	tok := d.Client.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second), "connect to %s", url)
	require.NoError(t, tok.Error())
	t.Cleanup(func() { d.Client.Disconnect(0) })
	tok = d.Client.Subscribe(d.Topic+"command", 0, func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			d.Commands <- cmd
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	return d
}

// Publish sends payload (marshalled to JSON) on one of the device's own topics, e.g. "status".
func (d *Device) Publish(t testing.TB, sub string, payload any) {
	t.Helper()
	d.publish(t, d.Topic+sub, payload)
}

func (d *Device) publish(t testing.TB, topic string, payload any) {
	t.Helper()
	body, err := json.Marshal(payload)
	require.NoError(t, err)
	tok := d.Client.Publish(topic, 0, false, body)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
}

// Status publishes a FlowFuse agent's state object for an application device running snapshot with settings.
func (d *Device) Status(t testing.TB, application, snapshot, settings string) {
	t.Helper()
	d.Publish(t, "status", map[string]any{"ownerType": "application", "application": application, "snapshot": snapshot,
		"settings": settings, "state": "running", "mode": "autonomous", "agentVersion": "4.2.1"})
}

// Wait is how long Next waits: long, since it checks that a command arrives at all; how fast is measured by
// benchmarks.
const Wait = 60 * time.Second

// Next waits for the next command named name, skipping others.
func (d *Device) Next(t testing.TB, name string) map[string]any {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case cmd := <-d.Commands:
			if cmd["command"] == name {
				return cmd
			}
		case <-timeout:
			t.Fatalf("no %q command reached the device within %s", name, Wait)
			return nil
		}
	}
}

// Reply answers a command that expects one (docs/device-protocol.md §3.4) on its response topic.
func (d *Device) Reply(t testing.TB, req map[string]any, payload any) {
	t.Helper()
	d.publish(t, req["responseTopic"].(string), map[string]any{"teamId": req["teamId"], "deviceId": req["deviceId"],
		"command": req["command"], "correlationData": req["correlationData"], "userProperties": map[string]any{}, "payload": payload})
}

// UploadAnswer is what an agent answers to `upload`: its state, flows (one tab labelled label), no credentials
// and its package.
func UploadAnswer(label string) map[string]any {
	return map[string]any{"state": "running", "flows": []map[string]any{{"id": "tab1", "type": "tab", "label": label}},
		"credentials": map[string]any{}, "package": map[string]any{"modules": map[string]string{"node-red": "4.1.15"}, "version": "0.0.0"}}
}
