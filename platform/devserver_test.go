package platform_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/flowyard/flowyard/temporalenv"
)

// testNamespace is the namespace every Flowyard workflow runs in (temporalenv's default configuration), and
// testMasterKey the sealer's key of the tests that run workers on the store themselves.
var testNamespace = temporalenv.DefaultConfig().Namespace

const testMasterKey = "a-test-master-key-that-is-long-enough-1234"

// startTemporalWith runs a headless Temporal dev server (the repository's bin/temporal) on a free port with
// Flowyard's namespace and search attributes and the server settings given (temporalenv.DevServerOptions.
// DynamicConfig, nil for none), stopped when the test ends. The tests that run a worker in the test process
// against it use it; startTemporal is the same without settings.
func startTemporalWith(t testing.TB, dynamicConfig map[string]string) *temporalenv.DevServer {
	t.Helper()
	_, bin := temporalBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := temporalenv.DefaultConfig()
	attrs, err := cfg.SearchAttributeTypes()
	require.NoError(t, err)
	srv, err := temporalenv.StartDevServer(ctx, temporalenv.DevServerOptions{Bin: bin, DataDir: t.TempDir(), IP: "127.0.0.1",
		Port: temporalPort(t), Headless: true, Namespace: cfg.Namespace, SearchAttributes: attrs, DynamicConfig: dynamicConfig,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}

// dialTemporal is a client of the Temporal server at address in Flowyard's namespace, closed when the test ends.
func dialTemporal(t testing.TB, address string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: address, Namespace: testNamespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}
