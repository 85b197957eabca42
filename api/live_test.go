package api

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
)

// TestSlowSubscriberIsDropped: a subscriber whose buffer is full is dropped (its channel closed, which ends its
// stream) instead of growing memory or holding up the others; the last one out stops the poller.
func TestSlowSubscriberIsDropped(t *testing.T) {
	h := newLiveHub(LiveConfig{Buffer: 2})
	everyone := func(domain.Action) bool { return true }
	start := func() (pollFunc, string) {
		return func(context.Context) ([]liveEvent, string) { return nil, "" }, "c0"
	}
	slow, cursor := h.subscribe("t", "", everyone, start)
	assert.Equal(t, "c0", cursor)
	fast, _ := h.subscribe("t", "", everyone, start)
	h.mu.Lock()
	tp := h.topics["t"]
	h.mu.Unlock()
	require.NotNil(t, tp)

	ev := liveEvent{name: "instance"}
	h.publish(tp, []liveEvent{ev, ev}, "c1")
	<-fast.ch // the fast one reads; the slow one does not
	<-fast.ch
	h.publish(tp, []liveEvent{ev}, "c2")
	_, open := <-drain(slow.ch)
	assert.False(t, open, "the slow subscriber's channel is closed")
	assert.Len(t, fast.ch, 1, "the fast one still gets events")
	assert.Equal(t, 1, h.pollers())

	h.unsubscribe("t", slow) // its stream ending: a no-op now
	h.unsubscribe("t", fast)
	assert.Equal(t, 0, h.pollers(), "the last one out stops the poller")
}

// drain returns ch after reading what it holds, so the next receive tells whether it is closed.
func drain(ch chan liveEvent) chan liveEvent {
	for len(ch) > 0 {
		<-ch
	}
	return ch
}
