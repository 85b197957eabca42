package platform

import (
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The API's process collects once the heap grew by half (not Go's default of all of it), unless GOGC is set.
func TestAPIProcessGCTarget(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t.Setenv("GOGC", "")
	tuneGC(slog.New(slog.DiscardHandler))
	assert.Equal(t, apiGCPercent, debug.SetGCPercent(100))
	t.Setenv("GOGC", "150") // the operator's choice (read by the runtime at start) stands
	tuneGC(slog.New(slog.DiscardHandler))
	assert.Equal(t, 100, debug.SetGCPercent(100))
}
