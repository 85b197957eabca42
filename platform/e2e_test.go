package platform_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/platform"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDev runs `flowyard dev` in-process on free ports with its own data dir, using the repository's
// bin/temporal and the shared test stacks dir, and returns the API's URL.
func startDev(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(repo, "bin", "temporal")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make bin/temporal`", bin)
	}
	dataDir := t.TempDir()
	stacks := os.Getenv("FLOWYARD_TEST_STACKS_DIR")
	if stacks == "" {
		stacks = "/tmp/flowyard-test-stacks"
	}
	// Share installed Node-RED stacks between test runs: npm runs once per machine, not per test.
	require.NoError(t, os.MkdirAll(stacks, 0o755))
	require.NoError(t, os.Symlink(stacks, filepath.Join(dataDir, "stacks")))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tport := freePort(t)
	for tport+1000 > 65535 || !portFree(tport+1000) {
		tport = freePort(t)
	}
	cfg, err := config.Load("dev", []string{"--data-dir", dataDir, "--listen", listen, "--temporal-port", fmt.Sprint(tport),
		"--temporal-bin", bin, "--temporal-config", filepath.Join(repo, "temporal.yaml"), "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--admin-email", "admin@example.com", "--admin-password", "admin-password"}, func(string) string { return "" })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	go func() { done <- platform.RunDev(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Error("flowyard dev did not stop within 60 s")
		}
	})
	url := "http://" + listen
	waitFor(t, 60*time.Second, "the API to be ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return url
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func firstID(r *apitest.Response) string {
	return r.Body["items"].([]any)[0].(map[string]any)["id"].(string)
}

// waitOperation waits until an operation finishes and returns its final status.
func waitOperation(t *testing.T, c *apitest.Client, opID string) *apitest.Response {
	t.Helper()
	var op *apitest.Response
	waitFor(t, 3*time.Minute, "operation "+opID, func() bool {
		op = c.Must(200, "GET", "/api/v1/operations/"+opID, nil)
		s := op.String("status")
		return s == "succeeded" || s == "failed" || s == "canceled"
	})
	return op
}

// TestInstanceLifecycleEndToEnd drives a real instance through the HTTP API: create, run, stop, start,
// restart, suspend, start, delete, against the real Temporal dev server and real Node-RED.
func TestInstanceLifecycleEndToEnd(t *testing.T) {
	url := startDev(t)
	c := (&apitest.Env{URL: url}).Client(t)
	c.Login("admin@example.com", "admin-password")
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "E2E"}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	body := map[string]any{"name": "e2e-one",
		"instanceTypeId": firstID(c.Must(200, "GET", "/api/v1/instance-types", nil)),
		"stackId":        firstID(c.Must(200, "GET", "/api/v1/stacks", nil)),
		"templateId":     firstID(c.Must(200, "GET", "/api/v1/templates", nil)),
		"env":            []map[string]any{{"name": "GREETING", "value": "hello"}}}
	created := c.Must(202, "POST", "/api/v1/applications/"+app+"/instances", body)
	inst := created.Body["instance"].(map[string]any)
	id := inst["id"].(string)
	opID := created.Body["operation"].(map[string]any)["id"].(string)
	assert.Equal(t, "/api/v1/operations/"+opID, created.Header.Get("Location"))
	assert.Equal(t, 409, c.Do("POST", "/api/v1/applications/"+app+"/instances", body).Status, "names are platform-unique")
	busy := c.Do("POST", "/api/v1/instances/"+id+"/actions/restart", nil)
	if busy.Status == 409 {
		assert.Equal(t, "instance_busy", busy.String("code"), "a second action while one runs is refused")
	}

	op := waitOperation(t, c, opID)
	require.Equal(t, "succeeded", op.String("status"), string(op.Raw))
	assert.Contains(t, op.String("temporalUrl"), "/workflows/instance%2F"+id)
	got := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
	require.Equal(t, "running", got.String("state"), string(got.Raw))
	logs := c.Must(200, "GET", "/api/v1/instances/"+id+"/logs", nil)
	assert.Contains(t, string(logs.Raw), "Started flows")

	for _, step := range []struct{ action, state string }{
		{"stop", "stopped"}, {"start", "running"}, {"restart", "running"}, {"suspend", "suspended"}, {"start", "running"},
	} {
		r := c.Must(202, "POST", "/api/v1/instances/"+id+"/actions/"+step.action, nil)
		op := waitOperation(t, c, r.Body["operation"].(map[string]any)["id"].(string))
		require.Equal(t, "succeeded", op.String("status"), "%s: %s", step.action, op.Raw)
		assert.Equal(t, step.state, c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("state"), step.action)
	}

	del := c.Must(202, "DELETE", "/api/v1/instances/"+id, nil)
	op = waitOperation(t, c, del.Body["operation"].(map[string]any)["id"].(string))
	require.Equal(t, "succeeded", op.String("status"), string(op.Raw))
	assert.Equal(t, 404, c.Do("GET", "/api/v1/instances/"+id, nil).Status)
	assert.False(t, strings.Contains(string(c.Must(200, "GET", "/api/v1/applications/"+app+"/instances", nil).Raw), id))
}
