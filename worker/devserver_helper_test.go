package worker_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/temporalenv"
)

// startDevServer runs a headless Temporal dev server (the repository's bin/temporal) with Flowyard's search
// attributes, stopped when the test ends.
func startDevServer(t *testing.T) *temporalenv.DevServer {
	t.Helper()
	return startDevServerWith(t, nil)
}

// startDevServerWith is startDevServer with server settings (temporalenv.DevServerOptions.DynamicConfig).
func startDevServerWith(t *testing.T, dynamicConfig map[string]string) *temporalenv.DevServer {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(repo, "bin", "temporal")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make bin/temporal`", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	attrs, err := temporalenv.DefaultConfig().SearchAttributeTypes()
	require.NoError(t, err)
	srv, err := temporalenv.StartDevServer(ctx, temporalenv.DevServerOptions{Bin: bin, DataDir: t.TempDir(), IP: "127.0.0.1",
		Headless: true, Namespace: testNamespace, SearchAttributes: attrs, DynamicConfig: dynamicConfig, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}
