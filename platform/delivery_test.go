package platform_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/mqttdevice"
)

// deliveryWorld is the production layout (two `flowyard serve` replicas A and B, one `flowyard worker`,
// Postgres) with one device connected to A's broker. The device never sends a heartbeat: a command that reaches
// it was pushed.
type deliveryWorld struct {
	tp        *topology
	a, b      *apitest.Client
	team, app string
	snaps     []string
	device    string
	agent     *mqttdevice.Device
	hash      string // the settings hash the device last reported
}

func newDeliveryWorld(t testing.TB) *deliveryWorld {
	t.Helper()
	tp := startTopology(t, 2)
	w := &deliveryWorld{tp: tp, a: tp.serves[0].client(t), b: tp.serves[1].client(t)}
	w.team = w.a.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Plant"}).String("id")
	w.app = w.a.Must(201, "POST", "/api/v1/teams/"+w.team+"/applications", map[string]any{"name": "line"}).String("id")
	w.snaps = tp.insertSnapshots(tp.store(), w.team, w.app, 3)
	reg := w.a.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gateway", "type": "test", "team": w.team})
	w.device = reg.String("id")
	w.a.Must(200, "PATCH", "/api/v1/devices/"+w.device, map[string]any{"applicationId": w.app, "targetSnapshotId": w.snaps[0]})
	broker := reg.Body["credentials"].(map[string]any)["broker"].(map[string]any)
	w.agent = mqttdevice.Connect(t, "tcp://"+tp.serves[0].mqtt, broker["username"].(string), broker["password"].(string))
	// A FlowFuse agent's first status says "unknown"; the answer is what it should run.
	w.agent.Publish(t, "status", map[string]any{"state": "unknown"})
	w.apply(t, w.agent.Next(t, "update"))
	return w
}

// apply reports running what an `update` said, as an agent does once it has deployed it.
func (w *deliveryWorld) apply(t testing.TB, upd map[string]any) {
	t.Helper()
	w.hash = upd["settings"].(string)
	w.agent.Status(t, w.app, upd["snapshot"].(string), w.hash)
	waitFor(t, 30*time.Second, "the status to be recorded", func() bool {
		d := w.a.Must(200, "GET", "/api/v1/devices/"+w.device, nil)
		return d.String("state") == "running" && d.String("activeSnapshotId") == upd["snapshot"]
	})
}

// TestDeliveryAcrossProcesses runs the production layout and reaches a device connected to replica A from
// replica B and from the worker: a target change, a group's env, a group rollout, a device snapshot (upload and
// its reply), the device's live log streamed on B and actions asked through B, the listening connections killed
// and restored, and a deletion that disconnects the device at once.
func TestDeliveryAcrossProcesses(t *testing.T) {
	w := newDeliveryWorld(t)

	// (1) A target change through B reaches the device on A.
	w.b.Must(200, "PATCH", "/api/v1/devices/"+w.device, map[string]any{"targetSnapshotId": w.snaps[1]})
	upd := w.agent.Next(t, "update")
	assert.Equal(t, w.snaps[1], upd["snapshot"])
	assert.Equal(t, w.app, upd["application"])
	assert.NotEqual(t, w.hash, upd["settings"], "the settings carry the new snapshot's FF_SNAPSHOT_ID")
	w.apply(t, upd)

	// A group's env changed through B: a new settings hash, pushed.
	group := w.b.Must(201, "POST", "/api/v1/applications/"+w.app+"/device-groups", map[string]any{"name": "line-1"}).String("id")
	w.b.Must(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{w.device}})
	w.apply(t, w.agent.Next(t, "update"))
	w.b.Must(200, "PATCH", "/api/v1/device-groups/"+group, map[string]any{"env": []map[string]any{{"name": "LINE", "value": "1"}}})
	upd = w.agent.Next(t, "update")
	assert.NotEqual(t, w.hash, upd["settings"])
	w.apply(t, upd)

	// (2) A rollout started through B and run by the worker: its wave's update is pushed.
	r := w.b.Must(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": w.snaps[2],
		"strategy": map[string]any{"waves": []int{100}}})
	rollout := r.Body["rollout"].(map[string]any)["id"].(string)
	upd = w.agent.Next(t, "update")
	assert.Equal(t, w.snaps[2], upd["snapshot"])
	w.apply(t, upd)
	waitFor(t, 2*time.Minute, "the rollout to succeed", func() bool {
		return w.b.Must(200, "GET", "/api/v1/rollouts/"+rollout, nil).String("status") == "succeeded"
	})

	// (3) A device snapshot through B: the upload request and its reply travel between the replicas.
	answer := make(chan *apitest.Response, 1)
	go func() {
		answer <- w.b.Do("POST", "/api/v1/devices/"+w.device+"/snapshots", map[string]any{"name": "as it runs"})
	}()
	w.agent.Reply(t, w.agent.Next(t, "upload"), mqttdevice.UploadAnswer("Line 3 as it runs"))
	got := <-answer
	require.Equal(t, 201, got.Status, string(got.Raw))
	full := w.a.Must(200, "GET", "/api/v1/snapshots/"+got.String("id")+"/full", nil)
	assert.Contains(t, string(full.Raw), "Line 3 as it runs")

	// (6) The device's live log watched through B: A asks the device for it, its lines reach B's stream, and
	// once nobody watches the device is told to stop.
	logs := w.b.Stream("/api/v1/devices/"+w.device+"/logs/stream", "")
	w.agent.Next(t, "startLog")
	w.agent.Publish(t, "logs", []map[string]any{{"level": "info", "msg": "Started flows", "ts": "17653062001230000"},
		{"level": "error", "msg": "connect ECONNREFUSED", "ts": "17653062001240000"}})
	logs.Until(mqttdevice.Wait, "the device's lines on B's stream", func(ev apitest.Event) bool {
		return ev.Name == "log" && strings.Contains(ev.Data, "connect ECONNREFUSED")
	})
	logs.Close()
	w.agent.Next(t, "stopLog")

	// (7) Actions through B: the device on A is asked, and its answer, success or failure, is B's.
	act := func(action string, reply map[string]any) *apitest.Response {
		answer := make(chan *apitest.Response, 1)
		go func() { answer <- w.b.Do("POST", "/api/v1/devices/"+w.device+"/actions/"+action, nil) }()
		req := w.agent.Next(t, "action")
		assert.Equal(t, map[string]any{"action": action}, req["payload"])
		w.agent.Reply(t, req, reply)
		return <-answer
	}
	got = act("restart", map[string]any{"success": true})
	assert.Equal(t, 202, got.Status, string(got.Raw))
	got = act("start", map[string]any{"success": false, "error": map[string]any{"message": "No snapshot to start"}})
	assert.Equal(t, 409, got.Status, string(got.Raw))
	assert.Equal(t, "device_action_failed", got.String("code"))

	// (5) Every listening connection killed. The change right after may reach A's old connection, none, or the
	// new one; in every case the device gets it (after listening again, A re-sends update to its devices that
	// run something else than their target).
	killed := w.tp.killListeners()
	require.Len(t, killed, 2, "each replica listens on one connection; the worker does not listen")
	w.b.Must(200, "PATCH", "/api/v1/devices/"+w.device, map[string]any{"targetSnapshotId": w.snaps[0]})
	assert.Equal(t, w.snaps[0], w.agent.Next(t, "update")["snapshot"])
	for _, r := range w.tp.serves {
		r.waitRelay(t)
	}
	// pgdriver opens a connection of its own when one fails, which the relay closes: wait for the two that stay.
	waitFor(t, 30*time.Second, "two new listening connections", func() bool {
		again := w.tp.listenerPIDs()
		return len(again) == 2 && !slices.ContainsFunc(again, func(pid int) bool { return slices.Contains(killed, pid) })
	})
	w.b.Must(200, "PATCH", "/api/v1/devices/"+w.device, map[string]any{"targetSnapshotId": w.snaps[1]})
	// The device never reports what it runs, so A's re-send after listening again may still be on its way with
	// the earlier target: skip those, and the new target must follow.
	for {
		got := w.agent.Next(t, "update")["snapshot"]
		if got == w.snaps[1] {
			break
		}
		require.Equal(t, w.snaps[0], got, "only the earlier target may come first (a re-send)")
	}

	// (4) Deleted through B: A closes the device's connection at once.
	w.b.Must(204, "DELETE", "/api/v1/devices/"+w.device, nil)
	select {
	case <-w.agent.Lost:
	case <-time.After(mqttdevice.Wait):
		t.Fatal("the device on A kept its connection")
	}
}
