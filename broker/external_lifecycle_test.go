package broker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The device lifecycle on an external Mosquitto: what the platform's device accounts let a device do.

// startProcess connects another platform process to the fixture's external broker.
func (f *fixture) startProcess(t *testing.T, grace time.Duration) *mosquitto.Broker {
	t.Helper()
	mb := f.external.mosq
	b, err := mosquitto.Start(context.Background(), mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
		Devices: f.svc, Log: slog.New(slog.DiscardHandler), Consume: true, ReconcileGrace: grace})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dial connects as the device and returns the error of a refused connection.
func (f *fixture) dial(t *testing.T, d device) (*conn, error) {
	return connect(t, f.tcpURL(), d.username, d.username, d.password)
}

// TestExternalDeviceGetsExactlyItsTopics: a registered device signs in with its credentials, as its own client ID
// only, subscribes to its command topics and its application's, nothing else, and talks with the platform: its
// status is recorded and answered, a target change reaches it, an upload request is answered.
func TestExternalDeviceGetsExactlyItsTopics(t *testing.T) {
	f := newExternalFixture(t)
	d := f.register(t, &f.apps[0])
	other := f.register(t, &f.apps[1])
	_, err := connect(t, f.tcpURL(), d.username, d.username, other.password)
	assert.Error(t, err, "another device's password")
	_, err = connect(t, f.tcpURL(), other.username, other.username, d.password)
	assert.Error(t, err, "its password under another device's name")
	_, err = connect(t, f.tcpURL(), "not-"+d.username, d.username, d.password)
	assert.Error(t, err, "a client ID other than its username (it would take over another session)")

	c := f.connect(t, d)
	own := devices.DeviceTopic(f.team, d.id, "command")
	for _, filter := range []string{own, devices.OwnerCommandTopic(f.team, "a", f.apps[0])} {
		assert.EqualValues(t, 0, c.subscribe(t, filter), filter)
	}
	for _, filter := range []string{devices.DeviceTopic(f.team, other.id, "command"), devices.OwnerCommandTopic(f.team, "a", f.apps[1]),
		devices.OwnerCommandTopic(f.team, "p", domain.NewID()), devices.DeviceTopic(f.team, d.id, "status"), "ff/v1/+/d/+/command",
		"ff/v1/" + f.team + "/#", "#", "$SYS/#", "$share/g/" + own, "$CONTROL/dynamic-security/v1/response"} {
		assert.EqualValues(t, 0x80, c.subscribe(t, filter), filter)
	}

	c.publish(t, devices.DeviceTopic(f.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil,
		"project": nil, "agentVersion": "4.2.1"})
	cmd := c.next(t)
	assert.Equal(t, "update", cmd["command"])
	assert.Equal(t, f.apps[0], cmd["application"])
	waitFor(t, "the status to be recorded", func() bool { return f.get(t, d.id).State == "unknown" })
	assert.Equal(t, devices.StatusOnline, f.svc.Status(f.get(t, d.id), time.Now()), "a device whose status arrives shows online")
	f.platform().NotifyDevice(context.Background(), d.id)
	assert.Equal(t, f.get(t, d.id).SettingsHash, c.next(t)["settings"], "a change reaches the device at once")

	c.cl.Subscribe(own, 0, func(cl paho.Client, m paho.Message) {
		var req map[string]any
		if json.Unmarshal(m.Payload(), &req) != nil || req["command"] != "upload" {
			return
		}
		reply, _ := json.Marshal(map[string]any{"teamId": f.team, "deviceId": d.id, "command": "upload", "correlationData": req["correlationData"],
			"payload": map[string]any{"state": "running", "flows": []any{map[string]any{"id": "t", "type": "tab"}}, "credentials": map[string]any{}}})
		cl.Publish(req["responseTopic"].(string), 0, false, reply)
	}).Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up, err := f.platform().RequestUpload(ctx, f.get(t, d.id))
	require.NoError(t, err)
	assert.JSONEq(t, `[{"id":"t","type":"tab"}]`, string(up.Flows))
	_, err = f.platform().RequestUpload(ctx, f.get(t, other.id))
	assert.True(t, domain.IsKind(err, domain.KindConflict), "a device never seen is not asked: %v", err)
}

// TestExternalOwnerChangeMovesTheBroadcastTopic: a device moved to another application may subscribe to that
// application's command topic, and no longer to the first one's.
func TestExternalOwnerChangeMovesTheBroadcastTopic(t *testing.T) {
	f := newExternalFixture(t)
	d := f.register(t, &f.apps[0])
	dev := f.get(t, d.id)
	dev.ApplicationID = &f.apps[1]
	require.NoError(t, f.store.UpdateDevice(context.Background(), dev, "application_id"))
	require.NoError(t, f.svc.RefreshAccount(context.Background(), dev, []string{"application_id"}))

	c := f.connect(t, d)
	assert.EqualValues(t, 0, c.subscribe(t, devices.OwnerCommandTopic(f.team, "a", f.apps[1])), "its new application's")
	assert.EqualValues(t, 0x80, c.subscribe(t, devices.OwnerCommandTopic(f.team, "a", f.apps[0])), "its old application's")
}

// TestExternalDisabledAndDeletedDevicesAreRefused: disabling a device's account closes its connection and refuses
// it until it is enabled again; new credentials close it and refuse the old password; deleting the account
// closes the connection and refuses the device for good.
func TestExternalDisabledAndDeletedDevicesAreRefused(t *testing.T) {
	f := newExternalFixture(t)
	ctx := context.Background()
	d := f.register(t, nil)
	c := f.connect(t, d)

	require.NoError(t, f.svc.RevokeAccount(ctx, f.get(t, d.id)))
	c.waitLost(t, "its account was disabled")
	_, err := f.dial(t, d)
	assert.Error(t, err, "a disabled device is refused")
	require.NoError(t, f.svc.RestoreAccount(ctx, f.get(t, d.id)))
	c = f.connect(t, d)

	var creds *devices.Credentials
	require.NoError(t, f.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		creds, err = f.svc.IssueCredentials(ctx, tx, f.get(t, d.id))
		return err
	}))
	c.waitLost(t, "new credentials were issued")
	_, err = f.dial(t, d)
	assert.Error(t, err, "the old password is refused once new credentials are issued")
	renewed := device{id: d.id, username: d.username, password: creds.Broker.Password}
	c = f.connect(t, renewed)

	require.NoError(t, f.svc.DeleteAccount(ctx, f.team, d.id))
	c.waitLost(t, "its account was deleted")
	_, err = f.dial(t, renewed)
	assert.Error(t, err, "a deleted device is refused")
	assert.NoError(t, f.svc.DeleteAccount(ctx, f.team, d.id), "deleting again is no error")
}

// TestExternalReconcileFollowsTheStore: when a platform process starts, an account whose device does not exist
// (its registration did not commit, its team was deleted) is deleted, and a disabled account of a device that
// exists (its deletion did not commit) is enabled; accounts that agree with the store are left alone.
func TestExternalReconcileFollowsTheStore(t *testing.T) {
	f := newExternalFixture(t)
	ctx := context.Background()
	kept := f.register(t, nil)
	disabled := f.register(t, nil)
	require.NoError(t, f.svc.RevokeAccount(ctx, f.get(t, disabled.id)))
	orphan, err := f.svc.NewDevice(f.team, "never committed", "test")
	require.NoError(t, err)
	orphanPassword, _ := domain.NewToken(devices.BrokerPasswordPrefix)
	require.NoError(t, f.external.Create(ctx, orphan, orphanPassword))
	orphanDevice := device{id: orphan.ID, username: devices.BrokerUsername(f.team, orphan.ID), password: orphanPassword}
	f.connect(t, orphanDevice)

	f.startProcess(t, 10*time.Millisecond)
	waitFor(t, "the orphan account to be deleted", func() bool {
		_, err := f.dial(t, orphanDevice)
		return err != nil
	})
	waitFor(t, "the disabled account of an existing device to be enabled", func() bool {
		_, err := f.dial(t, disabled)
		return err == nil
	})
	f.connect(t, kept)
}

// TestExternalPlatformRoleIsGrantedOnce: the admin client gets the platform's role when the first process starts
// (the plugin closes the admin's connections then, and the process connects again), and later processes find it.
func TestExternalPlatformRoleIsGrantedOnce(t *testing.T) {
	f := newExternalFixture(t)
	f.startProcess(t, time.Minute)
	d := f.register(t, nil)
	c := f.connect(t, d)
	require.EqualValues(t, 0, c.subscribe(t, devices.DeviceTopic(f.team, d.id, "command")))
	f.platform().NotifyDevice(context.Background(), d.id)
	assert.Equal(t, "update", c.next(t)["command"], "the first process publishes commands after the second started")
}

// TestExternalProcessesStartingTogether: the replicas of a deployment start at once against a broker whose
// admin client has not got the platform's role yet. Each grant closes the admin's connections, the other
// processes' included; every process still starts, and each one reaches a device.
func TestExternalProcessesStartingTogether(t *testing.T) {
	f := newWorld(t)
	mb := mosquittotest.Start(t)
	const n = 3
	started := make([]*mosquitto.Broker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started[i], errs[i] = mosquitto.Start(context.Background(), mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername,
				Password: mb.AdminPassword, Devices: f.svc, Log: slog.New(slog.DiscardHandler), Consume: true})
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "process %d", i)
		t.Cleanup(func() { _ = started[i].Close() })
	}
	f.svc.Accounts = started[0]
	d := f.register(t, nil)
	c, err := connect(t, mb.URL(), d.username, d.username, d.password)
	require.NoError(t, err)
	require.EqualValues(t, 0, c.subscribe(t, devices.DeviceTopic(f.team, d.id, "command")))
	for i, b := range started {
		b.NotifyDevice(context.Background(), d.id)
		assert.Equal(t, "update", c.next(t)["command"], "process %d", i)
	}
}
