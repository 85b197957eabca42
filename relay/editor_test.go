package relay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/domain"
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

// TestStartEditorTokenStaysOffTheChannel: B asks the device on A to open its editor. The device gets a token whose
// digest is the device's, and no notification on the channel, nor the answer B gets, carries the token.
func TestStartEditorTokenStaysOffTheChannel(t *testing.T) {
	w := newWorld(t)
	a := w.connected(t)
	ctx := context.Background()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(w.url)))
	t.Cleanup(func() { _ = db.Close() })
	ln := pgdriver.NewListener(bun.NewDB(db, pgdialect.New()))
	t.Cleanup(func() { _ = ln.Close() })
	require.NoError(t, ln.Listen(ctx, "flowyard_devices"))
	var heard []string
	var mu sync.Mutex
	go func() {
		for n := range ln.Channel() {
			mu.Lock()
			heard = append(heard, n.Payload)
			mu.Unlock()
		}
	}()

	heardMarker := func(marker string) {
		require.Eventually(t, func() bool {
			require.NoError(t, w.b.store.Notify(ctx, "flowyard_devices", marker)) // until the listener listens
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(heard, marker)
		}, 30*time.Second, 20*time.Millisecond)
	}
	heardMarker(`{"kind":"test-start"}`) // the listener listens

	d, err := w.b.store.GetDevice(ctx, a.id)
	require.NoError(t, err)
	type result struct {
		raw json.RawMessage
		err error
	}
	answer := make(chan result, 1)
	go func() {
		raw, err := w.b.relay.StartEditor(ctx, d)
		answer <- result{raw, err}
	}()
	req := a.Next(t, "startEditor")
	token, _ := req["payload"].(map[string]any)["token"].(string)
	require.True(t, strings.HasPrefix(token, "ffde_"+a.id+"_"), "token %q", token)
	a.Reply(t, req, map[string]any{"connected": true, "token": token})
	got := <-answer
	require.NoError(t, got.err)
	assert.NotContains(t, string(got.raw), token)
	var reply struct {
		Connected bool   `json:"connected"`
		TokenHash string `json:"tokenHash"`
	}
	require.NoError(t, json.Unmarshal(got.raw, &reply))
	assert.True(t, reply.Connected)
	cur, err := w.b.store.GetDevice(ctx, a.id)
	require.NoError(t, err)
	assert.Equal(t, domain.HashToken(token), cur.EditorTokenHash, "the holder stored the token's digest")
	assert.Equal(t, cur.EditorTokenHash, reply.TokenHash, "the asker learns which digest to wait for")

	heardMarker(`{"kind":"test-end"}`) // notified last: every notification before it was heard
	mu.Lock()
	defer mu.Unlock()
	asked := false
	for _, p := range heard {
		assert.NotContains(t, p, token, "a notification carries the token")
		assert.NotContains(t, p, strings.TrimPrefix(token, "ffde_"+a.id+"_"))
		asked = asked || strings.Contains(p, `"k":"editor"`)
	}
	assert.True(t, asked, "the request went through the channel: %q", heard)
}
