package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// fixture is a running broker on a fresh store with a team, two applications and registered devices: the
// embedded broker, or an external Mosquitto the platform manages (external_test.go).
type fixture struct {
	broker   *broker.Broker  // the embedded broker; nil in external mode
	external *externalBroker // the external broker; nil in embedded mode
	svc      *devices.Service
	store    *storage.Store
	team     string
	apps     [2]string
}

type device struct {
	id, username, password string
}

func newFixture(t *testing.T, options ...func(*broker.Config)) *fixture {
	t.Helper()
	f := newWorld(t)
	cfg := broker.Config{Listen: "127.0.0.1:0", WSListen: "127.0.0.1:0", Devices: f.svc, Log: slog.New(slog.DiscardHandler), MaxPacketBytes: 64 << 10}
	for _, o := range options {
		o(&cfg)
	}
	b, err := broker.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	f.broker = b
	return f
}

// newWorld is a fresh store with the fixture's team and applications, and the devices service on it.
func newWorld(t *testing.T) *fixture {
	t.Helper()
	return newWorldOn(t, "sqlite")
}

// newWorldOn is newWorld on the database kind given ("sqlite" or "pg").
func newWorldOn(t *testing.T, dialect string) *fixture {
	t.Helper()
	st := storagetest.New(t, dialect)
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	svc := &devices.Service{Store: st, Sealer: sealer, BrokerURL: "mqtt://broker.test"}
	tts, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	f := &fixture{svc: svc, store: st, team: domain.NewID()}
	require.NoError(t, st.InsertTeam(ctx, &storage.Team{ID: f.team, Name: "T", Slug: "t-" + f.team, TeamTypeID: tts[0].ID}))
	for i := range f.apps {
		f.apps[i] = domain.NewID()
		require.NoError(t, st.InsertApplication(ctx, &storage.Application{ID: f.apps[i], TeamID: f.team, Name: fmt.Sprint("app", i)}))
	}
	return f
}

// platformBroker is the broker as the platform uses it, in either mode.
type platformBroker interface {
	NotifyDevice(ctx context.Context, deviceID string)
	DisconnectDevice(deviceID string)
	RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error)
}

func (f *fixture) platform() platformBroker {
	if f.external != nil {
		return f.external.Broker
	}
	return f.broker
}

// tcpURL is the broker's MQTT over TCP.
func (f *fixture) tcpURL() string { return f.urls()["tcp"] }

// deleteDevice deletes a device as the API does: its credentials go with it and its connection is closed.
func (f *fixture) deleteDevice(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	d := f.get(t, id)
	require.NoError(t, f.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteDevice(ctx, id); err != nil {
			return err
		}
		return f.svc.RevokeAccount(ctx, d)
	}))
	f.platform().DisconnectDevice(id)
	require.NoError(t, f.svc.DeleteAccount(ctx, d.TeamID, id))
}

func (f *fixture) register(t *testing.T, app *string) device {
	t.Helper()
	d, err := f.svc.NewDevice(f.team, "dev", "test")
	require.NoError(t, err)
	d.ApplicationID = app
	var creds *devices.Credentials
	require.NoError(t, f.store.RunInTx(context.Background(), func(ctx context.Context, tx *storage.Store) error {
		creds, err = f.svc.Register(ctx, tx, d)
		return err
	}))
	return device{id: d.ID, username: creds.Broker.Username, password: creds.Broker.Password}
}

func (f *fixture) get(t *testing.T, id string) *storage.Device {
	t.Helper()
	d, err := f.store.GetDevice(context.Background(), id)
	require.NoError(t, err)
	return d
}

// conn is a test MQTT client with the messages it received on its command topic.
type conn struct {
	cl       paho.Client
	commands chan map[string]any
	lost     chan error
}

func connect(t *testing.T, url, clientID, username, password string, options ...func(*paho.ClientOptions)) (*conn, error) {
	t.Helper()
	c := &conn{commands: make(chan map[string]any, 16), lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, o := range options {
		o(opts)
	}
	c.cl = paho.NewClient(opts)
	tok := c.cl.Connect()
	tok.Wait()
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.cl.Disconnect(0) })
	return c, nil
}

func (f *fixture) connect(t *testing.T, d device) *conn {
	t.Helper()
	c, err := connect(t, f.tcpURL(), d.username, d.username, d.password)
	require.NoError(t, err)
	return c
}

// subscribe returns the SUBACK code: 0 granted, 0x80 refused.
func (c *conn) subscribe(t *testing.T, topic string) byte {
	t.Helper()
	tok := c.cl.Subscribe(topic, 0, func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			c.commands <- cmd
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	// paho keys the result by topic, stripping a $share/<group>/ prefix; there is one topic.
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	t.Fatal("no SUBACK code")
	return 0
}

func (c *conn) publish(t *testing.T, topic string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	tok := c.cl.Publish(topic, 0, false, b)
	require.True(t, tok.WaitTimeout(5*time.Second))
}

func (c *conn) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case cmd := <-c.commands:
		return cmd
	case <-time.After(10 * time.Second):
		t.Fatal("no command arrived")
		return nil
	}
}

func (c *conn) waitLost(t *testing.T, why string) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection was not closed: %s", why)
	}
}

func topic(team, id, leaf string) string { return "ff/v1/" + team + "/d/" + id + "/" + leaf }

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

func TestDeviceAuthentication(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, nil)
	other := f.register(t, nil)
	url := "tcp://" + f.broker.Addr()
	_, err := connect(t, url, d.username, d.username, "fyb_wrong")
	assert.Error(t, err, "a wrong password")
	_, err = connect(t, url, other.username, d.username, d.password)
	assert.Error(t, err, "a client ID other than the username (it would take over another device's session)")
	_, err = connect(t, url, d.username, other.username, d.password)
	assert.Error(t, err, "another device's username with this device's password")
	_, err = connect(t, url, "platform", "platform", "x")
	assert.Error(t, err, "not a device")

	c := f.connect(t, d)
	waitFor(t, "the device to show connected", func() bool { return f.get(t, d.id).Connected })
	assert.Equal(t, 1, f.broker.Connected())

	// WebSocket on "/", as the FlowFuse agent connects.
	ws, err := connect(t, "ws://"+f.broker.WSAddr()+"/", other.username, other.username, other.password)
	require.NoError(t, err)
	assert.EqualValues(t, 0, ws.subscribe(t, topic(f.team, other.id, "command")))

	// A second connection with the same client ID takes over; the first is closed.
	second := f.connect(t, d)
	c.waitLost(t, "a second connection took over")
	assert.EqualValues(t, 0, second.subscribe(t, topic(f.team, d.id, "command")))
	assert.True(t, f.get(t, d.id).Connected, "the take-over leaves the device connected")

	second.cl.Disconnect(0)
	waitFor(t, "the device to show disconnected", func() bool { return !f.get(t, d.id).Connected })
	assert.Equal(t, "offline", f.svc.Status(f.get(t, d.id), time.Now()))
}

// TestACL checks every rule of docs/device-protocol.md §3.7 for a device assigned to an application.
func TestACL(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, &f.apps[0])
	other := f.register(t, nil)
	c := f.connect(t, d)
	allowed := []string{topic(f.team, d.id, "command"), "ff/v1/" + f.team + "/a/" + f.apps[0] + "/command"}
	refused := []string{topic(f.team, other.id, "command"), "ff/v1/" + f.team + "/a/" + f.apps[1] + "/command",
		"ff/v1/" + f.team + "/p/" + domain.NewID() + "/command", topic(f.team, d.id, "status"), "ff/v1/+/d/+/status",
		"ff/v1/#", "#", "$share/g/" + topic(f.team, d.id, "command"), topic("other-team", d.id, "command")}
	for _, tp := range allowed {
		assert.EqualValues(t, 0, c.subscribe(t, tp), tp)
	}
	for _, tp := range refused {
		assert.EqualValues(t, 0x80, c.subscribe(t, tp), tp)
	}

	// Publishing on another device's status is dropped: nothing is recorded for it.
	c.publish(t, topic(f.team, other.id, "status"), map[string]any{"state": "running"})
	// Its own status is recorded; the report with state "unknown" is answered with an update command.
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil, "agentVersion": "4.2.1"})
	cmd := c.next(t)
	assert.Equal(t, "update", cmd["command"])
	assert.Equal(t, "application", cmd["ownerType"])
	assert.Equal(t, f.apps[0], cmd["application"])
	assert.NotContains(t, cmd, "project", "key presence matters: the other owner's key is left out")
	assert.Contains(t, cmd, "snapshot")
	assert.Nil(t, cmd["snapshot"])
	assert.Equal(t, f.get(t, d.id).SettingsHash, cmd["settings"])
	assert.Equal(t, "autonomous", cmd["mode"])
	waitFor(t, "the status to be recorded", func() bool { return f.get(t, d.id).State == "unknown" })
	assert.Nil(t, f.get(t, other.id).LastSeenAt, "the other device's status was not written")

	// Publishing on the device's own logs and response topics is allowed (the broker keeps the connection).
	c.publish(t, topic(f.team, d.id, "logs"), []any{})
	c.publish(t, topic(f.team, d.id, "response/abc"), map[string]any{})
	assert.True(t, c.cl.IsConnectionOpen())
}

func TestStatusAndNotify(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, &f.apps[0])
	c := f.connect(t, d)
	require.EqualValues(t, 0, c.subscribe(t, topic(f.team, d.id, "command")))
	hash := f.get(t, d.id).SettingsHash

	// A malformed status is dropped and changes nothing.
	c.cl.Publish(topic(f.team, d.id, "status"), 0, false, []byte("{not json")).Wait()
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": 42})

	// In sync (no target): recorded, no update. Then a new target reaches the device at once.
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "stopped", "application": f.apps[0], "snapshot": nil, "settings": hash, "agentVersion": "4.2.1"})
	waitFor(t, "the status to be recorded", func() bool { return f.get(t, d.id).State == "stopped" })
	snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: f.apps[0], TeamID: f.team, Name: "s", Flows: "[]", Credentials: "{}",
		CredentialSecret: f.svc.Sealer.Seal("x")}
	_, err := f.store.InsertSnapshot(context.Background(), snap)
	require.NoError(t, err)
	dev := f.get(t, d.id)
	dev.TargetSnapshotID = &snap.ID
	require.NoError(t, f.svc.Rehash(context.Background(), f.store, dev))
	require.NoError(t, f.store.UpdateDevice(context.Background(), dev, "target_snapshot_id", "settings_hash"))
	f.broker.NotifyDevice(context.Background(), d.id)
	cmd := c.next(t)
	assert.Equal(t, snap.ID, cmd["snapshot"])
	assert.Equal(t, dev.SettingsHash, cmd["settings"])

	// The device reports the snapshot running: active = target.
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "running", "application": f.apps[0], "snapshot": snap.ID, "settings": dev.SettingsHash})
	waitFor(t, "running with the snapshot active", func() bool {
		got := f.get(t, d.id)
		return got.State == "running" && got.ActiveSnapshotID != nil && *got.ActiveSnapshotID == snap.ID
	})
	// A stale report is answered with the update again (status-driven reconciliation).
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "running", "application": f.apps[0], "snapshot": "older", "settings": dev.SettingsHash})
	assert.Equal(t, snap.ID, c.next(t)["snapshot"])
}

func TestOversizedPacketDisconnects(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, nil)
	c := f.connect(t, d)
	c.cl.Publish(topic(f.team, d.id, "logs"), 0, false, []byte(strings.Repeat("x", 128<<10)))
	c.waitLost(t, "a packet over the broker's limit")
}

func TestDeletedDeviceIsDisconnected(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, nil)
	c := f.connect(t, d)
	require.NoError(t, f.store.DeleteDevice(context.Background(), d.id))
	f.broker.DisconnectDevice(d.id)
	c.waitLost(t, "the device was deleted")
	_, err := connect(t, "tcp://"+f.broker.Addr(), d.username, d.username, d.password)
	assert.Error(t, err, "its broker password is revoked")
}

func TestRequestUpload(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, &f.apps[0])
	c := f.connect(t, d)
	dev := f.get(t, d.id)
	c.cl.Subscribe(topic(f.team, d.id, "command"), 0, func(cl paho.Client, m paho.Message) {
		var req map[string]any
		require.NoError(t, json.Unmarshal(m.Payload(), &req))
		if req["command"] != "upload" {
			return
		}
		reply, _ := json.Marshal(map[string]any{"teamId": f.team, "deviceId": d.id, "command": "upload", "correlationData": req["correlationData"],
			"payload": map[string]any{"state": "running", "flows": []any{map[string]any{"id": "t", "type": "tab"}}, "credentials": map[string]any{},
				"package": map[string]any{"modules": map[string]string{"node-red": "4.1.15"}}}})
		cl.Publish(req["responseTopic"].(string), 0, false, reply)
	}).Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up, err := f.broker.RequestUpload(ctx, dev)
	require.NoError(t, err)
	assert.JSONEq(t, `[{"id":"t","type":"tab"}]`, string(up.Flows))
	assert.Equal(t, "4.1.15", up.Package.Modules["node-red"])

	offline := f.register(t, &f.apps[0])
	_, err = f.broker.RequestUpload(ctx, f.get(t, offline.id))
	assert.True(t, domain.IsKind(err, domain.KindConflict), "a device that is not connected: %v", err)
}

// TestReconnectWhileTheEarlierConnectionEnds reconnects a device while its earlier connection is still ending,
// held where mochi-mqtt removes an ending client from its clients by client ID once it has checked that no new
// connection took it over. Had the new connection registered in between, that removal would drop it: connected
// and subscribed, it would never receive a command. The new connection waits for the earlier one to end, and its
// status is answered with its update.
func TestReconnectWhileTheEarlierConnectionEnds(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, &f.apps[0])
	held := make(chan struct{}, 1)
	f.broker.HoldEnding(d.username, held)
	f.connect(t, d).cl.Disconnect(0)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the earlier connection did not end")
	}
	c := f.connect(t, d)
	require.EqualValues(t, 0, c.subscribe(t, topic(f.team, d.id, "command")))
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil})
	assert.Equal(t, f.apps[0], c.next(t)["application"], "the new connection's update")
}

// TestAnotherBrokerKeepsDevicesConnected: `flowyard serve` replicas share the store, each with its own broker.
// One that starts (a replica added, or one restarted) leaves the devices connected to the others connected; one
// that closes marks only its own devices disconnected.
func TestAnotherBrokerKeepsDevicesConnected(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, nil)
	f.connect(t, d)
	waitFor(t, "the device to show connected", func() bool { return f.get(t, d.id).Connected })

	other, err := broker.Start(context.Background(), broker.Config{Listen: "127.0.0.1:0", Devices: f.svc, Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	assert.True(t, f.get(t, d.id).Connected, "another broker started: the device connected to the first is still connected")

	e := f.register(t, nil)
	_, err = connect(t, "tcp://"+other.Addr(), e.username, e.username, e.password)
	require.NoError(t, err)
	waitFor(t, "the device on the other broker to show connected", func() bool { return f.get(t, e.id).Connected })
	require.NoError(t, other.Close())
	assert.False(t, f.get(t, e.id).Connected, "the closed broker's device")
	assert.True(t, f.get(t, d.id).Connected, "the first broker's device")
}

// TestQueuedStatusesOfADeviceCoalesce: statuses a device publishes while its lane is behind are recorded as one,
// the latest, and the `update` is decided once, on it.
func TestQueuedStatusesOfADeviceCoalesce(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, &f.apps[0])
	c := f.connect(t, d)
	require.EqualValues(t, 0, c.subscribe(t, topic(f.team, d.id, "command")))
	release := make(chan struct{})
	f.broker.HoldLane(d.id, release)
	const n = 20
	for i := range n {
		c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "application": f.apps[0], "agentVersion": fmt.Sprintf("4.2.%d", i)})
	}
	// A QoS 1 publish is acknowledged once the broker handled the messages before it: all statuses are queued.
	require.True(t, c.cl.Publish(topic(f.team, d.id, "logs"), 1, false, []byte("[]")).Wait())
	close(release)
	require.True(t, f.broker.CommandAfterQueued(f.team, d.id, "stopLog"))
	updates := 0
	for cmd := c.next(t); cmd["command"] != "stopLog"; cmd = c.next(t) {
		assert.Equal(t, "update", cmd["command"])
		updates++
	}
	assert.Equal(t, 1, updates, "one update, decided on the latest status")
	assert.Equal(t, fmt.Sprintf("4.2.%d", n-1), f.get(t, d.id).AgentVersion, "the latest status is recorded")
}

// TestBurstAcrossDevicesIsRecorded: statuses of several devices queued at once, interleaved, are all recorded in
// the batches of their lanes: each device ends with its own latest status and one `update` decided on it.
func TestBurstAcrossDevicesIsRecorded(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	var ds []device
	var cs []*conn
	for range 4 {
		d := f.register(t, &f.apps[0])
		c := f.connect(t, d)
		require.EqualValues(t, 0, c.subscribe(t, topic(f.team, d.id, "command")))
		ds, cs = append(ds, d), append(cs, c)
	}
	for _, d := range ds { // once all signed in: a sign-in waits for its lane
		f.broker.HoldLane(d.id, release)
	}
	const n = 5
	for i := range n {
		for j, d := range ds {
			cs[j].publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "application": f.apps[0], "agentVersion": fmt.Sprintf("%d.%d", j, i)})
		}
	}
	for j, d := range ds {
		require.True(t, cs[j].cl.Publish(topic(f.team, d.id, "logs"), 1, false, []byte("[]")).Wait())
	}
	close(release)
	for j, d := range ds {
		require.True(t, f.broker.CommandAfterQueued(f.team, d.id, "stopLog"))
		updates := 0
		for cmd := cs[j].next(t); cmd["command"] != "stopLog"; cmd = cs[j].next(t) {
			updates++
		}
		assert.Equal(t, 1, updates, "device %d", j)
		assert.Equal(t, fmt.Sprintf("%d.%d", j, n-1), f.get(t, d.id).AgentVersion, "device %d", j)
	}
}
