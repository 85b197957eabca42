package devices

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogRing: a device's log messages (an array, then single entries; ts as a 17-digit string or as a number)
// are kept in the order received, a burst sent again (the agent's whole buffer at its next startLog) adds only
// the newer lines, and the ring keeps the newest.
func TestLogRing(t *testing.T) {
	at := time.Now()
	burst := []byte(`[{"level":"info","msg":"a","ts":"17653062001230000"},{"level":"info","msg":"b","ts":17653062001240000},{"msg":{"x":1},"ts":"17653062001250000"}]`)
	lines, ok := ParseLogMessage(burst, at)
	require.True(t, ok)
	assert.Equal(t, time.UnixMilli(1765306200124), lines[1].Time)
	assert.Equal(t, `{"x":1}`, lines[2].Msg)
	r := NewLogRing(4)
	r.Add("d", lines)
	again := append([]byte(burst[:len(burst)-1]), []byte(`,{"level":"warn","msg":"c","ts":"17653062001260000"}]`)...)
	lines, ok = ParseLogMessage(again, at)
	require.True(t, ok)
	r.Add("d", lines)
	one, ok := ParseLogMessage([]byte(`{"level":"info","msg":"d","ts":"17653062001270000"}`), at)
	require.True(t, ok)
	r.Add("d", one)
	var msgs []string
	var prev time.Time
	for _, l := range r.Since("d", time.Time{}, 10) {
		msgs = append(msgs, l.Msg)
		assert.True(t, l.Received.After(prev), "each line received after the one before")
		prev = l.Received
	}
	assert.Equal(t, []string{"b", `{"x":1}`, "c", "d"}, msgs)
	_, ok = ParseLogMessage([]byte(`"text"`), at)
	assert.False(t, ok)
}
