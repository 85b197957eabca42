package relay_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStopEditorOnAnotherReplica: a device connected to A leaves developer mode through B (or a worker): it is
// sent `stopEditor` all the same.
func TestStopEditorOnAnotherReplica(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	for _, from := range []*replica{w.b, w.worker} {
		d, err := from.store.GetDevice(ctx, a.id)
		require.NoError(t, err)
		from.relay.StopEditor(ctx, d)
		a.Next(t, "stopEditor")
	}
}
