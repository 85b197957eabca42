package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// apiGCPercent is the collector's target for a process that serves the API and the devices (`flowyard dev` and
// `flowyard serve`): a collection once the heap has grown by half of what it held and scanned, instead of Go's
// default (all of it). The goroutines of a connected fleet (two per MQTT connection, about 8 KiB of scanned stack
// each) count in that, so by default a fleet at rest licensed the heap to grow by hundreds of MiB under load:
// profiles of a 10,000-device rollout showed 125 MiB live and 270-335 MiB in use. The collector's CPU costs
// little next to the store's. GOGC, when set, decides instead.
const apiGCPercent = 50

// tuneGC sets apiGCPercent unless GOGC is set.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(apiGCPercent)
	log.Debug("garbage collection target set", "gogc", apiGCPercent)
}
