package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
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

// TestExternalProcessStartingLeavesOthersConnected: a process that starts when the platform's role is in place
// already does not rewrite it, which would make the plugin close the connections of every client with the role,
// the admin's, so every other process's.
func TestExternalProcessStartingLeavesOthersConnected(t *testing.T) {
	f := newExternalFixture(t)
	mb := f.external.mosq
	other, err := connect(t, f.tcpURL(), "other-"+domain.NewID(), mb.AdminUsername, mb.AdminPassword)
	require.NoError(t, err)
	probe := devices.DeviceTopic(f.team, domain.NewID(), "command")
	require.EqualValues(t, 0, other.subscribe(t, probe))
	f.startProcess(t, time.Minute)
	other.publish(t, probe, map[string]any{"command": "probe"})
	require.Equal(t, "probe", other.next(t)["command"], "the admin client's other connection stayed open")
}

// TestExternalStatusesRecordedInOrder: several consuming processes on Postgres, each device publishing its
// states in quick succession; every device shows its last state, also after the process recording them closes
// and another takes over (a status published meanwhile included).
func TestExternalStatusesRecordedInOrder(t *testing.T) {
	f := newWorldOn(t, "pg")
	mb := mosquittotest.Start(t)
	procs := make([]*mosquitto.Broker, 3)
	for i := range procs {
		b, err := mosquitto.Start(context.Background(), mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
			Devices: f.svc, Log: slog.New(slog.DiscardHandler), Consume: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		procs[i] = b
	}
	f.svc.Accounts = procs[1]
	f.external = &externalBroker{Broker: procs[1], mosq: mb}
	ds := make([]device, 20)
	conns := make([]*conn, len(ds))
	for i := range ds {
		ds[i] = f.register(t, &f.apps[0])
		conns[i] = f.connect(t, ds[i])
	}
	burst := func(states ...string) {
		for _, state := range states {
			for i, c := range conns {
				c.publish(t, topic(f.team, ds[i].id, "status"), map[string]any{"state": state, "application": f.apps[0], "snapshot": nil})
			}
		}
	}
	allShow := func(state string) {
		waitFor(t, fmt.Sprintf("every device to show %s", state), func() bool {
			for _, d := range ds {
				if f.get(t, d.id).State != state {
					return false
				}
			}
			return true
		})
	}
	burst("updating", "installing", "starting", "running")
	allShow("running")
	require.NoError(t, procs[0].Close()) // the first one started holds the lock
	burst("restarting", "updating", "installing", "starting", "suspended")
	allShow("suspended")
}

// TestExternalBurstAcrossDevicesIsRecorded: statuses of many devices published at once through a real Mosquitto,
// interleaved, are all recorded: each device ends with its own latest status.
func TestExternalBurstAcrossDevicesIsRecorded(t *testing.T) {
	f := newExternalFixture(t)
	ds, conns := f.connectFleet(t, 40)
	f.burstAcross(t, ds, conns, 10)
}

// TestExternalQueuedStatusesOfADeviceCoalesce: statuses a device publishes while the store is behind are recorded
// as one, the latest, and the `update` is decided once on it, as with the embedded broker: the device's row is
// held while it publishes, so its first status waits in the store and the others queue behind it.
func TestExternalQueuedStatusesOfADeviceCoalesce(t *testing.T) {
	f := newExternalFixtureOn(t, "pg")
	d := f.register(t, &f.apps[0])
	c := f.connect(t, d)
	commands := make(chan string, 64)
	require.True(t, c.cl.Subscribe(topic(f.team, d.id, "command"), 0, func(cl paho.Client, m paho.Message) {
		var req map[string]any
		if json.Unmarshal(m.Payload(), &req) != nil {
			return
		}
		commands <- fmt.Sprint(req["command"])
		if req["command"] == "upload" {
			reply, _ := json.Marshal(map[string]any{"teamId": f.team, "deviceId": d.id, "command": "upload", "correlationData": req["correlationData"],
				"payload": map[string]any{"flows": []any{map[string]any{"id": "t", "type": "tab"}}}})
			cl.Publish(req["responseTopic"].(string), 0, false, reply)
		}
	}).WaitTimeout(5*time.Second))
	f.markOnline(t, d.id)
	dev := f.get(t, d.id)
	// A reply to upload comes after the statuses the device published before it: once it is back, the platform
	// has queued them all.
	upload := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := f.external.RequestUpload(ctx, dev)
		require.NoError(t, err)
	}
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- f.store.RunInTx(context.Background(), func(ctx context.Context, tx *storage.Store) error {
			if err := tx.RecordDeviceReport(ctx, d.id, storage.DeviceReport{State: "running", At: time.Now()}); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	const n = 20
	for i := range n {
		c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "application": f.apps[0], "agentVersion": fmt.Sprintf("4.2.%d", i)})
	}
	upload()
	close(release)
	require.NoError(t, <-done)
	waitFor(t, "the latest status to be recorded", func() bool { return f.get(t, d.id).AgentVersion == fmt.Sprintf("4.2.%d", n-1) })
	upload() // the updates sent before reach the device before this request
	updates := 0
	for uploads := 0; uploads < 2; {
		select {
		case cmd := <-commands:
			switch cmd {
			case "upload":
				uploads++
			case "update":
				updates++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the second upload request did not arrive")
		}
	}
	assert.LessOrEqual(t, updates, 2, "one update for the status recorded alone while the row was held, one decided on the latest")
	assert.GreaterOrEqual(t, updates, 1)
}

// TestMeasureExternalStatuses measures how fast the external broker mode consumes a burst of status messages on
// Postgres: FLOWYARD_BENCH_DEVICES devices (default 200) each publish 20 statuses, interleaved, at once; it
// reports the statuses consumed per second until every device shows its latest. Only under FLOWYARD_BENCH=1.
func TestMeasureExternalStatuses(t *testing.T) {
	if os.Getenv("FLOWYARD_BENCH") != "1" {
		t.Skip("a measurement, not a test: run it with FLOWYARD_BENCH=1")
	}
	n := 200
	if v, err := strconv.Atoi(os.Getenv("FLOWYARD_BENCH_DEVICES")); err == nil {
		n = v
	}
	f := newExternalFixtureOn(t, "pg")
	ds, conns := f.connectFleet(t, n)
	const rounds = 20
	took := f.burstAcross(t, ds, conns, rounds)
	t.Logf("external broker: %d statuses of %d devices consumed in %.2f s: %.0f statuses/s", n*rounds, n, took.Seconds(),
		float64(n*rounds)/took.Seconds())
}

// connectFleet registers n devices of the first application and connects each to the broker.
func (f *fixture) connectFleet(t *testing.T, n int) ([]device, []*conn) {
	t.Helper()
	ds, conns := make([]device, n), make([]*conn, n)
	for i := range ds {
		ds[i] = f.register(t, &f.apps[0])
		conns[i] = f.connect(t, ds[i])
	}
	return ds, conns
}

// burstAcross has every device publish rounds statuses, interleaved with the others', and waits until each
// device shows its last; it returns the time from the first publish.
func (f *fixture) burstAcross(t *testing.T, ds []device, conns []*conn, rounds int) time.Duration {
	t.Helper()
	version := func(j, i int) string { return fmt.Sprintf("%d.%d", j, i) }
	start := time.Now()
	for i := range rounds {
		for j, c := range conns {
			c.publish(t, topic(f.team, ds[j].id, "status"), map[string]any{"state": "running", "application": f.apps[0],
				"agentVersion": version(j, i)})
		}
	}
	ids := make([]string, len(ds))
	for j, d := range ds {
		ids[j] = d.id
	}
	var got []storage.Device
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		got, err = f.store.GetDevices(context.Background(), ids)
		require.NoError(t, err)
		latest := 0
		for _, d := range got {
			j := slices.Index(ids, d.ID)
			if d.AgentVersion == version(j, rounds-1) {
				latest++
			}
		}
		if latest == len(ds) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute %d of %d devices show their latest status", latest, len(ds))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
