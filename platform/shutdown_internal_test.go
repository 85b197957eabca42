package platform

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWatchShutdownNamesWhatHangs: a part that does not stop within the grace period is named in the log and
// the process exits, instead of the shutdown waiting forever.
func TestWatchShutdownNamesWhatHangs(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	WatchShutdown(ctx, log, 50*time.Millisecond, func(code int) { exited <- code })

	release := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		stopping.run("a hung broker", func() { <-release })
		close(stopped)
	}()
	cancel()
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog never ended the shutdown")
	}
	if !strings.Contains(out.String(), "a hung broker") {
		t.Errorf("the log does not name what hangs: %s", out.String())
	}
	close(release)
	<-stopped
	if left := StillStopping(); len(left) != 0 {
		t.Errorf("stopped parts still listed: %v", left)
	}
}
