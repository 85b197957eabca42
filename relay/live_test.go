package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/relay"
)

// waitLines waits until the relay shows the device's log lines with the messages want, in order.
func waitLines(t *testing.T, r *relay.Relay, deviceID string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for {
		got = got[:0]
		for _, l := range r.LogLines(deviceID, time.Time{}, 100) {
			got = append(got, l.Msg)
		}
		if assert.ObjectsAreEqual(want, got) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the lines %v did not arrive within 30 s (got %v)", want, got)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveLogThroughAnotherReplica: a log watched on replica B of a device connected to replica A. A asks the
// device for its log and sends B its lines; the watch outlives several lease terms while B renews it; a second
// watcher on A does not ask the device again, and once both have left the device is told to stop.
func TestLiveLogThroughAnotherReplica(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	stopB := w.b.relay.WatchLog(w.team, a.id)
	a.Next(t, "startLog")
	a.Publish(t, "logs", []map[string]any{{"level": "info", "msg": "one", "ts": "17653062001230000"},
		{"level": "warn", "msg": "two", "ts": "17653062001240000"}})
	waitLines(t, w.b.relay, a.id, "one", "two")
	lines := w.b.relay.LogLines(a.id, time.Time{}, 100)
	assert.Equal(t, "warn", lines[1].Level)
	assert.Equal(t, time.UnixMilli(1765306200124).UTC(), lines[1].Time.UTC())

	// Longer than a lease lasts (three renewals): B renews it, so A keeps the device logging.
	time.Sleep(4 * w.b.relay.LeaseEvery)
	a.Publish(t, "logs", map[string]any{"level": "info", "msg": "three", "ts": "17653062101230000"})
	waitLines(t, w.b.relay, a.id, "one", "two", "three")
	stopA := w.a.relay.WatchLog(w.team, a.id)
	waitLines(t, w.a.relay, a.id, "one", "two", "three")
	stopB()
	a.Publish(t, "logs", map[string]any{"level": "info", "msg": "four", "ts": "17653062201230000"})
	waitLines(t, w.a.relay, a.id, "one", "two", "three", "four")
	stopA()
	a.Next(t, "stopLog")
	assert.Empty(t, a.Commands, "one startLog and one stopLog")
}

// TestLiveLogLeaseEnds: a replica that announced a watch and died (it never renews it) does not leave the device
// logging: the replica holding the device ends the lease after three terms and tells the device to stop.
func TestLiveLogLeaseEnds(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	dead := relay.New(w.b.store, nil) // announces, never renews
	dead.WatchLog(w.team, a.id)
	a.Next(t, "startLog")
	a.Next(t, "stopLog")
}

// TestActionThroughAnotherReplica: an action asked on replica B reaches the device on replica A, and its answer,
// success or failure, comes back to B; a device connected nowhere is not asked.
func TestActionThroughAnotherReplica(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	d, err := w.b.store.GetDevice(ctx, a.id)
	require.NoError(t, err)
	ask := func(action string, reply map[string]any) error {
		done := make(chan error, 1)
		go func() { done <- w.b.relay.DeviceAction(ctx, d, action) }()
		req := a.Next(t, "action")
		assert.Equal(t, map[string]any{"action": action}, req["payload"])
		a.Reply(t, req, reply)
		return <-done
	}
	require.NoError(t, ask("restart", map[string]any{"success": true}))
	err = ask("start", map[string]any{"success": false, "error": map[string]any{"message": "No snapshot to start"}})
	de, ok := domain.AsError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "device_action_failed", de.Code)
	assert.Contains(t, de.Message, "No snapshot to start")

	offline, _ := w.register(t)
	err = w.b.relay.DeviceAction(ctx, offline, "restart")
	de, ok = domain.AsError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "device_offline", de.Code)
}
