package platform

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ShutdownGrace bounds a whole shutdown: after it, the process logs what it still waits for and exits, so a
// part that hangs (a broker draining dropped clients, a server that will not stop) never holds the process.
const ShutdownGrace = 15 * time.Second

// stopping names the parts of the process that are stopping right now.
var stopping stepSet

type stepSet struct {
	mu    sync.Mutex
	names []string
}

// run stops one named part and records it as pending until it has stopped.
func (s *stepSet) run(name string, stop func()) {
	s.mu.Lock()
	s.names = append(s.names, name)
	s.mu.Unlock()
	defer s.done(name)
	stop()
}

func (s *stepSet) done(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.names, name); i >= 0 {
		s.names = slices.Delete(s.names, i, i+1)
	}
}

// StillStopping lists the parts whose stop has begun and not ended, for the log of an overrun shutdown.
func StillStopping() []string {
	stopping.mu.Lock()
	defer stopping.mu.Unlock()
	return slices.Clone(stopping.names)
}

// WatchShutdown bounds the shutdown that begins when ctx ends: after grace it logs the parts still stopping
// and calls exit, so a hung part ends the process with a line that names it instead of holding it forever.
func WatchShutdown(ctx context.Context, log *slog.Logger, grace time.Duration, exit func(code int)) {
	go func() {
		<-ctx.Done()
		time.Sleep(grace)
		log.Error("shutdown overran its grace period; exiting without waiting further",
			"grace", grace, "stillStopping", StillStopping())
		exit(1)
	}()
}
