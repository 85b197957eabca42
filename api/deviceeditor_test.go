package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/mqttdevice"
)

// ffTunnel is the tunnel side of a FlowFuse device agent 4.x (docs/device-protocol.md §3.6), answering with the
// fixtures' messages: a small editor whose "/" is a page, "/flows" the flows, POST "/flows" a deploy, and whose
// "/comms" websocket sends a debug message once open and keeps what the browser sends.
type ffTunnel struct {
	t      *testing.T
	ws     *websocket.Conn
	closed chan int // the close code the platform ended the tunnel with

	mu       sync.Mutex
	requests []map[string]any // the platform's HTTP request frames
	deployed []string         // bodies of POST /flows
	fromWS   []string         // what the browser sent on /comms
	wmu      sync.Mutex
}

// dialFFTunnel opens the agent's tunnel as the FlowFuse agent does: the token in the path and in x-access-token.
func dialFFTunnel(t *testing.T, apiURL, deviceID, token string) (*ffTunnel, *http.Response, error) {
	h := http.Header{}
	h.Set("x-access-token", token)
	h.Set("User-Agent", "FlowFuse Device Agent v4.2.1")
	ws, res, err := websocket.DefaultDialer.Dial(wsURL(apiURL)+"/api/v1/devices/"+deviceID+"/editor/comms/"+token, h)
	if err != nil {
		return nil, res, err
	}
	ft := &ffTunnel{t: t, ws: ws, closed: make(chan int, 1)}
	t.Cleanup(func() { ws.Close() })
	return ft, res, nil
}

// closeCode reads until the platform closes the tunnel and returns its code.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(10*time.Second)))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		return ce.Code
	}
}

func (f *ffTunnel) send(raw []byte) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.ws.WriteMessage(websocket.TextMessage, raw)
}

func byteList(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = strconv.Itoa(int(c))
	}
	return strings.Join(parts, ",")
}

func (f *ffTunnel) answer(id any, status int, contentType string, body []byte) {
	f.send(fixture(f.t, "editor-http-response.json", map[string]string{"id": jsonNumber(id), "status": strconv.Itoa(status),
		"contentType": contentType, "length": strconv.Itoa(len(body)), "bytes": byteList(body)}))
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// serve answers the platform's frames until the tunnel ends.
func (f *ffTunnel) serve() {
	go func() {
		for {
			_, raw, err := f.ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				code := 0
				if asClose(err, &ce) {
					code = ce.Code
				}
				f.closed <- code
				return
			}
			var req map[string]any
			if json.Unmarshal(raw, &req) != nil {
				continue
			}
			id := req["id"]
			switch {
			case req["ws"] == true && req["url"] != nil:
				text, _ := json.Marshal(`[{"topic":"debug","data":{"msg":"hello from the device"}}]`)
				f.send(fixture(f.t, "editor-ws-message.json", map[string]string{"id": jsonNumber(id), "text": strings.Trim(string(text), `"`)}))
			case req["ws"] == true && req["closed"] == true:
			case req["ws"] == true:
				f.mu.Lock()
				f.fromWS = append(f.fromWS, req["body"].(string))
				f.mu.Unlock()
				f.send(fixture(f.t, "editor-ws-closed.json", map[string]string{"id": jsonNumber(id)}))
			default:
				f.mu.Lock()
				f.requests = append(f.requests, req)
				f.mu.Unlock()
				switch req["method"].(string) + " " + req["url"].(string) {
				case "GET /":
					f.answer(id, 200, "text/html; charset=utf-8", []byte("<html><title>Node-RED</title></html>"))
				case "GET /flows":
					f.answer(id, 200, "application/json; charset=utf-8", []byte(`{"flows":[{"id":"t1","type":"tab","label":"On the device"}],"rev":"r1"}`))
				case "POST /flows":
					body, _ := req["body"].(string)
					f.mu.Lock()
					f.deployed = append(f.deployed, body)
					f.mu.Unlock()
					f.answer(id, 200, "application/json; charset=utf-8", []byte(`{"rev":"r2"}`))
				case "POST /echo":
					// Answers the request's body, read as flowyard-agent reads it: a string, or a Node.js Buffer's JSON
					// form (FlowFuse's agent hands the body to got, which takes a string only).
					f.answer(id, 200, "application/octet-stream", frameBytes(req["body"]))
				case "GET /split":
					// A device that tries to split the answer it is put into, or to plant a cookie on the origin.
					f.send([]byte(`{"id":` + jsonNumber(id) + `,"status":200,"headers":{"x-split":"a\r\nset-cookie: planted=1",` +
						`"bad name":"v","x-fine":"ok","set-cookie":"planted=2"},"body":"plain text"}`))
				case "GET /switch":
					f.send([]byte(`{"id":` + jsonNumber(id) + `,"status":101,"headers":{"upgrade":"websocket"}}`))
				default:
					f.send([]byte(`{"id":` + jsonNumber(id) + `,"status":404}`))
				}
			}
		}
	}()
}

// frameBytes is a frame body's bytes: a string's, or those of a Node.js Buffer's JSON form.
func frameBytes(body any) []byte {
	switch b := body.(type) {
	case string:
		return []byte(b)
	case map[string]any:
		data, _ := b["data"].([]any)
		out := make([]byte, len(data))
		for i, v := range data {
			n, _ := v.(float64)
			out[i] = byte(n)
		}
		return out
	}
	return nil
}

func asClose(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	if ok {
		*ce = c
	}
	return ok
}

// startFFEditor answers the startEditor the platform sends while link runs: the tunnel opens on tunnelURL (an API
// replica) and the reply fixture is published.
func startFFEditor(t *testing.T, a *mqttdevice.Device, w *deviceWorld, deviceID, tunnelURL string, link func() *apitest.Response) (*ffTunnel, string, *apitest.Response) {
	t.Helper()
	answer := make(chan *apitest.Response, 1)
	go func() { answer <- link() }()
	req := a.Next(t, "startEditor")
	token := req["payload"].(map[string]any)["token"].(string)
	require.True(t, strings.HasPrefix(token, "ffde_"+deviceID+"_"), "the agent's Node-RED takes the device id from the token's second field: %s", token)
	ft, res, err := dialFFTunnel(t, tunnelURL, deviceID, token)
	require.NoError(t, err, "%v", res)
	ft.serve()
	a.Client.Publish(req["responseTopic"].(string), 0, false, fixture(t, "editor-start-reply.json", map[string]string{
		"teamId": w.teamID, "deviceId": deviceID, "correlationData": req["correlationData"].(string), "token": token}))
	return ft, token, <-answer
}

// TestDeviceEditorTunnel opens a device's remote editor through a FlowFuse agent's tunnel: the commands and
// frames it speaks, the editor's HTTP and websocket through it, members editing, viewers reading, other teams and
// other tokens refused, across two API replicas, and the end of it when the device leaves developer mode.
func TestDeviceEditorTunnel(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		d := w.register(t, "Line 3")
		w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
		a := connectFFAgent(t, broker, d)
		link := "/api/v1/devices/" + d.id + "/editor-link"

		r := w.as["member"].Do("POST", link, nil)
		assert.Equal(t, 409, r.Status, "autonomous devices have no editor: %s", r.Raw)
		assert.Equal(t, "device_not_in_developer_mode", r.String("code"))
		w.assign(t, d, map[string]any{"mode": "developer"})
		assert.Equal(t, 404, w.as["outsider"].Do("POST", link, nil).Status, "another team's member does not see the device")

		// No editor yet: the tunnel is refused with 4004, after which the agent stops trying.
		early, res, err := dialFFTunnel(t, w.env.URL, d.id, "ffde_"+d.id+"_nothing")
		require.NoError(t, err, "%v", res)
		assert.Equal(t, 4004, closeCode(t, early.ws))

		// The agent's Node-RED is not running: the link says so.
		go func() {
			req := a.Next(t, "startEditor")
			a.Client.Publish(req["responseTopic"].(string), 0, false, fixture(t, "editor-start-reply-not-running.json", map[string]string{
				"teamId": w.teamID, "deviceId": d.id, "correlationData": req["correlationData"].(string), "token": req["payload"].(map[string]any)["token"].(string)}))
		}()
		r = w.as["member"].Do("POST", link, nil)
		assert.Equal(t, 409, r.Status, string(r.Raw))
		assert.Equal(t, "device_editor_failed", r.String("code"))

		ft, token, r := startFFEditor(t, a, w, d.id, w.env.URL, func() *apitest.Response { return w.as["member"].Do("POST", link, nil) })
		require.Equal(t, 201, r.Status, string(r.Raw))
		assert.Equal(t, "edit", r.String("access"))

		// H9: the device's Node-RED checks the token.
		check := w.env.Client(t)
		check.Header = http.Header{"X-Access-Token": {token}}
		got := check.Must(200, "GET", "/api/v1/devices/"+d.id+"/editor/token", nil)
		assert.Equal(t, "forge", got.String("username"))
		assert.Equal(t, "*", got.String("permissions"))
		check.Header = http.Header{"X-Access-Token": {token + "x"}}
		assert.Equal(t, 401, check.Do("GET", "/api/v1/devices/"+d.id+"/editor/token", nil).Status)

		// Another token for this device is refused with 4001.
		other, res, err := dialFFTunnel(t, w.env.URL, d.id, "ffde_"+d.id+"_AAAAAAAAAAAAAAAAAAAAAA")
		require.NoError(t, err, "%v", res)
		assert.Equal(t, 4001, closeCode(t, other.ws))

		// The member's editor: the page, the flows, a deploy, and the comms websocket, all through the tunnel.
		member := openLink(t, w.env.URL, r.String("url"))
		page := editorGet(t, member, "/")
		assert.Equal(t, 200, page.status)
		assert.Contains(t, page.body, "<title>Node-RED</title>")
		assert.Empty(t, page.header.Values("Set-Cookie"), "Node-RED's cookies stay on the device")
		assert.Empty(t, page.header.Get("Access-Control-Allow-Origin"), "an editor origin answers its own pages only")
		assert.Equal(t, "frame-ancestors 'self'", page.header.Get("Content-Security-Policy"))
		flows := editorGet(t, member, "/flows")
		assert.Contains(t, flows.body, "On the device")
		deploy := editorPost(t, member, "/flows", `{"flows":[{"id":"t2","type":"tab","label":"Edited"}],"rev":"r1"}`)
		assert.Equal(t, 200, deploy.status, deploy.body)
		ft.mu.Lock()
		require.Len(t, ft.deployed, 1)
		assert.JSONEq(t, `{"flows":[{"id":"t2","type":"tab","label":"Edited"}],"rev":"r1"}`, ft.deployed[0])
		first := ft.requests[0]
		ft.mu.Unlock()
		assert.Equal(t, "GET", first["method"])
		assert.Equal(t, "/", first["url"], "relative to the editor's root")
		headers := first["headers"].(map[string]any)
		assert.NotContains(t, headers, "cookie", "the browser's editor cookie stays on the platform")
		assert.NotContains(t, headers, "authorization")

		// A binary body (a palette tarball, in its multipart form) passes through the tunnel unchanged, and so
		// does a text one.
		binary := make([]byte, 0, 512)
		for i := range 512 {
			binary = append(binary, byte(i*7))
		}
		for _, body := range []string{string(binary), "--b\r\ncontent-disposition: form-data; name=\"tarball\"\r\n\r\n\x1f\x8b\x08\x00\xff\xfe--b--\r\n", "plain ünïcode text"} {
			echo := editorPost(t, member, "/echo", body)
			assert.Equal(t, 200, echo.status, echo.body)
			assert.True(t, body == echo.body, "the body came back changed: %d bytes sent, %d back", len(body), len(echo.body))
		}

		split := editorGet(t, member, "/split")
		assert.Equal(t, 200, split.status)
		assert.Equal(t, "plain text", split.body, "a string body is read too")
		assert.Equal(t, "ok", split.header.Get("X-Fine"))
		assert.Empty(t, split.header.Get("X-Split"), "a value with a line break is dropped")
		assert.Empty(t, split.header.Values("Set-Cookie"))
		assert.Equal(t, 502, editorGet(t, member, "/switch").status, "a device does not switch the browser's protocol")
		assert.Equal(t, 404, editorGet(t, member, "/nothing").status)

		comms := dialEditorWS(t, member, "/comms")
		require.NoError(t, comms.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, msg, err := comms.ReadMessage()
		require.NoError(t, err)
		assert.Contains(t, string(msg), "hello from the device")
		require.NoError(t, comms.WriteMessage(websocket.TextMessage, []byte(`{"subscribe":"debug"}`)))
		_, _, err = comms.ReadMessage()
		require.Error(t, err, "the agent closed the stream, and so did the platform")
		ft.mu.Lock()
		assert.Equal(t, []string{`{"subscribe":"debug"}`}, ft.fromWS)
		ft.mu.Unlock()

		// A viewer reads, and may not deploy.
		view := w.as["viewer"].Must(201, "POST", link, nil)
		assert.Equal(t, "view", view.String("access"))
		viewer := openLink(t, w.env.URL, view.String("url"))
		assert.Equal(t, 200, editorGet(t, viewer, "/flows").status)
		refused := editorPost(t, viewer, "/flows", `{"flows":[]}`)
		assert.Equal(t, 403, refused.status)
		assert.Contains(t, refused.body, "editor_read_only")
		ft.mu.Lock()
		assert.Len(t, ft.deployed, 1, "the viewer's deploy never reached the device")
		ft.mu.Unlock()

		// Attacks: the member's link spent on the outsider's browser works once only; the outsider's own
		// session gets nothing on the device's origin; a code for one device does not open another.
		outsiderLink := w.as["member"].Must(201, "POST", link, nil).String("url")
		outsider := openLink(t, w.env.URL, outsiderLink)
		assert.Equal(t, 200, editorGet(t, outsider, "/flows").status, "a link is a bearer secret for a minute, as for instances")
		assert.Equal(t, 401, spendLink(t, w.env.URL, outsiderLink), "and works once")
		d2 := w.register(t, "Line 4")
		w.assign(t, d2, map[string]any{"mode": "developer"})
		wrongHost := strings.Replace(outsiderLink, d.id, d2.id, 1)
		assert.NotEqual(t, outsiderLink, wrongHost)
		assert.Equal(t, 401, spendLink(t, w.env.URL, wrongHost), "a code opens the origin it was issued for only")
		anon := apitest.NewHostClient(strings.TrimPrefix(w.env.URL, "http://"))
		req, _ := http.NewRequest("GET", "http://"+d.id+".editor.localhost/flows", nil)
		resp, err := anon.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 401, resp.StatusCode, "no session, no editor")

		// A second replica: the browser there, the tunnel here; its requests are forwarded.
		replica := apitest.Serve(t, w.env.Store, func(dp *api.Deps) {
			dp.Sealer, dp.Config.PublicURL = w.sealer, "http://forge.test"
		})
		viaB := openLinkOn(t, replica.URL, w.as["member"].Must(201, "POST", link, nil).String("url"))
		assert.Contains(t, editorGet(t, viaB, "/flows").body, "On the device", "forwarded to the replica holding the tunnel")
		assert.Equal(t, 200, editorPost(t, viaB, "/flows", `{"flows":[],"rev":"r2"}`).status)
		commsB := dialEditorWS(t, viaB, "/comms")
		require.NoError(t, commsB.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, msg, err = commsB.ReadMessage()
		require.NoError(t, err)
		assert.Contains(t, string(msg), "hello from the device", "the websocket too")
		viewB := openLinkOn(t, replica.URL, w.as["viewer"].Must(201, "POST", link, nil).String("url"))
		assert.Equal(t, 403, editorPost(t, viewB, "/flows", `{"flows":[]}`).status, "a viewer reads on every replica")
		ft.mu.Lock()
		assert.Len(t, ft.deployed, 2)
		ft.mu.Unlock()
		forged := w.env.Client(t)
		forged.Bearer = "not-a-sealed-credential"
		assert.Equal(t, 401, forged.Do("GET", "/_flowyard/device-editor/"+d.id+"/flows", nil).Status, "the forward path wants a replica's credential")

		// Leaving developer mode ends it all: the agent is told, the tunnel closed, the editor session gone.
		w.assign(t, d, map[string]any{"mode": "autonomous"})
		a.Next(t, "stopEditor")
		select {
		case <-ft.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the tunnel stayed open after the device left developer mode")
		}
		assert.Equal(t, 401, editorGet(t, member, "/flows").status)
		check.Header = http.Header{"X-Access-Token": {token}}
		assert.Equal(t, 401, check.Do("GET", "/api/v1/devices/"+d.id+"/editor/token", nil).Status)
		again, res, err := dialFFTunnel(t, w.env.URL, d.id, token)
		require.NoError(t, err, "%v", res)
		assert.Equal(t, 4004, closeCode(t, again.ws), "no editor: the agent stops reconnecting")
	})
}

// editorAnswer is an answer of an editor origin.
type editorAnswer struct {
	status int
	body   string
	header http.Header
}

// editorClient is a browser's view of one editor origin.
type editorClient struct {
	origin string
	http   *http.Client
	api    string // the API's address, which every host resolves to
}

func openLink(t *testing.T, apiURL, link string) *editorClient { return openLinkOn(t, apiURL, link) }

// openLinkOn spends an editor link on the API at apiURL (one replica), as a browser would.
func openLinkOn(t *testing.T, apiURL, link string) *editorClient {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err)
	addr := strings.TrimPrefix(apiURL, "http://")
	c := &editorClient{origin: u.Scheme + "://" + u.Host, http: apitest.NewHostClient(addr), api: addr}
	resp, err := c.http.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.NotEmpty(t, c.http.Jar.Cookies(u), "the editor's session cookie")
	return c
}

// spendLink spends a link in a fresh browser and returns the status.
func spendLink(t *testing.T, apiURL, link string) int {
	t.Helper()
	c := apitest.NewHostClient(strings.TrimPrefix(apiURL, "http://"))
	resp, err := c.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func editorDo(t *testing.T, c *editorClient, method, path, body string) editorAnswer {
	t.Helper()
	req, err := http.NewRequest(method, c.origin+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.origin)
	}
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return editorAnswer{status: resp.StatusCode, body: b.String(), header: resp.Header}
}

func editorGet(t *testing.T, c *editorClient, path string) editorAnswer {
	return editorDo(t, c, "GET", path, "")
}

func editorPost(t *testing.T, c *editorClient, path, body string) editorAnswer {
	return editorDo(t, c, "POST", path, body)
}

// dialEditorWS opens a websocket of the editor origin with its session cookie, from its own page.
func dialEditorWS(t *testing.T, c *editorClient, path string) *websocket.Conn {
	t.Helper()
	u, _ := url.Parse(c.origin)
	h := http.Header{}
	h.Set("Origin", c.origin)
	for _, ck := range c.http.Jar.Cookies(u) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	dialer := websocket.Dialer{NetDialContext: apitest.DialTo(c.api), HandshakeTimeout: 10 * time.Second}
	ws, res, err := dialer.Dial("ws://"+u.Host+path, h)
	require.NoError(t, err, "%v", res)
	t.Cleanup(func() { ws.Close() })
	return ws
}
