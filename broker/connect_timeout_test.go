package broker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/internal/certtest"
)

// TestConnectionsThatNeverSignInAreClosed: on a port open to the internet, nobody may hold connections without
// signing in. A connection that sends no CONNECT (over TCP, WebSocket, or TLS without even a handshake) is closed
// after the connect timeout; a device that signed in keeps its connection past it.
func TestConnectionsThatNeverSignInAreClosed(t *testing.T) {
	short := func(c *broker.Config) { c.ConnectTimeout = 200 * time.Millisecond }
	f := newFixture(t, short)
	d := f.register(t, nil)
	for _, url := range []string{"tcp://" + f.broker.Addr(), "ws://" + f.broker.WSAddr() + "/"} {
		silent := dialRaw(t, url)
		assert.True(t, silent.closed(10*time.Second), "%s: a connection without CONNECT is closed", url)
		dev := dialRaw(t, url)
		code, err := dev.connectAs(d, nil)
		require.NoError(t, err)
		require.Zero(t, code)
		assert.False(t, dev.closed(time.Second), "%s: a signed-in device keeps its connection", url)
	}

	tlsBroker := newFixture(t, short, withTLS(certtest.WriteSelfSigned(t, t.TempDir(), "127.0.0.1")))
	silent := dialRaw(t, "tcp://"+tlsBroker.broker.Addr())
	assert.True(t, silent.closed(10*time.Second), "a TLS connection that never shakes hands is closed")
}

// TestSignInsBeyondTheQueueAreRefused: when as many sign-ins as the broker lets wait are waiting for the store, a
// device's CONNECT is refused at once (it reconnects later) and counted; once one is through, the next is accepted.
func TestSignInsBeyondTheQueueAreRefused(t *testing.T) {
	f := newFixture(t)
	d := f.register(t, nil)
	f.broker.HoldSignIns(2, 2)
	busy := dialRaw(t, "tcp://"+f.broker.Addr())
	code, err := busy.connectAs(d, nil)
	require.NoError(t, err)
	assert.NotZero(t, code, "refused while the queue is full")
	assert.EqualValues(t, 1, f.broker.RefusedBusy())

	f.broker.HoldSignIns(1, 2)
	dev := dialRaw(t, "tcp://"+f.broker.Addr())
	code, err = dev.connectAs(d, nil)
	require.NoError(t, err)
	assert.Zero(t, code, "accepted once there is room")
	assert.EqualValues(t, 1, f.broker.RefusedBusy())
}
