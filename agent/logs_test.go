package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogBuffer: Node-RED's lines become the protocol's entries (level from its marker, a 17-digit ts); startLog
// sends the buffer as one array, then each new line; stopLog ends it; the buffer keeps the newest lines.
func TestLogBuffer(t *testing.T) {
	b := newLogBuffer(3)
	_, _ = b.Write([]byte("7 Dec 05:50:00 - [info] Welcome to Node-RED\n7 Dec 05:50:01 - [warn] Encrypted credentials not found\nplain out"))
	_, _ = b.Write([]byte("put\n"))
	var sent []any
	b.start(func(v any) { sent = append(sent, v) })
	require.Len(t, sent, 1)
	first := sent[0].([]logEntry)
	require.Len(t, first, 3)
	assert.Equal(t, logEntry{Level: "info", Msg: "Welcome to Node-RED", TS: first[0].TS}, first[0])
	assert.Equal(t, "warn", first[1].Level)
	assert.Equal(t, "plain output", first[2].Msg, "a line written in two parts is one entry")
	assert.Len(t, first[0].TS, 17)
	assert.Less(t, first[0].TS, first[1].TS)

	_, _ = b.Write([]byte("7 Dec 05:50:02 - [error] boom\n"))
	require.Len(t, sent, 2)
	assert.Equal(t, "error", sent[1].(logEntry).Level)
	b.stop()
	_, _ = b.Write([]byte("after stop\n"))
	assert.Len(t, sent, 2)
	b.start(func(v any) { sent = append(sent, v) })
	last := sent[2].([]logEntry)
	assert.Equal(t, []string{"plain output", "boom", "after stop"}, []string{last[0].Msg, last[1].Msg, last[2].Msg}, "the newest 3")
}
