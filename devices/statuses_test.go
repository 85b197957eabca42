package devices

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestStatusQueueCoalesces: a device's statuses queued while its first waits take its place, the latest winning;
// a sealed status takes no newer one, which then queues behind it; another device's status queues on its own.
func TestStatusQueueCoalesces(t *testing.T) {
	var q StatusQueue
	st := func(device, payload string) Status {
		return Status{TeamID: "t", DeviceID: device, Payload: []byte(payload)}
	}
	first := q.Queue(st("a", "1"))
	assert.NotNil(t, first)
	assert.Nil(t, q.Queue(st("a", "2")), "a's newer status replaces the one waiting")
	other := q.Queue(st("b", "1"))
	assert.NotNil(t, other)
	assert.Nil(t, q.Queue(st("a", "3")))
	q.Seal("a")
	sealed := q.Queue(st("a", "4"))
	assert.NotNil(t, sealed, "a status after a seal queues behind it")
	got := q.Take([]any{first, other})
	assert.Equal(t, []Status{st("a", "3"), st("b", "1")}, got)
	assert.NotNil(t, q.Queue(st("b", "2")), "a taken status takes no newer one")
	assert.Nil(t, q.Queue(st("a", "5")), "the status queued after the seal still waits")
	assert.Equal(t, []Status{st("a", "5")}, q.Take([]any{sealed}))
}
