package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/agent"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// TestDeviceEditorEndToEnd: flowyard dev, flowyard-agent running a real Node-RED behind its local editor login, the
// device in developer mode, and its editor opened from the platform through the agent's tunnel: the editor's page and flows, a deploy, and
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

	deviceID, port := runEditorDevice(t, c, team, app, snap, dev.URL, "")
	link := "/api/v1/devices/" + deviceID + "/editor-link"
	assert.Equal(t, 409, c.Do("POST", link, nil).Status, "autonomous: no editor")
	// The device's local editor login on (its fleet settings; Node-RED restarts with it): its admin API asks for the
	// login, and the remote editor gets past it with the token the agent holds.
	local := fmt.Sprintf("http://127.0.0.1:%d/device-editor/flows", port)
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"settings": map[string]any{
		"localAuth": map[string]any{"enabled": true, "user": "operator", "password": "a local password"}}})
	waitFor(t, 2*time.Minute, "Node-RED to ask for the local login", func() bool {
		resp, err := http.Get(local)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 401
	})
	waitFor(t, 2*time.Minute, "the device to run again", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+deviceID, nil).String("state") == "running"
	})
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "developer"})

	// The admin edits: the page, the flows, and a deploy whose debug message comes over the comms websocket.
	editor := c.OpenDeviceEditor(deviceID)
	page := editor.Do("GET", "/", nil)
	require.Equal(t, 200, page.Status)
	assert.Contains(t, string(page.Raw), "Node-RED")
	assert.Contains(t, string(editor.Must(200, "GET", "/flows", nil).Raw), "hello from the device")
	comms := dialDeviceComms(t, editor, dev.URL)
	require.NoError(t, comms.WriteJSON(map[string]string{"subscribe": "debug"}))
	deploy := editor.Do("POST", "/flows", debugHelloFlows("hello from the editor", "deployed through the tunnel"))
	require.Contains(t, []int{200, 204}, deploy.Status, "deploy: %s", deploy.Raw)
	apitest.WaitForComms(t, comms, "debug", "deployed through the tunnel")
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

// runEditorDevice registers a device through c in the application, targets the snapshot and runs flowyard-agent for
// it until it runs it, with its HTTP calls (and so its editor tunnel) to forgeURL and its broker connection to
// brokerURL ("": the one registration named). It returns the device and the port of its Node-RED.
func runEditorDevice(t *testing.T, c *apitest.Client, team, app, snap, forgeURL, brokerURL string) (string, int) {
	t.Helper()
	reg := c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "editor-device", "type": "test", "team": team})
	deviceID := reg.String("id")
	c.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"applicationId": app, "targetSnapshotId": snap})
	creds := reg.Body["credentials"].(map[string]any)
	broker := creds["broker"].(map[string]any)
	if brokerURL == "" {
		brokerURL = broker["url"].(string)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, agent.SaveConfig(cfgPath, &agent.DeviceConfig{DeviceID: deviceID, Token: creds["token"].(string),
		CredentialSecret: creds["credentialSecret"].(string), ForgeURL: forgeURL, BrokerURL: brokerURL,
		BrokerUsername: broker["username"].(string), BrokerPassword: broker["password"].(string)}))
	port := freePort(t)
	runAgent(t, agent.Options{ConfigPath: cfgPath, Dir: dir, Port: port, Interval: 5 * time.Second})
	waitDevice(t, c, deviceID, snap, 4*time.Minute)
	return deviceID, port
}

// TestDeviceEditorAcrossReplicas runs the production layout (two `serve` replicas, a worker, Postgres) with
// flowyard-agent and a real Node-RED whose broker connection is on replica A and whose HTTP calls, and so its editor
// tunnel, go to replica B: the editor asked through B (startEditor relayed to A), then opened through A, which
// forwards it to B (its --internal-url, recorded with the device), HTTP and websocket alike.
func TestDeviceEditorAcrossReplicas(t *testing.T) {
	tp := startTopology(t, 2)
	a, b := tp.serves[0].client(t), tp.serves[1].client(t)
	team := a.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Plant"}).String("id")
	app := a.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "line"}).String("id")
	st := tp.store()
	sealer, err := domain.NewSealer(tp.secret)
	require.NoError(t, err)
	flows, err := json.Marshal(helloFlows("hello from the device"))
	require.NoError(t, err)
	snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: app, TeamID: team, Name: "hello", NodeRedVersion: "4.1.15",
		Flows: string(flows), Credentials: "{}", CredentialSecret: sealer.Seal("a-snapshot-credential-secret")}
	_, err = st.InsertSnapshot(context.Background(), snap)
	require.NoError(t, err)
	deviceID, port := runEditorDevice(t, a, team, app, snap.ID, tp.serves[1].url, "mqtt://"+tp.serves[0].mqtt)
	a.Must(200, "PATCH", "/api/v1/devices/"+deviceID, map[string]any{"mode": "developer"})

	// Asked on B: startEditor goes through the relay to A, which holds the device's broker connection; the
	// agent's tunnel reaches B.
	viaB := b.OpenDeviceEditor(deviceID)
	d, err := st.GetDevice(context.Background(), deviceID)
	require.NoError(t, err)
	assert.Equal(t, tp.serves[1].url, d.EditorTunnelAddr, "the tunnel is recorded with the replica holding it")
	token := d.EditorTokenHash
	assert.Contains(t, string(viaB.Must(200, "GET", "/flows", nil).Raw), "hello from the device")

	// The browser on A: A finds B holding the tunnel (no new startEditor) and forwards the editor's traffic there.
	viaA := a.OpenDeviceEditor(deviceID)
	d, err = st.GetDevice(context.Background(), deviceID)
	require.NoError(t, err)
	assert.Equal(t, token, d.EditorTokenHash, "the open tunnel was used")
	assert.Contains(t, string(viaA.Must(200, "GET", "/flows", nil).Raw), "hello from the device", "A forwards to B")
	comms := dialDeviceComms(t, viaA, tp.serves[0].url)
	require.NoError(t, comms.WriteJSON(map[string]string{"subscribe": "debug"}))
	r := viaA.Do("POST", "/flows", debugHelloFlows("hello across replicas", "through two replicas"))
	require.Contains(t, []int{200, 204}, r.Status, "deploy: %s", r.Raw)
	apitest.WaitForComms(t, comms, "debug", "through two replicas")
	assert.Equal(t, "hello across replicas", httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hello", port)))

	assert.Contains(t, string(viaB.Must(200, "GET", "/flows", nil).Raw), "hello across replicas")
}

// debugHelloFlows are helloFlows with the greeting, and an inject node that sends marker to the debug sidebar
// right after the deploy.
func debugHelloFlows(greeting, marker string) []map[string]any {
	return append(helloFlows(greeting),
		map[string]any{"id": "inj1", "type": "inject", "z": "tab1", "once": true, "onceDelay": "0.3", "repeat": "", "topic": "",
			"payload": marker, "payloadType": "str", "props": []any{map[string]any{"p": "payload"}}, "wires": []any{[]any{"dbg1"}}},
		map[string]any{"id": "dbg1", "type": "debug", "z": "tab1", "active": true, "tosidebar": true, "console": false, "complete": "payload", "wires": []any{}})
}
