package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/internal/mqttdevice"
	"github.com/flowyard/flowyard/storage"
)

// topologyFleet is how many simulated agents the topology tests run (one goroutine each, in the test process).
const topologyFleet = 200

// TestTopologyEmbeddedBrokers runs the production layout (two `flowyard serve` replicas A and B with their
// embedded brokers, one `flowyard worker`, Postgres) with a fleet of simulated agents behind a load balancer
// that hands half of the connections to each replica; see testTopology.
func TestTopologyEmbeddedBrokers(t *testing.T) {
	testTopology(t, nil)
}

// TestTopologyExternalBroker runs the same layout and steps with --mqtt-broker external: every process uses a
// throwaway Mosquitto with the dynamic-security plugin, which the devices connect to. One replica at a time
// records the status messages (the holder of the consumer's lock, broker/mosquitto/election.go), so one device's
// messages are recorded in order; when B is killed and it held the lock, A takes over.
func TestTopologyExternalBroker(t *testing.T) {
	testTopology(t, mosquittotest.Start(t))
}

// testTopology: the agents never send a heartbeat (their interval is an hour), so only a pushed `update` makes
// them change. (1) A target change through A reaches every device, half of them on B. (2) A group rollout
// started through A and run by the worker completes. (3) A device snapshot through A of a device on B, and (4) its
// deletion through A closes its connection at once. (5) B is killed (SIGKILL) while a rollout is in flight: its
// devices reconnect to A, the rollout completes, every device runs its target and shows connected. (6) A replica
// that starts afterwards leaves the devices connected to A connected.
func testTopology(t *testing.T, mb *mosquittotest.Broker) {
	lb := startBalancer(t)
	options := []topologyOption{withDevicesAt(lb.url())}
	if mb != nil {
		options = []topologyOption{withExternalBroker(mb)}
	}
	tp := startTopology(t, 2, options...)
	a, b := tp.serves[0], tp.serves[1]
	embedded := mb == nil
	if embedded {
		lb.add(a.mqtt)
		lb.add(b.mqtt)
	}
	w := newTopologyFleet(t, tp)
	if embedded {
		waitFor(t, time.Minute, "every device to connect through the load balancer", func() bool {
			return lb.connections(a.mqtt)+lb.connections(b.mqtt) == topologyFleet
		})
		// Half each, give or take the agents that connected more than once.
		assert.GreaterOrEqual(t, lb.connections(a.mqtt), topologyFleet/3, "devices on A")
		assert.GreaterOrEqual(t, lb.connections(b.mqtt), topologyFleet/3, "devices on B")
		w.waitConnected(t, topologyFleet)
	}

	// (1) A target change through A, device by device.
	for _, d := range w.devices(t) {
		w.c.Must(200, "PATCH", "/api/v1/devices/"+d["id"].(string), map[string]any{"targetSnapshotId": w.snaps[0]})
	}
	w.waitRunning(t, w.snaps[0])

	// (2) A rollout through A, run by the worker.
	ro := w.rollout(t, w.snaps[1])
	w.waitRollout(t, ro)
	w.waitRunning(t, w.snaps[1])

	// (3) A device snapshot through A of a device connected to B (to the external broker in that mode).
	reg := w.c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gateway", "type": "test", "team": w.team})
	device := reg.String("id")
	w.c.Must(200, "PATCH", "/api/v1/devices/"+device, map[string]any{"applicationId": w.app})
	creds := reg.Body["credentials"].(map[string]any)["broker"].(map[string]any)
	addr := "tcp://" + b.mqtt
	if !embedded {
		addr = "tcp://" + mb.Addr
	}
	dev := mqttdevice.Connect(t, addr, creds["username"].(string), creds["password"].(string))
	dev.Publish(t, "status", map[string]any{"state": "unknown"})
	waitFor(t, 30*time.Second, "the device on B to show online", func() bool {
		return w.c.Must(200, "GET", "/api/v1/devices/"+device, nil).String("status") == "online"
	})
	answer := make(chan *apitest.Response, 1)
	go func() {
		answer <- w.c.Do("POST", "/api/v1/devices/"+device+"/snapshots", map[string]any{"name": "as it runs"})
	}()
	dev.Reply(t, dev.Next(t, "upload"), mqttdevice.UploadAnswer("Line 3 as it runs"))
	got := <-answer
	require.Equal(t, 201, got.Status, string(got.Raw))
	assert.Contains(t, string(w.c.Must(200, "GET", "/api/v1/snapshots/"+got.String("id")+"/full", nil).Raw), "Line 3 as it runs")

	// (4) Deleted through A: its connection is closed at once.
	w.c.Must(204, "DELETE", "/api/v1/devices/"+device, nil)
	select {
	case <-dev.Lost:
	case <-time.After(mqttdevice.Wait):
		t.Fatal("the deleted device kept its connection")
	}

	// (5) B killed while a rollout is in flight.
	ro = w.rollout(t, w.snaps[2])
	b.kill(t)
	if embedded {
		waitFor(t, 2*time.Minute, "every device to reconnect to A", func() bool { return lb.connections(a.mqtt) == topologyFleet })
	}
	w.waitRollout(t, ro)
	w.waitRunning(t, w.snaps[2])
	if embedded {
		w.waitConnected(t, topologyFleet)
	}

	// (6) Another replica starts: the devices connected to A stay connected.
	tp.startServe().waitRelay(t)
	w.waitRunning(t, w.snaps[2])
	if embedded {
		n, err := w.st.CountDevicesConnected(context.Background(), true)
		require.NoError(t, err)
		assert.Equal(t, topologyFleet, n, "a replica that started marked the devices connected to A disconnected")
	}
}

// topologyWorld is a fleet of simulated agents in one group of one application, provisioned through replica A
// (their HTTP check-ins go to A; their MQTT connections where the platform hands them).
type topologyWorld struct {
	tp               *topology
	c                *apitest.Client // signed in on A
	st               *storage.Store
	team, app, group string
	snaps            []string
}

func newTopologyFleet(t *testing.T, tp *topology) *topologyWorld {
	t.Helper()
	w := &topologyWorld{tp: tp, c: tp.serves[0].client(t), st: tp.store()}
	// A fleet outgrows the seeded Starter type's device limit.
	unlimited := w.c.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Unlimited fleet"}).String("id")
	w.team = w.c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Fleet", "teamTypeId": unlimited}).String("id")
	w.app = w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/applications", map[string]any{"name": "plant"}).String("id")
	w.group = w.c.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "line"}).String("id")
	w.snaps = tp.insertSnapshots(w.st, w.team, w.app, 3)
	tok := w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/provisioning-tokens", map[string]any{"name": "fleet", "applicationId": w.app,
		"deviceGroupId": w.group}).String("token")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Simulate(ctx, agent.SimulateOptions{ForgeURL: tp.serves[0].url, ProvisioningToken: tok, Count: topologyFleet,
			Delay: 10 * time.Millisecond, Dir: t.TempDir(), Interval: time.Hour})
	}()
	t.Cleanup(func() { cancel(); <-done })
	// Each agent publishes its state once connected; the platform records it.
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d devices to join and show online", topologyFleet), func() bool {
		online := 0
		for _, d := range w.devices(t) {
			if d["status"] == "online" {
				online++
			}
		}
		return online == topologyFleet
	})
	return w
}

// devices lists the fleet's devices through A.
func (w *topologyWorld) devices(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range w.c.Must(200, "GET", "/api/v1/applications/"+w.app+"/devices?limit=500", nil).Body["items"].([]any) {
		if d := d.(map[string]any); d["deviceGroupId"] == w.group {
			out = append(out, d)
		}
	}
	return out
}

// waitRunning waits until every device of the fleet targets snapshot and reports running it.
func (w *topologyWorld) waitRunning(t *testing.T, snapshot string) {
	t.Helper()
	var last map[string]int // devices by what they show: target, active snapshot, state, status
	done := false
	defer func() {
		if !done {
			t.Logf("the devices by target, active snapshot, state and status: %v", last)
		}
	}()
	waitFor(t, 2*time.Minute, "every device to run "+snapshot, func() bool {
		last = map[string]int{}
		for _, d := range w.devices(t) {
			last[fmt.Sprint(d["targetSnapshotId"] == snapshot, d["activeSnapshotId"] == snapshot, d["state"], d["status"])]++
		}
		return last[fmt.Sprint(true, true, "running", "online")] == topologyFleet
	})
	done = true
}

// waitConnected waits until the store shows n devices connected to a broker.
func (w *topologyWorld) waitConnected(t *testing.T, n int) {
	t.Helper()
	waitFor(t, time.Minute, fmt.Sprintf("%d devices to show connected", n), func() bool {
		got, err := w.st.CountDevicesConnected(context.Background(), true)
		require.NoError(t, err)
		return got == n
	})
}

// rollout starts a rollout of snapshot to the fleet's group through A and returns its ID.
func (w *topologyWorld) rollout(t *testing.T, snapshot string) string {
	t.Helper()
	r := w.c.Must(202, "POST", "/api/v1/device-groups/"+w.group+"/rollouts", map[string]any{"snapshotId": snapshot,
		"strategy": map[string]any{"waves": []int{10, 100}, "waveTimeout": "2m"}})
	return r.Body["rollout"].(map[string]any)["id"].(string)
}

// waitRollout waits until the rollout succeeded, every device updated.
func (w *topologyWorld) waitRollout(t *testing.T, id string) {
	t.Helper()
	var ro *apitest.Response
	waitFor(t, 3*time.Minute, "rollout "+id+" to finish", func() bool {
		ro = w.c.Must(200, "GET", "/api/v1/rollouts/"+id, nil)
		switch ro.String("status") {
		case "succeeded", "failed", "rolled_back", "aborted":
			return true
		}
		return false
	})
	require.Equal(t, "succeeded", ro.String("status"), "%v", ro.Body)
	counts := ro.Body["counts"].(map[string]any)
	assert.EqualValues(t, topologyFleet, counts["updated"], "%v", counts)
	assert.EqualValues(t, 0, counts["failed"], "%v", counts)
}
