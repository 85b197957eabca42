package api_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
)

// debugFlow makes an inject node send marker to a debug node right after each deploy, so the comms
// websocket carries something.
func debugFlow(marker string) []map[string]any {
	return []map[string]any{
		{"id": "tabp", "type": "tab", "label": "Proxy"},
		{"id": "injp", "type": "inject", "z": "tabp", "once": true, "onceDelay": "0.2", "repeat": "", "topic": "",
			"payload": marker, "payloadType": "str", "props": []any{map[string]any{"p": "payload"}}, "wires": []any{[]any{"dbgp"}}},
		{"id": "dbgp", "type": "debug", "z": "tabp", "active": true, "tosidebar": true, "console": false, "complete": "payload", "wires": []any{}},
	}
}

// packNodeModule writes a Node-RED module with one node type and packs it with npm, as its author would before
// uploading it in the palette manager; it returns the tarball's path.
func packNodeModule(t *testing.T, name, nodeType string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"package.json": `{"name":"` + name + `","version":"1.0.0","keywords":["node-red"],"node-red":{"nodes":{"` + nodeType + `":"node.js"}}}`,
		"node.js": `module.exports = function (RED) {
  function UploadedNode(config) { RED.nodes.createNode(this, config); }
  RED.nodes.registerType("` + nodeType + `", UploadedNode);
};`,
		"node.html": `<script type="text/javascript">
  RED.nodes.registerType("` + nodeType + `", {category: "function", defaults: {}, inputs: 1, outputs: 1, label: "uploaded"});
</script>`,
	}
	for file, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
	}
	npm := exec.Command("npm", "pack", "--silent")
	npm.Dir = dir
	npm.Env = append(os.Environ(), "HOME="+dir, "npm_config_update_notifier=false")
	out, err := npm.CombinedOutput()
	require.NoError(t, err, "npm pack: %s", out)
	lines := strings.Fields(strings.TrimSpace(string(out)))
	require.NotEmpty(t, lines)
	return filepath.Join(dir, lines[len(lines)-1])
}

// headerEchoFlow is a member's plain http-in flow that answers GET /<path> with the request header it was
// sent ("none" without it): what a member would deploy to read the platform's admin token, were a request let
// out of Node-RED's admin root by the editor proxy, or a user's session cookie, were it sent to the instance.
func headerEchoFlow(path, header string) []map[string]any {
	return []map[string]any{
		{"id": "tabe", "type": "tab", "label": "Echo"},
		{"id": "ine", "type": "http in", "z": "tabe", "url": "/" + path, "method": "get", "wires": []any{[]any{"fne"}}},
		{"id": "fne", "type": "function", "z": "tabe", "func": "msg.payload = msg.req.headers['" + header + "'] || 'none'; return msg;",
			"outputs": 1, "wires": []any{[]any{"oute"}}},
		{"id": "oute", "type": "http response", "z": "tabe", "wires": []any{}},
	}
}

var deployHeaders = map[string]string{"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// waitForComms reads comms frames until one has the topic and data containing want.
func waitForComms(t *testing.T, conn *websocket.Conn, topic, want string) {
	t.Helper()
	apitest.WaitForComms(t, conn, topic, want)
}

func subscribeComms(t *testing.T, conn *websocket.Conn, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		require.NoError(t, conn.WriteJSON(map[string]string{"subscribe": topic}))
	}
}

// TestEditorProxyWithRealNodeRED serves a real Node-RED's editor on its own origin to each role.
func TestEditorProxyWithRealNodeRED(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "sqlite")
	port := freeRuntimePort(t)
	in, sec := w.addInstance(t, "e2e-editor", testRuntimeURL(port))
	red := startNodeRED(t, w.env.URL, in, sec, port)
	addr := hostOf(t, w.env.URL)
	editors := map[string]*browser{}
	for _, role := range []string{"owner", "member", "admin", "viewer"} {
		editors[role] = openEditor(t, w.browsers[role], in.ID)
	}
	member, viewer := editors["member"], editors["viewer"]

	t.Run("who may open it", func(t *testing.T) {
		for role, perms := range map[string]string{"owner": `"*"`, "member": `"*"`, "admin": `"*"`, "viewer": `"read"`} {
			a := editors[role].do("GET", "/settings", nil, nil)
			assert.Equal(t, 200, a.status, role)
			assert.Contains(t, a.body, `"permissions":`+perms, role)
		}
		anonymous := newEditorBrowser(t, member.base, addr)
		assert.Equal(t, 401, anonymous.do("GET", "/settings", nil, nil).status)
		for _, role := range []string{"outsider", "dashboard"} {
			assert.Equal(t, 404, w.browsers[role].do("POST", "/api/v1/instances/"+in.ID+"/editor-link", nil, nil).status, role)
		}
	})

	t.Run("editor page and assets load at the origin's root", func(t *testing.T) {
		page := member.do("GET", "/", nil, nil)
		require.Equal(t, 200, page.status, page.body)
		assert.Contains(t, page.body, "<title>e2e-editor</title>")
		assert.NotContains(t, page.header.Get("Content-Security-Policy"), "script-src", "no platform policy keeps Node-RED's scripts from running")
		assert.Equal(t, "frame-ancestors 'self'", page.header.Get("Content-Security-Policy"))
		assets := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(page.body, -1)
		require.NotEmpty(t, assets)
		for _, asset := range assets {
			assert.Equal(t, 200, member.do("GET", "/"+strings.TrimPrefix(asset[1], "/"), nil, nil).status, asset[1])
		}
		for _, secret := range []string{sec.admin, sec.read, sec.runtime} {
			assert.NotContains(t, page.body, secret)
			assert.NotContains(t, member.do("GET", "/settings", nil, nil).body, secret)
		}
	})

	t.Run("members deploy, the flows reach the platform", func(t *testing.T) {
		a := member.do("POST", "/flows", map[string]any{"flows": debugFlow("first-deploy")}, deployHeaders)
		require.Equal(t, 200, a.status, a.body)
		assert.Contains(t, a.body, `"rev"`)
		stored, err := w.env.Store.GetInstanceStorage(t.Context(), in.ID, "flows")
		require.NoError(t, err)
		assert.Contains(t, stored, "first-deploy")
		a = member.do("GET", "/flows", nil, nil)
		assert.Equal(t, 200, a.status)
		assert.Contains(t, a.body, "first-deploy")
	})

	t.Run("viewers read but cannot deploy", func(t *testing.T) {
		a := viewer.do("GET", "/flows", nil, nil)
		require.Equal(t, 200, a.status, a.body)
		assert.Contains(t, a.body, "first-deploy")
		a = viewer.do("POST", "/flows", map[string]any{"flows": []any{}}, deployHeaders)
		assert.Equal(t, 401, a.status, "Node-RED refuses a deploy with the read token: %s", a.body)
		assert.Contains(t, member.do("GET", "/flows", nil, nil).body, "first-deploy", "nothing was deployed")
	})

	t.Run("requests from other origins are refused", func(t *testing.T) {
		otherEditor := "http://" + domain.NewID() + ".editor.localhost:" + strings.Split(addr, ":")[1]
		for _, h := range []map[string]string{
			{"Origin": "http://evil.example"},
			{"Origin": w.env.URL},   // the platform is another origin too
			{"Origin": otherEditor}, // another instance's editor: the same site, another origin
			{"Sec-Fetch-Site": "same-site"},
			{"Sec-Fetch-Site": "cross-site"},
			{"Origin": "null"},
		} {
			h["Node-RED-API-Version"] = "v2"
			a := member.do("POST", "/flows", map[string]any{"flows": []any{}}, h)
			assert.Equal(t, 403, a.status, "%v", h)
			assert.Contains(t, a.body, "cross_origin")
		}
		same := map[string]string{"Origin": member.base, "Node-RED-API-Version": "v2", "Sec-Fetch-Site": "same-origin"}
		assert.Equal(t, 200, member.do("GET", "/flows/state", nil, same).status)
		for _, origin := range []string{"http://evil.example", w.env.URL, otherEditor} {
			_, res, err := dialEditorComms(t, addr, wsURL(member.base)+"/comms", http.Header{"Cookie": {member.cookieHeader()}, "Origin": {origin}})
			require.Error(t, err)
			require.NotNil(t, res)
			assert.Equal(t, 403, res.StatusCode, origin)
		}
		assert.Contains(t, member.do("GET", "/flows", nil, nil).body, "first-deploy", "nothing was deployed")
	})

	t.Run("encoded paths cannot reach the http-in routes", func(t *testing.T) {
		a := member.do("POST", "/flows", map[string]any{"flows": headerEchoFlow("steal", "authorization")}, deployHeaders)
		require.Equal(t, 200, a.status, a.body)
		require.Eventually(t, func() bool {
			status, body := red.call("GET", "/steal", nil, nil)
			return status == 200 && body == "Bearer "+sec.admin
		}, 20*time.Second, 100*time.Millisecond, "the flow answers with the token it is sent")
		for _, escape := range editorEscapes {
			a := member.do("GET", strings.ReplaceAll(escape, "/hello", "/steal"), nil, nil)
			assert.Equal(t, 400, a.status, "%s: %s", escape, a.body)
			assert.NotContains(t, a.body, sec.admin, escape)
		}
	})

	t.Run("comms websocket on the editor origin", func(t *testing.T) {
		conn, _, err := member.comms(t, addr)
		require.NoError(t, err)
		viewerConn, _, err := viewer.comms(t, addr)
		require.NoError(t, err)
		subscribeComms(t, conn, "notification/#", "debug")
		subscribeComms(t, viewerConn, "debug")
		// Subscriptions are processed in order with the deploy only if they arrived first: wait for Node-RED
		// to have them by checking a frame it sends right after subscribing (the runtime state notification).
		waitForComms(t, conn, "notification/runtime-state", `"state"`)

		a := member.do("POST", "/flows", map[string]any{"flows": debugFlow("hello-through-proxy")}, deployHeaders)
		require.Equal(t, 200, a.status, a.body)
		waitForComms(t, conn, "notification/runtime-deploy", `"revision"`)
		waitForComms(t, conn, "debug", "hello-through-proxy")
		waitForComms(t, viewerConn, "debug", "hello-through-proxy")

		for what, cookie := range map[string]string{"anonymous": "", "the platform's cookie": w.browsers["member"].cookieHeader()} {
			_, res, err := dialEditorComms(t, addr, wsURL(member.base)+"/comms", http.Header{"Cookie": {cookie}, "Origin": {member.base}})
			require.Error(t, err, what)
			require.NotNil(t, res, what)
			assert.Equal(t, 401, res.StatusCode, what)
		}
	})

	t.Run("a suspended user's comms websocket closes at once", func(t *testing.T) {
		conn, _, err := viewer.comms(t, addr)
		require.NoError(t, err)
		subscribeComms(t, conn, "notification/#")
		waitForComms(t, conn, "notification/runtime-state", `"state"`)
		id := w.browsers["viewer"].mustJSON(200, "GET", "/api/v1/user", nil)["id"].(string)
		w.browsers["admin"].mustJSON(200, "POST", "/api/v1/users/"+id+"/actions/suspend", nil)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(eventWait)))
		for {
			_, _, err := conn.ReadMessage()
			if err != nil {
				var timeout net.Error
				assert.False(t, errors.As(err, &timeout) && timeout.Timeout(), "the websocket was closed, not left open: %v", err)
				break
			}
		}
		assert.Equal(t, 401, viewer.do("GET", "/flows", nil, nil).status, "and the suspended user's editor session ends")
	})

	t.Run("a module uploaded in the palette manager is installed", func(t *testing.T) {
		tarball := packNodeModule(t, "node-red-contrib-flowyard-upload", "flowyard-upload")
		var body bytes.Buffer
		form := multipart.NewWriter(&body)
		part, err := form.CreateFormFile("tarball", filepath.Base(tarball))
		require.NoError(t, err)
		raw, err := os.ReadFile(tarball)
		require.NoError(t, err)
		_, err = part.Write(raw)
		require.NoError(t, err)
		require.NoError(t, form.Close())

		a := member.do("POST", "/nodes", body.String(), map[string]string{"Content-Type": form.FormDataContentType(), "Origin": member.base})
		require.Equal(t, 200, a.status, "%s\n%s", a.body, red.output.String())
		assert.Contains(t, a.body, `"name":"node-red-contrib-flowyard-upload"`)
		nodes := member.do("GET", "/nodes", nil, map[string]string{"Accept": "application/json"})
		require.Equal(t, 200, nodes.status)
		assert.Contains(t, nodes.body, `"flowyard-upload"`, "the module's node type is registered")
	})

	t.Run("a stopped runtime answers 503", func(t *testing.T) {
		red.stop()
		a := member.do("GET", "/flows", nil, nil)
		assert.Equal(t, 503, a.status)
		assert.Contains(t, a.body, "runtime_unreachable")
		_, res, err := member.comms(t, addr)
		require.Error(t, err)
		assert.Equal(t, 503, res.StatusCode)
		notStarted, _ := w.addInstance(t, "never-started", "")
		assert.Equal(t, 503, openEditor(t, w.browsers["member"], notStarted.ID).do("GET", "/flows", nil, nil).status)
	})
}

// editorEscapes are paths of an editor origin that would reach something outside Node-RED's admin root (its
// http-in routes at /api/ see the platform's token) if the proxy or Node-RED decoded or resolved them once more.
var editorEscapes = []string{
	"/../../api/hello", "/%2e%2e/%2e%2e/api/hello", "/..%2f..%2fapi/hello", "/.%2E/api/hello",
	"/%252e%252e/api/hello", "/%252E%252E/%252e%252e/api/hello", "/..%252f..%252fapi/hello", "/%25252e%25252e/api/hello",
	"/a/..%5c..%5capi/hello", "/a/%2e%2e%5capi/hello", "/nodes%2f..%2f..%2fapi/hello", "/./settings", "/flows%00",
}

// recordingBackend stands in for Node-RED where the test must see exactly what the proxy sends: it records
// each request's headers and path, echoes websocket messages, and answers with a cookie and a redirect.
type recordingBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	upgrader := websocket.Upgrader{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Clone(r.Context()))
		b.mu.Unlock()
		switch r.URL.Path {
		case "/admin/comms":
			conn, err := upgrader.Upgrade(rw, r, http.Header{"Set-Cookie": {"ws=1"}})
			if err != nil {
				return
			}
			defer conn.Close()
			for {
				kind, msg, err := conn.ReadMessage()
				if err != nil || conn.WriteMessage(kind, append([]byte("echo:"), msg...)) != nil {
					return
				}
			}
		case "/admin/vendor":
			http.Redirect(rw, r, "/admin/vendor/", http.StatusMovedPermanently)
		default:
			http.SetCookie(rw, &http.Cookie{Name: "flowyard_session", Value: "overwritten"})
			rw.Header().Set("X-Backend", "yes")
			rw.Header().Set("Access-Control-Allow-Origin", "*") // as Node-RED's admin API answers every request
			rw.Write([]byte("path=" + r.URL.Path + " query=" + r.URL.RawQuery))
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *recordingBackend) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return nil
	}
	return b.seen[len(b.seen)-1]
}

func (b *recordingBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

// TestEditorProxyHeaders checks what reaches Node-RED and what comes back: the platform's token replaces
// the user's credentials, cookies go neither way, paths cannot leave the admin root.
func TestEditorProxyHeaders(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "sqlite")
	backend := newRecordingBackend(t)
	in, sec := w.addInstance(t, "headers", backend.srv.URL)
	_, otherSec := w.addInstance(t, "headers-other", backend.srv.URL)
	addr := hostOf(t, w.env.URL)
	member := openEditor(t, w.browsers["member"], in.ID)

	a := member.do("PATCH", "/nodes/some%20module?x=1&y=%2F", `not json`, map[string]string{"X-Custom": "kept"})
	require.Equal(t, 200, a.status, a.body)
	assert.Equal(t, "path=/admin/nodes/some module query=x=1&y=%2F", a.body)
	got := backend.last()
	assert.Equal(t, "Bearer "+sec.admin, got.Header.Get("Authorization"))
	assert.Empty(t, got.Header.Values("Cookie"), "the editor's cookie is not forwarded")
	assert.Equal(t, "kept", got.Header.Get("X-Custom"))
	assert.Equal(t, "text/plain", got.Header.Get("Content-Type"), "non-JSON bodies pass through")
	assert.Equal(t, strings.TrimPrefix(backend.srv.URL, "http://"), got.Host)
	assert.Empty(t, a.header.Values("Set-Cookie"), "Node-RED cannot set cookies on the editor origin")
	assert.Equal(t, "yes", a.header.Get("X-Backend"))
	assert.Empty(t, a.header.Get("Access-Control-Allow-Origin"), "no other origin may read the editor's answers")
	assert.NotEmpty(t, a.header.Get("X-Request-Id"))
	assert.Equal(t, "same-origin", a.header.Get("Cross-Origin-Resource-Policy"), "no other origin may embed the editor's answers")
	assert.Equal(t, 200, member.do("GET", "/flows", nil, nil).status, "the editor session survived")

	a = member.do("GET", "/flows", nil, map[string]string{"Authorization": "Bearer " + sec.read})
	require.Equal(t, 200, a.status)
	assert.Equal(t, "Bearer "+sec.admin, backend.last().Header.Get("Authorization"), "the browser's own Authorization is replaced")

	a = member.do("GET", "/vendor", nil, nil)
	assert.Equal(t, 301, a.status)
	assert.Equal(t, "/vendor/", a.header.Get("Location"), "redirects stay on the editor origin")

	before := backend.count()
	for _, escape := range editorEscapes {
		a := member.do("GET", escape, nil, nil)
		assert.Equal(t, 400, a.status, escape)
		assert.Contains(t, a.body, `"code":"invalid_editor_path"`, escape)
	}
	assert.Equal(t, before, backend.count(), "no escaping path reached the backend")
	for path, want := range map[string]string{
		"/library/local/functions/%C3%BCn%C3%AF/50%25.js": "/admin/library/local/functions/ünï/50%.js",
		"/context/flow/abc/a.b?store=default":             "/admin/context/flow/abc/a.b",
		"/nodes/@scope/a-module":                          "/admin/nodes/@scope/a-module",
	} {
		a := member.do("GET", path, nil, nil)
		assert.Equal(t, 200, a.status, path)
		assert.Contains(t, a.body, "path="+want+" ", "plain paths reach Node-RED as they were sent")
		assert.Equal(t, "/admin"+strings.SplitN(path, "?", 2)[0], backend.last().URL.EscapedPath(), "the bytes sent are the bytes checked")
	}

	header := http.Header{"Cookie": {member.cookieHeader()}, "Origin": {member.base}, "Sec-WebSocket-Protocol": {"chat"}}
	conn, res, err := dialEditorComms(t, addr, wsURL(member.base)+"/comms?v=2", header)
	require.NoError(t, err)
	assert.Empty(t, res.Header.Values("Set-Cookie"))
	got = backend.last()
	assert.Equal(t, "/admin/comms", got.URL.Path)
	assert.Equal(t, "v=2", got.URL.RawQuery)
	assert.Equal(t, "Bearer "+sec.admin, got.Header.Get("Authorization"))
	assert.Empty(t, got.Header.Values("Cookie"))
	assert.Empty(t, got.Header.Values("Origin"))
	for i := range 3 {
		msg := "ping-" + strconv.Itoa(i)
		require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(msg)))
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, echo, err := conn.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "echo:"+msg, string(echo))
	}

	viewerConn, _, err := openEditor(t, w.browsers["viewer"], in.ID).comms(t, addr)
	require.NoError(t, err)
	viewerConn.Close()
	assert.Equal(t, "Bearer "+sec.read, backend.last().Header.Get("Authorization"), "viewers get the read-only token")
	assert.NotEqual(t, otherSec.admin, sec.admin)
}

// TestEditorProxyStreamsBodies checks that bodies reach Node-RED as sent and as they arrive: a multipart upload
// whole (fasthttp would otherwise parse it into a form and forward nothing), a chunked body before its end has
// been sent, and that the body limit still holds for streamed bodies.
func TestEditorProxyStreamsBodies(t *testing.T) {
	t.Parallel()
	firstHalf := make(chan struct{}, 1)
	const half = 256 << 10
	backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/streamed" {
			if _, err := io.ReadFull(r.Body, make([]byte, half)); err != nil {
				http.Error(rw, err.Error(), 500)
				return
			}
			firstHalf <- struct{}{}
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), 500)
			return
		}
		sum := sha256.Sum256(raw)
		fmt.Fprintf(rw, "%s %d %x", r.Header.Get("Content-Type"), len(raw), sum)
	}))
	t.Cleanup(backend.Close)
	w := newInstanceWorld(t, "sqlite")
	in, _ := w.addInstance(t, "streams", backend.URL)
	member := openEditor(t, w.browsers["member"], in.ID)
	editor := member.base
	editorHost := strings.TrimPrefix(editor, "http://")
	addr := hostOf(t, w.env.URL)

	t.Run("a multipart upload arrives as sent", func(t *testing.T) {
		var body bytes.Buffer
		form := multipart.NewWriter(&body)
		part, err := form.CreateFormFile("tarball", "module.tgz")
		require.NoError(t, err)
		_, err = part.Write(bytes.Repeat([]byte("flowyard"), 40<<10))
		require.NoError(t, err)
		require.NoError(t, form.Close())
		sum := sha256.Sum256(body.Bytes())
		a := member.do("POST", "/nodes", body.String(), map[string]string{"Content-Type": form.FormDataContentType()})
		require.Equal(t, 200, a.status, a.body)
		assert.Equal(t, fmt.Sprintf("%s %d %x", form.FormDataContentType(), body.Len(), sum), a.body)
	})

	t.Run("a body reaches Node-RED before it has all been sent", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			chunk := bytes.Repeat([]byte("x"), half)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			select {
			case <-firstHalf:
				_, _ = pw.Write(chunk)
				pw.Close()
			case <-time.After(15 * time.Second):
				pw.CloseWithError(errors.New("node-red did not get the first half of the body before the rest was sent"))
			}
		}()
		req, err := http.NewRequest("PUT", editor+"/streamed", pr) // no length: sent chunked
		require.NoError(t, err)
		res, err := member.client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		require.Equal(t, 200, res.StatusCode, string(raw))
		assert.Contains(t, string(raw), " "+strconv.Itoa(half)+" ", "the rest of the body followed")
	})

	t.Run("the body limit holds for streamed bodies", func(t *testing.T) {
		limit := 1 << 20 // apitest's
		req, err := http.NewRequest("PUT", editor+"/big", io.MultiReader(bytes.NewReader(make([]byte, limit)), strings.NewReader("!")))
		require.NoError(t, err)
		res, err := member.client.Do(req)
		require.NoError(t, err)
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, 413, res.StatusCode, string(raw))
		assert.Contains(t, string(raw), `"code":"body_too_large"`)

		a := member.do("PUT", "/big", strings.Repeat("y", limit), nil)
		assert.Equal(t, 200, a.status, "a body of exactly the limit passes: %s", a.body)

		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = fmt.Fprintf(conn, "PUT /big HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n%sContent-Length: %d\r\n\r\n",
				editorHost, member.cookieHeader(), expect, limit+1)
			require.NoError(t, err)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			res.Body.Close()
			assert.Equal(t, 413, res.StatusCode, "refused on its declared length, without its body (%q)", expect)
		}
	})

	t.Run("an unread body is not read as the next request", func(t *testing.T) {
		smuggled := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
		body := strings.Repeat("z", 64<<10) + smuggled
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = fmt.Fprintf(conn, "POST /flows HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			editorHost, len(body), body)
		require.NoError(t, err)
		reader := bufio.NewReader(conn)
		res, err := http.ReadResponse(reader, nil)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, 401, res.StatusCode, "anonymous, refused before its body is read")
		require.NoError(t, conn.SetDeadline(time.Now().Add(2*time.Second)))
		next, err := http.ReadResponse(reader, nil)
		if err == nil {
			next.Body.Close()
			t.Fatalf("the end of the refused body was served as a request: %d", next.StatusCode)
		}
	})
}
