package mosquitto_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/comms/mosquitto"
	"github.com/flowyard/flowyard/comms/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// world is a throwaway Mosquitto managed by the platform's connection, on a fresh store with a team and two
// applications.
type world struct {
	mosq   *mosquittotest.Broker
	broker *mosquitto.Broker
	svc    *devices.Service
	store  *storage.Store
	team   string
	apps   [2]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st := storagetest.New(t, "sqlite")
	require.NoError(t, st.SeedDefaults(ctx))
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	w := &world{mosq: mosquittotest.Start(t), store: st, team: domain.NewID(),
		svc: &devices.Service{Store: st, Sealer: sealer, BrokerURL: "mqtt://broker.test"}}
	w.broker = w.start(t, time.Second)
	w.svc.Accounts = w.broker
	tts, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	require.NoError(t, st.InsertTeam(ctx, &storage.Team{ID: w.team, Name: "T", Slug: "t-" + w.team, TeamTypeID: tts[0].ID}))
	for i := range w.apps {
		w.apps[i] = domain.NewID()
		require.NoError(t, st.InsertApplication(ctx, &storage.Application{ID: w.apps[i], TeamID: w.team, Name: fmt.Sprint("app", i)}))
	}
	return w
}

// start connects a platform process to the world's broker.
func (w *world) start(t *testing.T, grace time.Duration) *mosquitto.Broker {
	t.Helper()
	b, err := mosquitto.Start(context.Background(), mosquitto.Config{URL: w.mosq.URL(), Username: w.mosq.AdminUsername,
		Password: w.mosq.AdminPassword, Devices: w.svc, Log: slog.New(slog.DiscardHandler), Consume: true, ReconcileGrace: grace})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type device struct{ id, username, password string }

// register registers a device of the team as the API does, in a transaction that makes its account.
func (w *world) register(t *testing.T, app *string) device {
	t.Helper()
	d, err := w.svc.NewDevice(w.team, "dev", "test")
	require.NoError(t, err)
	d.ApplicationID = app
	var creds *devices.Credentials
	require.NoError(t, w.store.RunInTx(context.Background(), func(ctx context.Context, tx *storage.Store) error {
		creds, err = w.svc.Register(ctx, tx, d)
		return err
	}))
	return device{id: d.ID, username: creds.Broker.Username, password: creds.Broker.Password}
}

func (w *world) get(t *testing.T, id string) *storage.Device {
	t.Helper()
	d, err := w.store.GetDevice(context.Background(), id)
	require.NoError(t, err)
	return d
}

// client is a device's MQTT connection with the commands it received.
type client struct {
	cl       paho.Client
	commands chan map[string]any
	lost     chan error
}

func (w *world) connect(d device) (*client, error) {
	c := &client{commands: make(chan map[string]any, 16), lost: make(chan error, 1)}
	c.cl = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + w.mosq.Addr).SetClientID(d.username).SetUsername(d.username).
		SetPassword(d.password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err }))
	tok := c.cl.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

func (w *world) mustConnect(t *testing.T, d device) *client {
	t.Helper()
	c, err := w.connect(d)
	require.NoError(t, err)
	t.Cleanup(func() { c.cl.Disconnect(0) })
	return c
}

// subscribe returns the SUBACK code: 0 granted, 0x80 refused.
func (c *client) subscribe(t *testing.T, topic string) byte {
	t.Helper()
	tok := c.cl.Subscribe(topic, 0, func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			c.commands <- cmd
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	t.Fatal("no SUBACK code")
	return 0
}

func (c *client) publish(t *testing.T, topic string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	require.True(t, c.cl.Publish(topic, 0, false, b).WaitTimeout(5*time.Second))
}

func (c *client) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case cmd := <-c.commands:
		return cmd
	case <-time.After(10 * time.Second):
		t.Fatal("no command arrived")
		return nil
	}
}

func (c *client) waitLost(t *testing.T, why string) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection was not closed: %s", why)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeviceGetsExactlyItsTopics: a registered device signs in with its credentials, as its own client ID only,
// subscribes to its command topics and its application's, nothing else, and talks with the platform: its
// status is recorded and answered, a target change reaches it, an upload request is answered.
func TestDeviceGetsExactlyItsTopics(t *testing.T) {
	w := newWorld(t)
	d := w.register(t, &w.apps[0])
	other := w.register(t, &w.apps[1])

	_, err := w.connect(device{id: d.id, username: d.username, password: other.password})
	assert.Error(t, err, "another device's password")
	_, err = w.connect(device{id: d.id, username: d.username, password: "fyb_wrong"})
	assert.Error(t, err, "a wrong password")
	_, err = w.connect(device{id: d.id, username: other.username, password: d.password})
	assert.Error(t, err, "its password under another device's name")
	wrongID := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + w.mosq.Addr).SetClientID("not-" + d.username).
		SetUsername(d.username).SetPassword(d.password).SetConnectTimeout(5 * time.Second))
	tok := wrongID.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	assert.Error(t, tok.Error(), "a client ID other than its username (it would take over another session)")

	c := w.mustConnect(t, d)
	own := devices.DeviceTopic(w.team, d.id, "command")
	for _, filter := range []string{own, devices.OwnerCommandTopic(w.team, "a", w.apps[0])} {
		assert.EqualValues(t, 0, c.subscribe(t, filter), filter)
	}
	for _, filter := range []string{devices.DeviceTopic(w.team, other.id, "command"), devices.OwnerCommandTopic(w.team, "a", w.apps[1]),
		devices.OwnerCommandTopic(w.team, "p", domain.NewID()), devices.DeviceTopic(w.team, d.id, "status"), "ff/v1/+/d/+/command",
		"ff/v1/" + w.team + "/#", "#", "$SYS/#", "$share/g/" + own, "$CONTROL/dynamic-security/v1/response"} {
		assert.EqualValues(t, 0x80, c.subscribe(t, filter), filter)
	}

	c.publish(t, devices.DeviceTopic(w.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil,
		"project": nil, "agentVersion": "4.2.1"})
	cmd := c.next(t)
	assert.Equal(t, "update", cmd["command"])
	assert.Equal(t, w.apps[0], cmd["application"])
	waitFor(t, "the status to be recorded", func() bool { return w.get(t, d.id).State == "unknown" })
	assert.Equal(t, devices.StatusOnline, w.svc.Status(w.get(t, d.id), time.Now()), "a device whose status arrives shows online")

	w.broker.NotifyDevice(context.Background(), d.id)
	assert.Equal(t, w.get(t, d.id).SettingsHash, c.next(t)["settings"], "a change reaches the device at once")

	c.cl.Subscribe(own, 0, func(cl paho.Client, m paho.Message) {
		var req map[string]any
		if json.Unmarshal(m.Payload(), &req) != nil || req["command"] != "upload" {
			return
		}
		reply, _ := json.Marshal(map[string]any{"teamId": w.team, "deviceId": d.id, "command": "upload", "correlationData": req["correlationData"],
			"payload": map[string]any{"state": "running", "flows": []any{map[string]any{"id": "t", "type": "tab"}}, "credentials": map[string]any{}}})
		cl.Publish(req["responseTopic"].(string), 0, false, reply)
	}).Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up, err := w.broker.RequestUpload(ctx, w.get(t, d.id))
	require.NoError(t, err)
	assert.JSONEq(t, `[{"id":"t","type":"tab"}]`, string(up.Flows))
	_, err = w.broker.RequestUpload(ctx, w.get(t, other.id))
	assert.True(t, domain.IsKind(err, domain.KindConflict), "a device never seen is not asked: %v", err)
}

// TestOwnerChangeMovesTheBroadcastTopic: a device moved to another application may subscribe to that
// application's command topic, and no longer to the first one's.
func TestOwnerChangeMovesTheBroadcastTopic(t *testing.T) {
	w := newWorld(t)
	d := w.register(t, &w.apps[0])
	dev := w.get(t, d.id)
	dev.ApplicationID = &w.apps[1]
	require.NoError(t, w.store.UpdateDevice(context.Background(), dev, "application_id"))
	require.NoError(t, w.svc.RefreshAccount(context.Background(), dev, []string{"application_id"}))

	c := w.mustConnect(t, d)
	assert.EqualValues(t, 0, c.subscribe(t, devices.OwnerCommandTopic(w.team, "a", w.apps[1])), "its new application's")
	assert.EqualValues(t, 0x80, c.subscribe(t, devices.OwnerCommandTopic(w.team, "a", w.apps[0])), "its old application's")
}

// TestDisabledAndDeletedDevicesAreRefused: disabling a device's account closes its connection and refuses it
// until it is enabled again; deleting it closes the connection and refuses it for good. Credentials issued
// again replace the old password.
func TestDisabledAndDeletedDevicesAreRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := w.register(t, nil)
	c := w.mustConnect(t, d)

	require.NoError(t, w.svc.RevokeAccount(ctx, w.get(t, d.id)))
	c.waitLost(t, "its account was disabled")
	_, err := w.connect(d)
	assert.Error(t, err, "a disabled device is refused")
	require.NoError(t, w.svc.RestoreAccount(ctx, w.get(t, d.id)))
	c = w.mustConnect(t, d)

	var creds *devices.Credentials
	require.NoError(t, w.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		creds, err = w.svc.IssueCredentials(ctx, tx, w.get(t, d.id))
		return err
	}))
	_, err = w.connect(d)
	assert.Error(t, err, "the old password is refused once new credentials are issued")
	renewed := device{id: d.id, username: d.username, password: creds.Broker.Password}
	c = w.mustConnect(t, renewed)

	require.NoError(t, w.svc.DeleteAccount(ctx, w.team, d.id))
	c.waitLost(t, "its account was deleted")
	_, err = w.connect(renewed)
	assert.Error(t, err, "a deleted device is refused")
	assert.NoError(t, w.svc.DeleteAccount(ctx, w.team, d.id), "deleting again is no error")
}

// TestReconcileFollowsTheStore: when a platform process starts, an account whose device does not exist (its
// registration did not commit, its team was deleted) is deleted, and a disabled account of a device that exists
// (its deletion did not commit) is enabled; accounts that agree with the store are left alone.
func TestReconcileFollowsTheStore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	kept := w.register(t, nil)
	disabled := w.register(t, nil)
	require.NoError(t, w.svc.RevokeAccount(ctx, w.get(t, disabled.id)))
	orphan, err := w.svc.NewDevice(w.team, "never committed", "test")
	require.NoError(t, err)
	orphanPassword, _ := domain.NewToken(devices.BrokerPasswordPrefix)
	require.NoError(t, w.broker.Create(ctx, orphan, orphanPassword))
	orphanDevice := device{id: orphan.ID, username: devices.BrokerUsername(w.team, orphan.ID), password: orphanPassword}
	w.mustConnect(t, orphanDevice)

	w.start(t, 10*time.Millisecond) // another platform process starts
	waitFor(t, "the orphan account to be deleted", func() bool {
		_, err := w.connect(orphanDevice)
		return err != nil
	})
	waitFor(t, "the disabled account of an existing device to be enabled", func() bool {
		c, err := w.connect(disabled)
		if err == nil {
			c.cl.Disconnect(0)
		}
		return err == nil
	})
	w.mustConnect(t, kept)
}

// TestPlatformRoleIsGrantedOnce: the admin client gets the platform's role when the first process starts (the
// plugin closes the admin's connections then, and the process connects again), and later processes find it.
func TestPlatformRoleIsGrantedOnce(t *testing.T) {
	w := newWorld(t)
	w.start(t, time.Minute)
	d := w.register(t, nil)
	c := w.mustConnect(t, d)
	require.EqualValues(t, 0, c.subscribe(t, devices.DeviceTopic(w.team, d.id, "command")))
	w.broker.NotifyDevice(context.Background(), d.id)
	assert.Equal(t, "update", c.next(t)["command"], "the first process publishes commands after the second started")
}
