package nodered

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests establish how a platform serves the Node-RED editor to a user
// through a reverse proxy that (a) strips a path prefix such as
// /editor/<instance>/ and (b) injects the instance's admin token on every
// request, so the browser never holds a Node-RED token.

const editorPrefix = "/editor/inst-1"

// editorProxy is the minimal proxy the platform needs: map
// <prefix>/<rest> to <adminRoot>/<rest>, drop whatever credentials the
// browser sent, and inject the token (in tokenHeader, or as
// "Authorization: Bearer" when tokenHeader is ""). httputil.ReverseProxy
// passes websocket upgrades through, with the same Rewrite.
func editorProxy(t *testing.T, nodeRED, adminRoot, tokenHeader, token string) *httptest.Server {
	target, err := url.Parse(nodeRED)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		rest := strings.TrimPrefix(r.In.URL.Path, editorPrefix)
		r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = target.Scheme, target.Host, target.Host
		r.Out.URL.Path, r.Out.URL.RawPath = strings.TrimRight(adminRoot, "/")+rest, ""
		r.Out.Header.Del("Authorization")
		r.Out.Header.Del("Cookie")
		if tokenHeader == "" {
			r.Out.Header.Set("Authorization", "Bearer "+token)
		} else {
			r.Out.Header.Set(tokenHeader, token)
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == editorPrefix:
			// Node-RED would redirect to its own root path, which the browser
			// cannot reach: the proxy adds the slash itself.
			http.Redirect(w, r, editorPrefix+"/", http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, editorPrefix+"/"):
			proxy.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// debugFlow makes an inject node send "hello-through-proxy" to a debug node
// right after each deploy, so the comms websocket has something to carry.
func debugFlow() []map[string]any {
	return []map[string]any{
		{"id": "tabp", "type": "tab", "label": "Proxy"},
		{"id": "injp", "type": "inject", "z": "tabp", "once": true, "onceDelay": "0.2", "repeat": "", "topic": "",
			"payload": "hello-through-proxy", "payloadType": "str", "props": []any{map[string]any{"p": "payload"}}, "wires": []any{[]any{"dbgp"}}},
		{"id": "dbgp", "type": "debug", "z": "tabp", "active": true, "tosidebar": true, "console": false, "complete": "payload", "wires": []any{}},
	}
}

type commsFrame struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// dialComms opens the editor's websocket like a browser does: no credentials.
func dialComms(t *testing.T, wsURL string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, res, err := dialer.Dial(wsURL, header)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, res, err
}

// waitForFrame reads comms messages until one has the topic (and, if
// contains is set, data containing it).
func waitForFrame(t *testing.T, conn *websocket.Conn, topic, contains string) commsFrame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s on comms: %v", topic, err)
		}
		var frames []commsFrame
		if json.Unmarshal(raw, &frames) != nil {
			continue // {"auth":...} acknowledgements
		}
		for _, f := range frames {
			if f.Topic == topic && strings.Contains(string(f.Data), contains) {
				return f
			}
		}
	}
}

func subscribe(t *testing.T, conn *websocket.Conn, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if err := conn.WriteJSON(map[string]string{"subscribe": topic}); err != nil {
			t.Fatal(err)
		}
	}
}

func wsURL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http")
}

func TestEditorThroughPrefixStrippingProxy(t *testing.T) {
	for _, variant := range []struct{ name, tokenHeader string }{
		{"authorization-bearer", ""},
		{"custom-token-header", "x-flowyard-token"},
	} {
		t.Run(variant.name, func(t *testing.T) {
			t.Parallel()
			testEditorThroughProxy(t, variant.tokenHeader)
		})
	}
}

func testEditorThroughProxy(t *testing.T, tokenHeader string) {
	rt := testRuntime(t)
	viewerToken, viewerDigest := newToken(t)
	red := startNodeRED(t, rt, t.TempDir(), redOptions{params: SettingsParams{
		HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api", TokenHeader: tokenHeader, Title: "Proxy test",
		AdminTokens: map[string]string{viewerDigest: "read"},
	}})
	red.waitReady()
	owner := editorProxy(t, red.baseURL, "/admin", tokenHeader, red.token)
	viewer := editorProxy(t, red.baseURL, "/admin", tokenHeader, viewerToken)
	browser := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	t.Run("editor page and assets load under the prefix", func(t *testing.T) {
		res, err := browser.Get(owner.URL + editorPrefix)
		if err != nil || res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != editorPrefix+"/" {
			t.Fatalf("GET %s without slash: %v %v", editorPrefix, res, err)
		}
		status, page := httpDo("GET", owner.URL+editorPrefix+"/", nil, nil)
		if status != 200 || !strings.Contains(page, "<title>Proxy test</title>") {
			t.Fatalf("editor page: %d %.300s", status, page)
		}
		if abs := regexp.MustCompile(`(?:href|src)="/[^"]*"`).FindAllString(page, -1); len(abs) > 0 {
			t.Fatalf("editor page has root-relative URLs that bypass the prefix: %v", abs)
		}
		for _, asset := range regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(page, -1) {
			if status, _ := httpDo("GET", owner.URL+editorPrefix+"/"+asset[1], nil, nil); status != 200 {
				t.Errorf("asset %s: %d", asset[1], status)
			}
		}
	})

	t.Run("admin API authenticated by the injected token", func(t *testing.T) {
		status, body := httpDo("GET", owner.URL+editorPrefix+"/settings", nil, nil)
		if status != 200 || !strings.Contains(body, `"user":{"username":"flowyard","permissions":"*"}`) || !strings.Contains(body, `"editorTheme"`) {
			t.Fatalf("GET settings through the proxy: %d %.400s", status, body)
		}
		if status, _ := httpDo("GET", red.adminURL+"/settings", nil, nil); status != 401 {
			t.Fatalf("GET settings without the proxy answered %d, want 401", status)
		}
	})

	t.Run("comms websocket authenticated by the injected token", func(t *testing.T) {
		conn, _, err := dialComms(t, wsURL(owner.URL)+editorPrefix+"/comms", nil)
		if err != nil {
			t.Fatalf("dial comms through the proxy: %v", err)
		}
		subscribe(t, conn, "notification/#", "debug")
		status, body := httpDo("POST", owner.URL+editorPrefix+"/flows", map[string]any{"flows": debugFlow()},
			map[string]string{"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"})
		if status != 200 {
			t.Fatalf("deploy through the proxy: %d %s", status, body)
		}
		waitForFrame(t, conn, "notification/runtime-deploy", `"revision"`)
		waitForFrame(t, conn, "debug", "hello-through-proxy")
	})

	t.Run("read token gives a read-only editor", func(t *testing.T) {
		status, body := httpDo("GET", viewer.URL+editorPrefix+"/settings", nil, nil)
		if status != 200 || !strings.Contains(body, `"permissions":"read"`) {
			t.Fatalf("viewer settings: %d %.300s", status, body)
		}
		if status, body := httpDo("GET", viewer.URL+editorPrefix+"/flows", nil, nil); status != 200 || !strings.Contains(body, "hello-through-proxy") {
			t.Fatalf("viewer GET flows: %d %.300s", status, body)
		}
		status, _ = httpDo("POST", viewer.URL+editorPrefix+"/flows", map[string]any{"flows": []any{}}, map[string]string{"Node-RED-API-Version": "v2"})
		if status != 401 {
			t.Fatalf("viewer deploy answered %d, want 401", status)
		}
		conn, _, err := dialComms(t, wsURL(viewer.URL)+editorPrefix+"/comms", nil)
		if err != nil {
			t.Fatalf("viewer comms: %v", err)
		}
		subscribe(t, conn, "debug")
		// The owner redeploys; the viewer watches the debug output.
		red.deployV2(debugFlow())
		waitForFrame(t, conn, "debug", "hello-through-proxy")
	})

	t.Run("comms without the proxy", func(t *testing.T) {
		// A wrong token in the header on the upgrade: Node-RED drops the socket.
		bad := http.Header{}
		if tokenHeader == "" {
			bad.Set("Authorization", "Bearer wrong-token")
		} else {
			bad.Set(tokenHeader, "wrong-token")
		}
		if _, _, err := dialComms(t, wsURL(red.adminURL)+"/comms", bad); err == nil {
			t.Fatal("upgrade with a wrong token header succeeded")
		}
		// No header: the socket opens but stays unauthenticated until an
		// {"auth": token} packet, which a wrong token fails.
		conn, _, err := dialComms(t, wsURL(red.adminURL)+"/comms", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteJSON(map[string]string{"auth": "wrong-token"}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, raw, err := conn.ReadMessage()
		if err != nil || string(raw) != `{"auth":"fail"}` {
			t.Fatalf("auth packet with a wrong token: %q %v", raw, err)
		}
	})

	// Passport tries Node-RED's own bearer strategy first, which logs an
	// "auth.invalid-token" audit line for every request carrying our token in
	// Authorization. A custom token header avoids that noise.
	invalid := strings.Count(red.output.String(), `"event":"auth.invalid-token"`)
	t.Logf("token header %q: %d auth.invalid-token audit lines", tokenHeader, invalid)
	if (tokenHeader == "") != (invalid > 0) {
		t.Errorf("auth.invalid-token lines: %d with token header %q", invalid, tokenHeader)
	}
}
