package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestDeviceConnectionsOfBrokers: replicas share the store, each device's connection held by one broker. A
// device that moved to another broker stays connected when its old connection's end is recorded late; a sweep
// marks disconnected only the devices of brokers not alive lately (killed, or from before brokers were
// recorded); a broker that closes marks only its own devices disconnected.
func TestDeviceConnectionsOfBrokers(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		f := newRolloutFixture(t, st, 4)
		moved, onA, onB, legacy := f.devices[0], f.devices[1], f.devices[2], f.devices[3]
		now := time.Now()
		require.NoError(t, st.BrokerAlive(ctx, "a", now.Add(-time.Hour)))
		require.NoError(t, st.BrokerAlive(ctx, "b", now))
		require.NoError(t, st.SetDeviceConnectedTo(ctx, moved, "a", true, now))
		require.NoError(t, st.SetDeviceConnectedTo(ctx, moved, "b", true, now))
		require.NoError(t, st.SetDeviceConnectedTo(ctx, moved, "a", false, now), "the old connection's end, recorded late")
		require.NoError(t, st.SetDeviceConnectedTo(ctx, onA, "a", true, now))
		require.NoError(t, st.SetDeviceConnectedTo(ctx, onB, "b", true, now))
		require.NoError(t, st.SetDeviceConnected(ctx, legacy, true, now))
		connected := func(id string) bool {
			d, err := st.GetDevice(ctx, id)
			require.NoError(t, err)
			return d.Connected
		}
		assert.True(t, connected(moved), "a device that moved to b stays connected")

		n, err := st.SweepDeviceConnections(ctx, now, now.Add(-time.Minute))
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		assert.False(t, connected(onA), "a's last sign of life is an hour old")
		assert.False(t, connected(legacy), "held by no recorded broker")
		assert.True(t, connected(moved))
		assert.True(t, connected(onB))
		require.NoError(t, st.SetDeviceConnectedTo(ctx, onA, "a", true, now))
		n, err = st.SweepDeviceConnections(ctx, now, now.Add(-time.Minute))
		require.NoError(t, err)
		assert.Equal(t, 1, n, "a was forgotten by the first sweep")

		require.NoError(t, st.SetDeviceConnectedTo(ctx, onA, "c", true, now))
		require.NoError(t, st.BrokerAlive(ctx, "c", now))
		require.NoError(t, st.ForgetBroker(ctx, "b", now))
		assert.False(t, connected(moved))
		assert.False(t, connected(onB))
		assert.True(t, connected(onA), "c's device")
		n, err = st.SweepDeviceConnections(ctx, now, now.Add(-time.Minute))
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}
