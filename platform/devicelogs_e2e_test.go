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
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// agentEvents records what flowyard-agent logs (the message, with its state or action), so that a test sees
// what the agent was told and did.
type agentEvents struct {
	mu     sync.Mutex
	events []string
}

func (e *agentEvents) Enabled(context.Context, slog.Level) bool { return true }
func (e *agentEvents) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *agentEvents) WithGroup(string) slog.Handler            { return e }
func (e *agentEvents) Handle(_ context.Context, r slog.Record) error {
	ev := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "state" || a.Key == "action" {
			ev += " " + a.Value.String()
		}
		return true
	})
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
	return nil
}

// since returns the events from index from on, and the index after them.
func (e *agentEvents) since(from int) ([]string, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events[from:]...), len(e.events)
}

func (e *agentEvents) waitFor(t *testing.T, from int, what string) int {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		evs, _ := e.since(from)
		for i, ev := range evs {
			if ev == what {
				return from + i + 1
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowyard-agent did not log %q within 90 s (after: %v)", what, evs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeviceLogsAndActionsEndToEnd: flowyard dev and flowyard-agent with a real Node-RED. The device page's log
// stream gets Node-RED's lines (the agent streams them after startLog, and stops at stopLog once the stream is
// closed); a restart action restarts Node-RED and the device's state says so; suspend stops it and it stays
// stopped; start runs it again.
func TestDeviceLogsAndActionsEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	instID, _ := createInstance(t, c, "device-logs")
	inst := c.Must(200, "GET", "/api/v1/instances/"+instID, nil)
	team, app := inst.String("teamId"), inst.String("applicationId")
	snap := c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
		"snapshot": map[string]any{"name": "hello", "flows": helloFlows("hello from the device"), "nodeRedVersion": "4.1.15"},
	}).String("id")
	tok := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "e2e", "applicationId": app}).String("token")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("provisioningName: e2e\nprovisioningTeam: %s\nprovisioningToken: %s\nforgeURL: %s\ndeviceName: gateway-logs\n", team, tok, dev.URL)), 0o600))
	port := freePort(t)
	events := &agentEvents{}
	runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second, Log: slog.New(events)})
	var deviceID string
	waitFor(t, 30*time.Second, "the agent to provision itself", func() bool {
		items := c.Must(200, "GET", "/api/v1/teams/"+team+"/devices", nil).Body["items"].([]any)
		if len(items) == 1 {
			deviceID = items[0].(map[string]any)["id"].(string)
		}
		return deviceID != ""
	})
	waitFor(t, 60*time.Second, "the device to be online", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("status") == "online"
	})
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"targetSnapshotId": snap})
	waitDevice(t, c, deviceID, snap, 4*time.Minute)
	hello := fmt.Sprintf("http://127.0.0.1:%d/hello", port)

	// The log: Node-RED's start-up lines arrive; closing the stream stops the agent's streaming.
	_, mark := events.since(0)
	logs := c.Stream("/api/v1/devices/"+deviceID+"/logs/stream", "")
	logs.Until(90*time.Second, "Node-RED's 'Started flows' line", func(ev apitest.Event) bool {
		return ev.Name == "log" && strings.Contains(ev.Data, "Started flows")
	})
	mark = events.waitFor(t, mark, "streaming the log to the platform")
	logs.Close()
	events.waitFor(t, mark, "no longer streaming the log")

	// Restart: Node-RED stops and starts again, and the device's state goes through restarting to running.
	_, mark = events.since(0)
	r := c.Do("POST", "/api/v1/devices/"+deviceID+"/actions/restart", nil)
	require.Equal(t, 202, r.Status, string(r.Raw))
	mark = events.waitFor(t, mark, "state restarting")
	events.waitFor(t, mark, "state running")
	waitDevice(t, c, deviceID, snap, time.Minute)
	waitServing(t, hello, "hello from the device")

	// Suspend: Node-RED stops, the state says suspended.
	r = c.Do("POST", "/api/v1/devices/"+deviceID+"/actions/suspend", nil)
	require.Equal(t, 202, r.Status, string(r.Raw))
	waitFor(t, 30*time.Second, "the device to report suspended", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("state") == "suspended"
	})
	_, err := http.Get(hello)
	assert.Error(t, err, "Node-RED is stopped")

	r = c.Do("POST", "/api/v1/devices/"+deviceID+"/actions/start", nil)
	require.Equal(t, 202, r.Status, string(r.Raw))
	waitDevice(t, c, deviceID, snap, time.Minute)
	waitServing(t, hello, "hello from the device")
}

// waitServing waits until url answers 200 with want: a device reports running once Node-RED says its flows have
// started, and under load its http-in routes may come a moment later.
func waitServing(t *testing.T, url, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, url+" to answer "+want, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == want
	})
}
