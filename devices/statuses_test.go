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

// TestStatusQueueRequeue: statuses of a batch the store failed to record get their places again, each taking its
// device's newer statuses meanwhile; one whose device has a newer status queued (sealed or not) is superseded.
func TestStatusQueueRequeue(t *testing.T) {
	var q StatusQueue
	st := func(device, payload string) Status {
		return Status{TeamID: "t", DeviceID: device, Payload: []byte(payload)}
	}
	requeued := make(chan any, 4)
	queue := func(deviceID string, item any) { requeued <- item }

	a, b := q.Queue(st("a", "1")), q.Queue(st("b", "1"))
	failed := q.Take([]any{a, b})
	q.Requeue(failed, queue)
	assert.Nil(t, q.Queue(st("a", "2")), "a's newer status takes the requeued one's place")
	items := []any{<-requeued, <-requeued}
	got := q.Take(items)
	assert.ElementsMatch(t, []Status{st("a", "2"), st("b", "1")}, got)
	assert.Empty(t, q.pending)
	assert.Empty(t, q.queued)

	c := q.Queue(st("c", "1"))
	failed = q.Take([]any{c})
	newer := q.Queue(st("c", "2"))
	q.Seal("c")
	q.Requeue(failed, queue)
	assert.Equal(t, map[string]int{"c": 1}, q.queued, "c's failed status is superseded by the one queued since")
	assert.Equal(t, []Status{st("c", "2")}, q.Take([]any{newer}))
	assert.Empty(t, q.queued)
}
