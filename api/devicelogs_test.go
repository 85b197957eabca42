package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/mqttdevice"
)

// TestFlowFuseAgentLiveLog: a FlowFuse agent is asked for its log (`startLog`) when the first person watches
// the device's log stream and no more (`stopLog`) when the last leaves; its buffered entries and the entries
// after them reach every watcher in order, a later watcher gets the recent ones first.
func TestFlowFuseAgentLiveLog(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect, fastLive)
		d := w.register(t, "Line 3")
		w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
		a := connectFFAgent(t, broker, d)
		logs := "/api/v1/devices/" + d.id + "/logs/stream"
		assert.Equal(t, 404, w.as["outsider"].Do("GET", logs, nil).Status)

		first := w.as["viewer"].Stream(logs, "")
		a.Next(t, "startLog")
		a.Publish(t, "logs", json.RawMessage(fixture(t, "logs-buffer.json", nil)))
		a.Publish(t, "logs", json.RawMessage(fixture(t, "logs-entry.json", nil)))
		want := []string{"Welcome to Node-RED", "Node-RED version: v4.1.15", "Encrypted credentials not found", "Started flows",
			"connect ECONNREFUSED 127.0.0.1:1883", `{"topic":"line3/temp","payload":21.5}`}
		lines := readLogLines(t, first, len(want))
		assert.Equal(t, want, msgsOf(lines))
		assert.Equal(t, "error", lines[4].Level)
		assert.Equal(t, time.UnixMilli(1765306200123).UTC(), lines[0].TS.UTC(), "the device's own time, from its 17-digit ts")

		second := w.as["member"].Stream(logs, "")
		assert.Equal(t, want, msgsOf(readLogLines(t, second, len(want))), "the recent lines first")
		first.Close()
		a.Publish(t, "logs", json.RawMessage([]byte(`{"level":"info","msg":"still watched","ts":"17653062201110000"}`)))
		assert.Equal(t, []string{"still watched"}, msgsOf(readLogLines(t, second, 1)))
		second.Close()
		seen := commandsUntil(t, a, "stopLog")
		assert.NotContains(t, seen, "startLog", "one startLog while anyone watches")

		third := w.as["viewer"].Stream(logs, "")
		defer third.Close()
		a.Next(t, "startLog")
	})
}

type logLine struct {
	TS    time.Time `json:"ts"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

func readLogLines(t *testing.T, s *apitest.Stream, n int) []logLine {
	t.Helper()
	var out []logLine
	for len(out) < n {
		ev, ok := s.Next(eventWait)
		require.True(t, ok, "got %d lines of %d", len(out), n)
		if ev.Name != "log" {
			continue
		}
		var l logLine
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &l))
		out = append(out, l)
	}
	return out
}

func msgsOf(lines []logLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

// commandsUntil collects the names of the commands the agent gets until one named last.
func commandsUntil(t *testing.T, a *mqttdevice.Device, last string) []string {
	t.Helper()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case cmd := <-a.Commands:
			name, _ := cmd["command"].(string)
			if name == last {
				return seen
			}
			seen = append(seen, name)
		case <-timeout:
			t.Fatalf("no %q command within 10 s (got %v)", last, seen)
		}
	}
}

// TestFlowFuseAgentActions: members restart, stop and suspend a device's Node-RED with the `action` command
// (stop is sent as suspend, the protocol's only way to stop it), the agent's reply decides the answer, its next
// status shows the outcome, and each asked action is audited; viewers may not, an offline device is not asked.
func TestFlowFuseAgentActions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		d := w.register(t, "Line 3")
		app := w.appIDs[0]
		w.assign(t, d, map[string]any{"applicationId": app})
		w.assign(t, d, map[string]any{"targetSnapshotId": w.snapID})
		hash := d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil).String("hash")
		values := map[string]string{"teamId": w.teamID, "deviceId": d.id, "applicationId": app, "snapshotId": w.snapID, "settingsHash": hash}
		path := "/api/v1/devices/" + d.id + "/actions/"
		assert.Equal(t, 409, w.as["member"].Do("POST", path+"restart", nil).Status, "not connected: not asked")

		a := connectFFAgent(t, broker, d)
		a.Publish(t, "status", json.RawMessage(fixture(t, "status.json", values)))
		waitState(t, w, d.id, "running")
		assert.Equal(t, 403, w.as["viewer"].Do("POST", path+"restart", nil).Status)
		assert.Equal(t, 404, w.as["outsider"].Do("POST", path+"restart", nil).Status)
		bad := w.as["member"].Do("POST", path+"reboot", nil)
		assert.Equal(t, 400, bad.Status, string(bad.Raw))

		ask := func(action, wantSent, reply string) *apitest.Response {
			answer := make(chan *apitest.Response, 1)
			go func() { answer <- w.as["member"].Do("POST", path+action, nil) }()
			req := a.Next(t, "action")
			assert.Equal(t, wantSent, req["payload"].(map[string]any)["action"])
			v := map[string]string{"correlationData": req["correlationData"].(string)}
			for k, val := range values {
				v[k] = val
			}
			a.Client.Publish(req["responseTopic"].(string), 0, false, fixture(t, reply, v))
			return <-answer
		}
		r := ask("restart", "restart", "action-reply.json")
		assert.Equal(t, 202, r.Status, string(r.Raw))
		r = ask("stop", "suspend", "action-reply.json")
		assert.Equal(t, 202, r.Status, string(r.Raw))
		a.Publish(t, "status", json.RawMessage(fixture(t, "status-suspended.json", values)))
		waitState(t, w, d.id, "suspended")
		r = ask("start", "start", "action-reply-failed.json")
		assert.Equal(t, 409, r.Status, string(r.Raw))
		assert.Equal(t, "device_action_failed", r.String("code"))
		assert.Contains(t, r.String("message"), "No snapshot to start")

		log := w.as["owner"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log", nil)
		var actions []string
		for _, e := range log.Body["items"].([]any) {
			e := e.(map[string]any)
			if e["event"] == "device.action" {
				body, _ := e["body"].(map[string]any)
				actions = append(actions, body["action"].(string))
			}
		}
		assert.ElementsMatch(t, []string{"restart", "stop", "start"}, actions)
	})
}
