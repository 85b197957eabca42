package platform_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
)

// TestDeviceEditorEndToEnd: flowyard dev, flowyard-agent running a real Node-RED, the device in developer mode,
// and its editor opened from the platform through the agent's tunnel: the editor's page and flows, a deploy, and
// the comms websocket carrying the deployed flow's debug message; a viewer reads but cannot deploy, and a user of
// no team of the device gets no link.
func TestDeviceEditorEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	instID, _ := createInstance(t, c, "device-editor-e2e")
	inst := c.Must(200, "GET", "/api/v1/instances/"+instID, nil)
	team, app := inst.String("teamId"), inst.String("applicationId")
	snap := c.Must(201, "POST", "/api/v1/instances/"+instID+"/snapshots/import", map[string]any{
		"snapshot": map[string]any{"name": "hello", "flows": helloFlows("hello from the device"), "nodeRedVersion": "4.1.15"},
	}).String("id")
	for _, u := range []string{"viewer", "outsider"} {
		c.Must(201, "POST", "/api/v1/users", map[string]any{"email": u + "@example.com", "name": "A " + u, "password": u + "-password-1"})
	}
	c.Must(201, "POST", "/api/v1/teams/"+team+"/members", map[string]any{"email": "viewer@example.com", "role": "viewer"})

	tok := c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "e2e", "applicationId": app}).String("token")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("provisioningName: e2e\nprovisioningTeam: %s\nprovisioningToken: %s\nforgeURL: %s\ndeviceName: editor-1\n", team, tok, dev.URL)), 0o600))
	port := freePort(t)
	runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})
	var deviceID string
	waitFor(t, 30*time.Second, "the agent to provision itself", func() bool {
		items := c.Must(200, "GET", "/api/v1/teams/"+team+"/devices", nil).Body["items"].([]any)
		if len(items) == 1 {
			deviceID = items[0].(map[string]any)["id"].(string)
		}
		return deviceID != ""
	})
	waitFor(t, 30*time.Second, "the device to be online", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("status") == "online"
	})
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"targetSnapshotId": snap})
	waitDevice(t, c, deviceID, snap, 4*time.Minute)
	link := "/api/v1/devices/" + deviceID + "/editor-link"
	assert.Equal(t, 409, c.Do("POST", link, nil).Status, "autonomous: no editor")
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "developer"})

	// The admin edits: the page, the flows, and a deploy whose debug message comes over the comms websocket.
	editor := c.OpenDeviceEditor(deviceID)
	page := editor.Do("GET", "/", nil)
	require.Equal(t, 200, page.Status)
	assert.Contains(t, string(page.Raw), "Node-RED")
	assert.Contains(t, string(editor.Must(200, "GET", "/flows", nil).Raw), "hello from the device")
	comms := dialDeviceComms(t, editor, dev.URL)
	require.NoError(t, comms.WriteJSON(map[string]string{"subscribe": "debug"}))
	flows := append(helloFlows("hello from the editor"),
		map[string]any{"id": "inj1", "type": "inject", "z": "tab1", "once": true, "onceDelay": "0.3", "repeat": "", "topic": "",
			"payload": "deployed through the tunnel", "payloadType": "str", "props": []any{map[string]any{"p": "payload"}}, "wires": []any{[]any{"dbg1"}}},
		map[string]any{"id": "dbg1", "type": "debug", "z": "tab1", "active": true, "tosidebar": true, "console": false, "complete": "payload", "wires": []any{}})
	deploy := editor.Do("POST", "/flows", flows)
	require.Contains(t, []int{200, 204}, deploy.Status, "deploy: %s", deploy.Raw)
	waitForDebug(t, comms, "deployed through the tunnel")
	assert.Equal(t, "hello from the editor", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)), "the device runs what was deployed")

	// A viewer reads the flows and may not deploy; a user of no team of the device gets no link.
	viewer := (&apitest.Env{URL: dev.URL}).Client(t)
	viewer.Login("viewer@example.com", "viewer-password-1")
	readOnly := viewer.OpenDeviceEditor(deviceID)
	assert.Contains(t, string(readOnly.Must(200, "GET", "/flows", nil).Raw), "hello from the editor")
	refused := readOnly.Do("POST", "/flows", helloFlows("a viewer's change"))
	assert.Equal(t, 403, refused.Status)
	assert.Equal(t, "editor_read_only", refused.String("code"))
	assert.Equal(t, "hello from the editor", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))
	outsider := (&apitest.Env{URL: dev.URL}).Client(t)
	outsider.Login("outsider@example.com", "outsider-password-1")
	assert.Equal(t, 404, outsider.Do("POST", link, nil).Status)

	// Leaving developer mode closes the editor.
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "autonomous"})
	assert.Equal(t, 401, editor.Do("GET", "/flows", nil).Status)
}

// dialDeviceComms opens the editor's comms websocket on its origin with the editor's session cookie.
func dialDeviceComms(t *testing.T, editor *apitest.Client, apiURL string) *websocket.Conn {
	t.Helper()
	origin, err := url.Parse(editor.Base())
	require.NoError(t, err)
	api, err := url.Parse(apiURL)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("Origin", editor.Base())
	for _, ck := range editor.Jar().Cookies(origin) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	dialer := websocket.Dialer{NetDialContext: apitest.DialTo(api.Host), HandshakeTimeout: 10 * time.Second}
	ws, res, err := dialer.Dial("ws://"+origin.Host+"/comms", h)
	require.NoError(t, err, "%v", res)
	t.Cleanup(func() { ws.Close() })
	return ws
}

// waitForDebug reads comms messages until a debug message carries want.
func waitForDebug(t *testing.T, ws *websocket.Conn, want string) {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(60*time.Second)))
	for {
		_, raw, err := ws.ReadMessage()
		require.NoError(t, err, "waiting for the debug message %q", want)
		var frames []struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(raw, &frames) != nil {
			continue
		}
		for _, f := range frames {
			if f.Topic == "debug" && strings.Contains(string(f.Data), want) {
				return
			}
		}
	}
}
