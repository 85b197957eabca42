package broker_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/broker"
)

// TestFloodingDeviceIsDroppedThenDisconnected: a device publishing over its rate has the extra messages dropped
// and counted, then, still flooding, is disconnected; another device keeps its connection.
func TestFloodingDeviceIsDroppedThenDisconnected(t *testing.T) {
	const burst = 5
	f := newFixture(t, func(c *broker.Config) { c.MessagesPerSecond, c.Burst = 1, burst })
	flooder, calm := f.register(t, nil), f.register(t, nil)
	fc, cc := f.connect(t, flooder), f.connect(t, calm)
	status := map[string]any{"state": "running"}

	// The burst passes; three more within the same second are dropped (the bucket refills one a second).
	for range burst + 3 {
		fc.publish(t, topic(f.team, flooder.id, "status"), status)
	}
	waitFor(t, "messages over the rate to be dropped", func() bool { return f.broker.Dropped() >= 2 })
	select {
	case err := <-fc.lost:
		t.Fatalf("a device that only went over its burst was disconnected: %v", err)
	default:
	}

	// Flooding on: once a burst's worth more is dropped the broker closes the connection.
	for i := 0; i < 1000 && fc.cl.IsConnectionOpen(); i++ {
		fc.cl.Publish(topic(f.team, flooder.id, "status"), 0, false, []byte(`{"state":"running"}`))
	}
	fc.waitLost(t, "a device flooding the broker")
	assert.Greater(t, f.broker.Dropped(), uint64(burst), "every dropped message is counted")

	cc.publish(t, topic(f.team, calm.id, "status"), status)
	assert.True(t, cc.cl.IsConnectionOpen(), "the other device is not affected")
	waitFor(t, "the flooder to show disconnected", func() bool { return !f.get(t, flooder.id).Connected })
}
