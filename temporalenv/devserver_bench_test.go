package temporalenv

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// BenchmarkDevServerStart measures how long StartDevServer takes until the frontend answers and the
// namespace exists, on a fresh database and over an existing one (UI enabled, as in `flowyard dev`).
//
//	go test ./temporalenv -run '^$' -bench DevServerStart -benchtime 5x
func BenchmarkDevServerStart(b *testing.B) {
	bin := temporalBin(b)
	attrs, err := DefaultConfig().SearchAttributeTypes()
	if err != nil {
		b.Fatal(err)
	}
	for _, journal := range []string{"delete", "wal"} {
		options := func(dataDir string) DevServerOptions {
			return DevServerOptions{Bin: bin, DataDir: dataDir, SearchAttributes: attrs,
				SQLitePragmas: map[string]string{"journal_mode": journal},
				Logger:        slog.New(slog.DiscardHandler)}
		}
		b.Run("fresh/journal="+journal, func(b *testing.B) {
			for range b.N {
				startStop(b, options(b.TempDir()))
			}
		})
		b.Run("existing/journal="+journal, func(b *testing.B) {
			dataDir := b.TempDir()
			b.StopTimer()
			startStop(b, options(dataDir)) // creates the database
			b.StartTimer()
			for range b.N {
				startStop(b, options(dataDir))
			}
		})
	}
}

// startStop starts a dev server with the benchmark timer running and stops it with the timer paused.
func startStop(b *testing.B, opts DevServerOptions) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := StartDevServer(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	defer b.StartTimer()
	if err := srv.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDevServerWorkflow measures one start-to-completion round trip of a trivial workflow that
// upserts two search attributes, to compare SQLite journal modes.
//
//	go test ./temporalenv -run '^$' -bench DevServerWorkflow -benchtime 100x
func BenchmarkDevServerWorkflow(b *testing.B) {
	bin := temporalBin(b)
	attrs, err := DefaultConfig().SearchAttributeTypes()
	if err != nil {
		b.Fatal(err)
	}
	for _, journal := range []string{"delete", "wal"} {
		b.Run("journal="+journal, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			srv, err := StartDevServer(ctx, DevServerOptions{Bin: bin, DataDir: b.TempDir(), Headless: true,
				SearchAttributes: attrs, SQLitePragmas: map[string]string{"journal_mode": journal},
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop(context.Background())
			cfg := DefaultConfig()
			cfg.Address = srv.Address()
			c, err := Dial(ctx, cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			w := worker.New(c, "bench", worker.Options{})
			w.RegisterWorkflow(markInstance)
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Stop()
			b.ResetTimer()
			for i := range b.N {
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench/%d", i), TaskQueue: "bench"}, markInstance, "inst")
				if err != nil {
					b.Fatal(err)
				}
				if err := run.Get(ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
