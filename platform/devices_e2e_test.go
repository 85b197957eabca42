package platform_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// helloFlows is an HTTP-in flow answering GET /hello with the snapshot's greeting.
func helloFlows(greeting string) []map[string]any {
	return []map[string]any{
		{"id": "tab1", "type": "tab", "label": "Device"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/hello", "method": "get", "wires": [][]string{{"tpl1"}}},
		{"id": "tpl1", "type": "template", "z": "tab1", "field": "payload", "fieldType": "msg", "format": "text", "syntax": "plain",
			"template": greeting, "output": "str", "wires": [][]string{{"out1"}}},
		{"id": "out1", "type": "http response", "z": "tab1", "statusCode": "", "wires": []any{}},
	}
}

// TestDeviceEndToEnd: flowyard dev, a provisioning token, flowyard-agent provisioning itself from it, a target
// snapshot set on the device, the agent's real Node-RED running those flows (an HTTP-in flow answers on the
// device's port), and the platform showing the device running with the snapshot active. Then the agent
// restarts and runs the same snapshot again without redeploying.
func TestDeviceEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	instID, _ := createInstance(t, c, "device-e2e")
	inst := c.Must(200, "GET", "/api/v1/instances/"+instID, nil)
	team, app := inst.String("teamId"), inst.String("applicationId")
	snap := c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
		"snapshot": map[string]any{"name": "hello", "flows": helloFlows("hello from the device"), "nodeRedVersion": "4.1.15"},
	}).String("id")

	tok := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "e2e", "applicationId": app}).String("token")
	require.True(t, strings.HasPrefix(tok, "fyp_"))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("provisioningName: e2e\nprovisioningTeam: %s\nprovisioningToken: %s\nforgeURL: %s\ndeviceName: gateway-1\n", team, tok, dev.URL)), 0o600))
	port := freePort(t)
	stopAgent := runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})

	var deviceID string
	waitFor(t, 30*time.Second, "the agent to provision itself", func() bool {
		items := c.Must(200, "GET", "/api/v1/teams/"+team+"/devices", nil).Body["items"].([]any)
		if len(items) == 1 {
			deviceID = items[0].(map[string]any)["id"].(string)
		}
		return deviceID != ""
	})
	// The platform registers the device before the agent has its answer, let alone has written it: wait for
	// device.yml to hold the device's config.
	var cfg *agent.DeviceConfig
	waitFor(t, 30*time.Second, "device.yml to be rewritten in device mode", func() bool {
		c, err := agent.LoadConfig(cfgPath)
		if err != nil || c.DeviceID != deviceID {
			return false
		}
		cfg = c
		return true
	})
	assert.True(t, cfg.AutoProvisioned)
	assert.NotEmpty(t, cfg.BrokerURL)
	got := c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil)
	assert.Equal(t, app, got.String("applicationId"), "the token's application was assigned")
	waitFor(t, 30*time.Second, "the device to be online", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("status") == "online"
	})

	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"targetSnapshotId": snap})
	waitDevice(t, c, deviceID, snap, 4*time.Minute)
	assert.Equal(t, "hello from the device", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))

	// Developer mode: the device's flows are pulled into a device snapshot, and pushed targets are ignored.
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "developer"})
	pulled := c.Must(201, "POST", "/api/v1/devices/"+deviceID+"/snapshots", map[string]any{"name": "from the device"})
	full := c.Must(200, "GET", "/api/v1/snapshots/"+pulled.String("id")+"/full", nil)
	assert.Contains(t, string(full.Raw), "hello from the device", "the snapshot holds the device's flows")
	assert.Len(t, c.Must(200, "GET", "/api/v1/devices/"+deviceID+"/snapshots", nil).Body["items"], 1)
	v2 := c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
		"snapshot": map[string]any{"name": "v2", "flows": helloFlows("hello v2"), "nodeRedVersion": "4.1.15"},
	}).String("id")
	changed := time.Now()
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"targetSnapshotId": v2})
	waitFor(t, 30*time.Second, "a check-in after the change", func() bool {
		seen, err := time.Parse(time.RFC3339Nano, c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("lastSeenAt"))
		return err == nil && seen.After(changed.Add(time.Second))
	})
	got = c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil)
	assert.Equal(t, snap, got.String("activeSnapshotId"), "a developer-mode device keeps its flows")
	assert.Equal(t, true, got.Body["isDeploying"])
	assert.Equal(t, "hello from the device", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "autonomous"})
	waitDevice(t, c, deviceID, v2, 2*time.Minute)
	assert.Equal(t, "hello v2", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))
	snap = v2

	// The agent restarts: Node-RED runs the same snapshot again from disk, without a new install.
	stopAgent()
	marker := filepath.Join(dir, "project", "node_modules", ".flowyard-marker")
	require.NoError(t, os.WriteFile(marker, nil, 0o600))
	runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})
	waitFor(t, 90*time.Second, "the restarted agent's Node-RED to answer", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hello", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	assert.FileExists(t, marker, "node_modules was not reinstalled")
	waitDevice(t, c, deviceID, snap, time.Minute)

	// Deleting the device revokes it at once: the agent stops Node-RED and forgets the snapshot.
	c.Must(204, "DELETE", "/api/v1/devices/"+deviceID, nil)
	waitFor(t, 60*time.Second, "the revoked agent to stop Node-RED", func() bool {
		_, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hello", port))
		return err != nil
	})
}

// runAgent runs flowyard-agent in-process until the test ends or the returned stop is called.
func runAgent(t *testing.T, opts agent.Options) func() {
	t.Helper()
	if testing.Verbose() && opts.Log == nil {
		opts.Log = testLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, opts) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("flowyard-agent did not stop within 30 s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitDevice waits until the device reports running with the snapshot active.
func waitDevice(t *testing.T, c *apitest.Client, deviceID, snap string, d time.Duration) {
	t.Helper()
	var last *apitest.Response
	deadline := time.Now().Add(d)
	for {
		last = c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil)
		if last.String("state") == "running" && last.String("activeSnapshotId") == snap {
			break
		}
		require.NotEqual(t, "error", last.String("state"), "the device failed: %s", last.Raw)
		if time.Now().After(deadline) {
			t.Fatalf("the device did not run snapshot %s within %s: %s", snap, d, last.Raw)
		}
		time.Sleep(250 * time.Millisecond)
	}
	assert.Equal(t, "online", last.String("status"))
	assert.Equal(t, false, last.Body["isDeploying"])
	assert.Equal(t, "4.1.15", last.String("nodeRedVersion"))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, string(b))
	return string(b)
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
