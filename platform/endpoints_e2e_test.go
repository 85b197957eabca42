package platform_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// dashboardVersion is the FlowFuse Dashboard 2 the test installs from npm.
const dashboardVersion = "1.31.0"

// dashboardFlows are an http-in endpoint (GET /hook answers "hook ok") and a Dashboard 2 page (/dashboard/home)
// showing one text widget.
func dashboardFlows() []any {
	return []any{
		map[string]any{"id": "tabd", "type": "tab", "label": "Address"},
		map[string]any{"id": "inh", "type": "http in", "z": "tabd", "url": "/hook", "method": "get", "wires": []any{[]any{"fnh"}}},
		map[string]any{"id": "fnh", "type": "function", "z": "tabd", "outputs": 1, "wires": []any{[]any{"outh"}}, "func": `msg.payload = "hook ok"; return msg;`},
		map[string]any{"id": "outh", "type": "http response", "z": "tabd"},
		map[string]any{"id": "base1", "type": "ui-base", "name": "UI", "path": "/dashboard", "includeClientData": true,
			"acceptsClientConfig": []any{"ui-notification", "ui-control"}, "showPathInSidebar": false, "navigationStyle": "default", "titleBarStyle": "default"},
		map[string]any{"id": "theme1", "type": "ui-theme", "name": "Default",
			"colors": map[string]any{"surface": "#ffffff", "primary": "#0094CE", "bgPage": "#eeeeee", "groupBg": "#ffffff", "groupOutline": "#cccccc"},
			"sizes":  map[string]any{"pagePadding": "12px", "groupGap": "12px", "groupBorderRadius": "4px", "widgetGap": "12px"}},
		map[string]any{"id": "page1", "type": "ui-page", "name": "Home", "ui": "base1", "path": "/home", "icon": "home", "layout": "grid",
			"theme": "theme1", "order": 1, "className": "", "visible": "true", "disabled": "false"},
		map[string]any{"id": "group1", "type": "ui-group", "name": "Greeting", "page": "page1", "width": "6", "height": "1", "order": 1,
			"showTitle": true, "className": "", "visible": "true", "disabled": "false"},
		map[string]any{"id": "text1", "type": "ui-text", "z": "tabd", "group": "group1", "order": 1, "width": 0, "height": 0, "name": "",
			"label": "Greeting", "format": "{{msg.payload}}", "layout": "row-spread", "style": false, "className": "", "wires": []any{}},
		map[string]any{"id": "inj1", "type": "inject", "z": "tabd", "once": true, "onceDelay": "0.5", "repeat": "", "topic": "",
			"payload": "hello from the dashboard", "payloadType": "str", "props": []any{map[string]any{"p": "payload"}}, "wires": []any{[]any{"text1"}}},
	}
}

// get GETs a URL with a client of an instance's address and returns the status and body.
func get(t *testing.T, client *http.Client, rawURL string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// dialDashboardSocket opens Dashboard 2's socket.io websocket on an address and returns the first frame (the
// engine.io open packet, "0{…}").
func dialDashboardSocket(t *testing.T, address string, header http.Header) (string, *http.Response, error) {
	t.Helper()
	u, err := url.Parse(address)
	require.NoError(t, err)
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: apitest.LocalhostTransport().DialContext}
	conn, res, err := dialer.Dial("ws://"+u.Host+"/dashboard/socket.io/?EIO=4&transport=websocket", header)
	if err != nil {
		return "", res, err
	}
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, msg, err := conn.ReadMessage()
	return string(msg), res, err
}

// TestInstanceAddressAndDashboardEndToEnd runs `flowyard dev` with an instance made from a blueprint that
// brings FlowFuse Dashboard 2 from npm: its http-in endpoint and its dashboard (the page, its setup and the
// socket.io websocket) answer at the root of <name>.apps.localhost on the platform's own port, the editor and
// admin API do not; with the protection on, the address asks for a sign-in, which the platform's session opens
// for a team member (the dashboard role included) and not for another team's user, and an endpoint token opens
// it for a script.
func TestInstanceAddressAndDashboardEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	f, team, id := dashboardInstance(t, c)

	address := c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("url")
	port := strings.TrimPrefix(dev.URL, "http://127.0.0.1:")
	require.Equal(t, "http://plant.apps.localhost:"+port+"/", address, "the instance URL is its own address on the platform's port")
	assert.Equal(t, "hook ok", f.call(id, "hook"), "the flow's endpoint at the root of the address")

	open := &http.Client{Timeout: 30 * time.Second, Transport: apitest.LocalhostTransport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status, body := get(t, open, address+"dashboard/home", nil)
	require.Equal(t, 200, status, body)
	assert.Contains(t, strings.ToLower(body), "<!doctype html>", "Dashboard 2's page")
	status, body = get(t, open, address+"dashboard/_setup", nil)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "socketio", "Dashboard 2 tells its page where its socket is")
	frame, _, err := dialDashboardSocket(t, address, nil)
	require.NoError(t, err, "socket.io's websocket through the address")
	assert.True(t, strings.HasPrefix(frame, "0{") && strings.Contains(frame, `"sid"`), "engine.io open packet: %s", frame)
	for _, path := range []string{"admin/", "admin/flows", "admin/settings"} {
		status, body := get(t, open, address+path, nil)
		assert.Equal(t, 404, status, "%s: %s", path, body)
	}

	// Protection on: a dashboard member of the team signs in through the platform; another team's user cannot.
	c.Must(201, "POST", "/api/v1/users", map[string]any{"email": "viewer@example.com", "name": "Viewer", "password": "viewer-password-1"})
	c.Must(201, "POST", "/api/v1/users", map[string]any{"email": "other@example.com", "name": "Other", "password": "other-password-1"})
	c.Must(201, "POST", "/api/v1/teams/"+team+"/members", map[string]any{"email": "viewer@example.com", "role": "dashboard"})
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/endpoints", map[string]any{"protected": true})
	status, _ = get(t, open, address+"hook", nil)
	assert.Equal(t, 401, status)
	status, _ = get(t, open, address+"dashboard/home", http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}})
	assert.Equal(t, 303, status, "a browser is sent to the platform's sign-in")
	_, res, err := dialDashboardSocket(t, address, nil)
	require.Error(t, err)
	assert.Equal(t, 401, res.StatusCode, "no socket without a sign-in")

	viewer := (&apitest.Env{URL: dev.URL}).Client(t)
	viewer.Login("viewer@example.com", "viewer-password-1")
	dashboards := viewer.Must(200, "GET", "/api/v1/teams/"+team+"/dashboards", nil).Body["items"].([]any)
	require.Len(t, dashboards, 1)
	assert.Equal(t, address+"dashboard", dashboards[0].(map[string]any)["url"])
	signedIn := viewer.SignInToEndpoints(id, "/dashboard/home")
	status, body = get(t, signedIn, address+"dashboard/home", nil)
	assert.Equal(t, 200, status, body)
	u, _ := url.Parse(address)
	var cookie string
	for _, ck := range signedIn.Jar.Cookies(u) {
		cookie = ck.Name + "=" + ck.Value
	}
	frame, _, err = dialDashboardSocket(t, address, http.Header{"Cookie": {cookie}})
	require.NoError(t, err, "the signed-in dashboard's socket")
	assert.True(t, strings.HasPrefix(frame, "0{"), frame)

	other := (&apitest.Env{URL: dev.URL}).Client(t)
	other.Login("other@example.com", "other-password-1")
	assert.Equal(t, 404, other.Do("POST", "/api/v1/instances/"+id+"/endpoints-link", map[string]any{}).Status)
	assert.Equal(t, 404, other.Do("GET", "/api/v1/teams/"+team+"/dashboards", nil).Status)
	status, _ = get(t, open, address+"hook", http.Header{"Cookie": {strings.Join(cookieHeader(other.Jar(), dev.URL), "; ")}})
	assert.Equal(t, 401, status, "another user's platform session means nothing on the address")

	token := c.Must(201, "POST", "/api/v1/instances/"+id+"/endpoint-tokens", map[string]any{"name": "script"}).String("token")
	status, body = get(t, open, address+"hook", http.Header{"Authorization": {"Bearer " + token}})
	assert.Equal(t, 200, status, body)
	assert.Equal(t, "hook ok", body)

	c.Must(200, "PUT", "/api/v1/instances/"+id+"/endpoints", map[string]any{"protected": false})
	status, _ = get(t, open, address+"hook", nil)
	assert.Equal(t, 200, status, "open again")
}

// dashboardInstance creates, as c (a platform admin), a team with an instance "plant" made from a blueprint of
// dashboardFlows and Dashboard 2, running.
func dashboardInstance(t *testing.T, c *apitest.Client) (*snapshotFixture, string, string) {
	t.Helper()
	bp := c.Must(201, "POST", "/api/v1/blueprints", map[string]any{"name": "Dashboard", "flows": dashboardFlows(),
		"modules": map[string]string{"@flowfuse/node-red-dashboard": dashboardVersion}}).String("id")
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Dashboards"}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	f := &snapshotFixture{t: t, c: c, app: app}
	return f, team, f.create("plant", map[string]any{"blueprintId": bp})
}

// TestDashboardThroughAddressInBrowser opens a protected instance's Dashboard 2 page in chromium through the
// instance's own address, signing in through the platform as a member of the dashboard role
// (web/e2e/endpoints.test.mjs).
func TestDashboardThroughAddressInBrowser(t *testing.T) {
	repo, chromium, node := browserTestTools(t)
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	f, team, id := dashboardInstance(t, c)
	assert.Equal(t, "hook ok", f.call(id, "hook"))
	c.Must(201, "POST", "/api/v1/users", map[string]any{"email": "screen@example.com", "name": "Screen", "password": "screen-password-1"})
	c.Must(201, "POST", "/api/v1/teams/"+team+"/members", map[string]any{"email": "screen@example.com", "role": "dashboard"})
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/endpoints", map[string]any{"protected": true})
	address := c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("url")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "web/e2e/endpoints.test.mjs")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "FLOWYARD_URL="+dev.URL, "FLOWYARD_CHROMIUM="+chromium,
		"FLOWYARD_ENDPOINTS_DASHBOARD="+address+"dashboard/home",
		"FLOWYARD_ENDPOINTS_EMAIL=screen@example.com", "FLOWYARD_ENDPOINTS_PASSWORD=screen-password-1")
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("the browser test failed (%v); its report is above", err)
	}
}

func cookieHeader(jar http.CookieJar, base string) []string {
	u, _ := url.Parse(base + "/")
	var out []string
	for _, ck := range jar.Cookies(u) {
		out = append(out, ck.Name+"="+ck.Value)
	}
	return out
}
