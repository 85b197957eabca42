package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// ---- editor origins as a browser reaches them ----

// hostOf is the host:port of a base URL (the API's listener, which serves every editor origin too).
func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	return u.Host
}

// editorLink asks the platform, as b, for a link into an instance's editor.
func editorLink(b *browser, instanceID string) string {
	b.t.Helper()
	return b.mustJSON(201, "POST", "/api/v1/instances/"+instanceID+"/editor-link", nil)["url"].(string)
}

// newEditorBrowser is a browser of the editor origin a link points at, with a cookie jar of its own (a real
// browser's jar keeps each host's cookies apart the same way), reaching the API's listener at addr.
func newEditorBrowser(t *testing.T, link, addr string) *browser {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err)
	return &browser{t: t, base: u.Scheme + "://" + u.Host, client: apitest.NewHostClient(addr)}
}

// follow GETs a link of the browser's origin (an absolute URL) and returns the answer.
func (b *browser) follow(link string) answer {
	b.t.Helper()
	rest, ok := strings.CutPrefix(link, b.base)
	require.True(b.t, ok, "%s is not on %s", link, b.base)
	return b.do("GET", rest, nil, nil)
}

// openEditor opens an instance's editor as the signed-in browser b does ("Open editor"): a link from the
// platform, spent on the editor origin, which sets its cookie and sends the browser on to the editor.
func openEditor(t *testing.T, b *browser, instanceID string) *browser {
	t.Helper()
	link := editorLink(b, instanceID)
	e := newEditorBrowser(t, link, hostOf(t, b.base))
	a := e.follow(link)
	require.Equal(t, 303, a.status, a.body)
	require.Equal(t, "/_flowyard/signed-in", a.header.Get("Location"))
	a = e.do("GET", "/_flowyard/signed-in", nil, nil)
	require.Equal(t, 303, a.status, a.body)
	require.Equal(t, "/", a.header.Get("Location"))
	return e
}

// dialEditorComms opens /comms on an editor origin like a browser: the origin's cookie and the page's Origin;
// the connection goes to the API's listener at addr.
func dialEditorComms(t *testing.T, addr, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: apitest.DialTo(addr)}
	conn, res, err := dialer.Dial(url, header)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, res, err
}

// comms dials the editor's websocket as this editor browser, from its own page.
func (b *browser) comms(t *testing.T, addr string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return dialEditorComms(t, addr, wsURL(b.base)+"/comms", http.Header{"Cookie": {b.cookieHeader()}, "Origin": {b.base}})
}

// ---- the code exchange and the editor origin's session ----

// TestEditorOriginSessions checks the way into an editor origin and what its session is worth: a code works
// once, for a minute, on its own instance's origin only; the session it opens is that instance's, read-only for
// a viewer, and ends with the platform session, with the user's role, and with its own expiry; neither origin
// takes the other's cookie; a user of another team gets no code; and the platform's routes are not served on an
// editor origin, nor the editor on the platform's.
func TestEditorOriginSessions(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "sqlite", func(d *api.Deps) { d.Config.Live.Recheck = 50 * time.Millisecond })
	backend := newRecordingBackend(t)
	a, secA := w.addInstance(t, "alpha", backend.srv.URL)
	b, _ := w.addInstance(t, "bravo", backend.srv.URL)
	addr := hostOf(t, w.env.URL)
	member, viewer := w.browsers["member"], w.browsers["viewer"]
	ctx := context.Background()

	t.Run("a link names the instance's own origin and works once", func(t *testing.T) {
		answer := member.mustJSON(201, "POST", "/api/v1/instances/"+a.ID+"/editor-link", nil)
		link := answer["url"].(string)
		assert.Equal(t, "http://"+a.ID+".editor.localhost:"+strings.Split(addr, ":")[1]+"/_flowyard/sign-in?code=", link[:strings.Index(link, "=")+1])
		assert.Equal(t, "edit", answer["access"])
		expires, err := time.Parse(time.RFC3339, answer["expiresAt"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(time.Minute), expires, 5*time.Second)

		e := newEditorBrowser(t, link, addr)
		first := e.follow(link)
		require.Equal(t, 303, first.status, first.body)
		setCookie := strings.Join(first.header.Values("Set-Cookie"), "\n")
		assert.Contains(t, setCookie, "flowyard_editor=fyo_")
		for _, attr := range []string{"httponly", "samesite=lax", "path=/"} {
			assert.Contains(t, strings.ToLower(setCookie), attr)
		}
		assert.NotContains(t, strings.ToLower(setCookie), "domain=", "the editor's cookie is host-only")
		assert.Equal(t, "no-referrer", first.header.Get("Referrer-Policy"), "the code does not leave in a Referer")

		again := newEditorBrowser(t, link, addr).follow(link)
		assert.Equal(t, 401, again.status)
		assert.Contains(t, again.body, `"editor_link_invalid"`)
		assert.Empty(t, again.header.Values("Set-Cookie"), "a spent code opens nothing")
		assert.Equal(t, 200, e.do("GET", "/flows", nil, nil).status, "the first browser's session works")
	})

	t.Run("a code is bound to its instance", func(t *testing.T) {
		link := editorLink(member, a.ID)
		onB := strings.Replace(link, a.ID+".", b.ID+".", 1)
		got := newEditorBrowser(t, onB, addr).follow(onB)
		assert.Equal(t, 401, got.status, "instance A's code on instance B's origin")
		assert.Contains(t, got.body, `"editor_link_invalid"`)
		assert.Equal(t, 401, newEditorBrowser(t, link, addr).follow(link).status, "and it is spent: A's origin refuses it too")
	})

	t.Run("codes and sessions expire", func(t *testing.T) {
		code, hash := domain.NewToken(domain.TokenPrefixEditorCode)
		cookie, cookieHash := domain.NewToken(domain.TokenPrefixEditorCookie)
		platformSession := sessionHashOf(t, member)
		past := time.Now().Add(-time.Second)
		require.NoError(t, w.env.Store.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: storage.EditorCode,
			InstanceID: a.ID, SessionHash: platformSession, Access: "edit", ExpiresAt: past}))
		link := "http://" + a.ID + ".editor.localhost:" + strings.Split(addr, ":")[1] + "/_flowyard/sign-in?code=" + code
		assert.Equal(t, 401, newEditorBrowser(t, link, addr).follow(link).status, "an expired code")

		require.NoError(t, w.env.Store.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: cookieHash, Kind: storage.EditorSession,
			InstanceID: a.ID, SessionHash: platformSession, Access: "edit", ExpiresAt: past}))
		e := newEditorBrowser(t, link, addr)
		got := e.do("GET", "/flows", nil, map[string]string{"Cookie": "flowyard_editor=" + cookie})
		assert.Equal(t, 401, got.status, "an expired editor session")
		assert.Contains(t, got.body, `"editor_sign_in_required"`)
	})

	t.Run("a viewer's session carries the read-only token", func(t *testing.T) {
		assert.Equal(t, "view", viewer.mustJSON(201, "POST", "/api/v1/instances/"+a.ID+"/editor-link", nil)["access"])
		e := openEditor(t, viewer, a.ID)
		require.Equal(t, 200, e.do("POST", "/flows", map[string]any{"flows": []any{}}, nil).status)
		assert.Equal(t, "Bearer "+secA.read, backend.last().Header.Get("Authorization"), "Node-RED refuses a deploy with it (TestEditorProxyWithRealNodeRED)")
		m := openEditor(t, member, a.ID)
		require.Equal(t, 200, m.do("GET", "/flows", nil, nil).status)
		assert.Equal(t, "Bearer "+secA.admin, backend.last().Header.Get("Authorization"))
	})

	t.Run("neither origin takes the other's cookie", func(t *testing.T) {
		e := openEditor(t, member, a.ID)
		platformCookie := member.cookieHeader()
		require.True(t, strings.HasPrefix(platformCookie, "flowyard_session=fys_"), platformCookie)
		editorCookie := e.cookieHeader()
		require.True(t, strings.HasPrefix(editorCookie, "flowyard_editor=fyo_"), editorCookie)
		platformToken, editorToken := strings.TrimPrefix(platformCookie, "flowyard_session="), strings.TrimPrefix(editorCookie, "flowyard_editor=")

		before := backend.count()
		anonymous := newEditorBrowser(t, e.base, addr)
		for _, cookie := range []string{platformCookie, "flowyard_editor=" + platformToken} {
			got := anonymous.do("GET", "/flows", nil, map[string]string{"Cookie": cookie})
			assert.Equal(t, 401, got.status, "the editor origin with %s", cookie)
		}
		_, res, err := dialEditorComms(t, addr, wsURL(e.base)+"/comms", http.Header{"Cookie": {platformCookie}, "Origin": {e.base}})
		require.Error(t, err)
		assert.Equal(t, 401, res.StatusCode, "the editor's websocket with the platform's cookie")
		assert.Equal(t, before, backend.count(), "nothing reached Node-RED")

		platform := newBrowser(t, w.env.URL)
		for _, cookie := range []string{editorCookie, "flowyard_session=" + editorToken} {
			got := platform.do("GET", "/api/v1/user", nil, map[string]string{"Cookie": cookie})
			assert.Equal(t, 401, got.status, "the platform with %s", cookie)
			assert.Equal(t, 401, platform.do("POST", "/api/v1/instances/"+a.ID+"/editor-link", nil, map[string]string{"Cookie": cookie}).status)
		}
	})

	t.Run("a user of another team gets no code", func(t *testing.T) {
		before := grantCount(t, w.env.Store)
		for _, role := range []string{"outsider", "dashboard"} {
			got := w.browsers[role].do("POST", "/api/v1/instances/"+a.ID+"/editor-link", nil, nil)
			assert.Equal(t, 404, got.status, role)
			assert.Contains(t, got.body, `"not_found"`, role)
		}
		assert.Equal(t, 401, w.browsers["anonymous"].do("POST", "/api/v1/instances/"+a.ID+"/editor-link", nil, nil).status)
		assert.Equal(t, 404, member.do("POST", "/api/v1/instances/"+domain.NewID()+"/editor-link", nil, nil).status)
		pat := newBrowser(t, w.env.URL)
		pat.bearer = member.mustJSON(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "full"})["token"].(string)
		got := pat.do("POST", "/api/v1/instances/"+a.ID+"/editor-link", nil, nil)
		assert.Equal(t, 403, got.status, "a bearer token has no browser session to bind a code to")
		assert.Contains(t, got.body, `"editor_needs_session"`)
		assert.Equal(t, before, grantCount(t, w.env.Store), "no code was written")
	})

	t.Run("the session ends with the platform session", func(t *testing.T) {
		b := newBrowser(t, w.env.URL)
		b.login(w.emails["member"], testPassword)
		e := openEditor(t, b, a.ID)
		conn, _, err := e.comms(t, addr)
		require.NoError(t, err)
		require.Equal(t, 200, e.do("GET", "/flows", nil, nil).status)
		require.Equal(t, 204, b.do("POST", "/api/v1/auth/logout", nil, nil).status)
		assert.Equal(t, 401, e.do("GET", "/flows", nil, nil).status, "signed out of the platform")
		page := e.do("GET", "/", nil, map[string]string{"Sec-Fetch-Mode": "navigate"})
		assert.Equal(t, 303, page.status, "a browser opening the editor is sent to the dashboard for a new link")
		assert.Equal(t, w.env.URL+"/editor/"+a.ID+"/", page.header.Get("Location"))
		assertClosed(t, conn, "the editor's websocket")
	})

	t.Run("the session ends with the role it was opened with", func(t *testing.T) {
		e := openEditor(t, member, a.ID)
		conn, _, err := e.comms(t, addr)
		require.NoError(t, err)
		memberID := memberIDOf(t, w)
		w.browsers["owner"].mustJSON(200, "PATCH", "/api/v1/teams/"+w.teamID+"/members/"+memberID, map[string]any{"role": "viewer"})
		assert.Equal(t, 401, e.do("GET", "/flows", nil, nil).status, "a member made viewer has no editing session any more")
		assertClosed(t, conn, "the websocket of the editing session")
		v := openEditor(t, member, a.ID)
		require.Equal(t, 200, v.do("GET", "/flows", nil, nil).status, "opened again: read-only")
		assert.Equal(t, "Bearer "+secA.read, backend.last().Header.Get("Authorization"))
		w.browsers["owner"].mustJSON(200, "PATCH", "/api/v1/teams/"+w.teamID+"/members/"+memberID, map[string]any{"role": "member"})
	})

	t.Run("another API replica honours codes and sessions", func(t *testing.T) {
		replica := apitest.Serve(t, w.env.Store, func(d *api.Deps) { d.Sealer = w.sealer; d.Config.PublicURL = w.env.URL })
		link := editorLink(member, a.ID)
		e := newEditorBrowser(t, link, hostOf(t, replica.URL))
		require.Equal(t, 303, e.follow(link).status, "a code issued by one replica, spent on another")
		assert.Equal(t, 200, e.do("GET", "/flows", nil, nil).status)
		first := apitest.NewHostClient(addr)
		first.Jar = e.client.Jar
		e.client = first
		assert.Equal(t, 200, e.do("GET", "/flows", nil, nil).status, "and the session works on the first")
	})

	t.Run("hosts under the editor domain are checked", func(t *testing.T) {
		e := openEditor(t, member, a.ID)
		port := strings.Split(addr, ":")[1]
		for _, host := range []string{"editor.localhost:" + port, "x." + a.ID + ".editor.localhost:" + port, a.ID + ".editor.localhost:1",
			a.ID + ".editor.localhost", "not-an-instance.editor.localhost:" + port, a.ID[:25] + ".editor.localhost:" + port} {
			got := e.do("GET", "/flows", nil, map[string]string{"Host": host})
			assert.Equal(t, 404, got.status, host)
		}
		assert.Equal(t, 200, e.do("GET", "/flows", nil, map[string]string{"Host": strings.ToUpper(a.ID) + ".Editor.Localhost:" + port}).status,
			"host names are case-insensitive")
		got := e.do("GET", "/api/v1/user", nil, nil)
		require.Equal(t, 200, got.status)
		assert.Equal(t, "/admin/api/v1/user", backend.last().URL.Path, "the platform's API is not served on an editor origin: the path is Node-RED's")
		assert.NotContains(t, got.body, w.emails["member"])
	})

	t.Run("the platform no longer serves the editor", func(t *testing.T) {
		before := backend.count()
		for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
			got := member.do(method, "/editor/"+a.ID+"/flows", map[string]any{"flows": []any{}}, nil)
			assert.Equal(t, 404, got.status, method)
		}
		_, res, err := dialEditorComms(t, addr, wsURL(w.env.URL)+"/editor/"+a.ID+"/comms", http.Header{"Cookie": {member.cookieHeader()}})
		require.Error(t, err)
		assert.Equal(t, 404, res.StatusCode)
		assert.Equal(t, before, backend.count())
		page := member.do("GET", "/editor/"+a.ID+"/", nil, nil)
		assert.Equal(t, 200, page.status, "the dashboard's page that opens the editor")
		assert.Contains(t, page.header.Get("Content-Type"), "text/html")
	})
}

// sessionHashOf is the digest of a browser's platform session.
func sessionHashOf(t *testing.T, b *browser) string {
	t.Helper()
	cookie, ok := strings.CutPrefix(b.cookieHeader(), "flowyard_session=")
	require.True(t, ok)
	return domain.HashToken(cookie)
}

// grantCount counts the editor codes and sessions stored.
func grantCount(t *testing.T, st *storage.Store) int {
	t.Helper()
	tables, err := st.DumpTables(context.Background())
	require.NoError(t, err)
	return len(tables["editor_grants"])
}

func memberIDOf(t *testing.T, w *instanceWorld) string {
	t.Helper()
	return w.browsers["member"].mustJSON(200, "GET", "/api/v1/user", nil)["id"].(string)
}

// assertClosed waits until the server closes a websocket.
func assertClosed(t *testing.T, conn *websocket.Conn, what string) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("%s is still open", what)
			}
			return
		}
	}
}

// TestSecureCookiesTakeTheHostPrefix checks the cookie names behind TLS: __Host-flowyard_session and
// __Host-flowyard_editor, which a browser accepts only from their own host, Secure, for the whole path. In
// production every editor origin is a sibling of the platform's host (<id>.editor.example.com beside
// flowyard.example.com), and a page there may set a cookie for the whole parent domain: under the plain names,
// such a cookie would reach the platform (or another editor) and could sign its user in as someone else. The
// plain names are not read.
func TestSecureCookiesTakeTheHostPrefix(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "sqlite", func(d *api.Deps) { d.Config.SecureCookies = true })
	backend := newRecordingBackend(t)
	in, _ := w.addInstance(t, "secure", backend.srv.URL)
	addr := hostOf(t, w.env.URL)

	signIn := w.browsers["anonymous"].do("POST", "/api/v1/auth/login", map[string]string{"email": w.emails["member"], "password": testPassword}, nil)
	require.Equal(t, 200, signIn.status, signIn.body)
	session := cookieFrom(t, signIn, "__Host-flowyard_session")
	platform := newBrowser(t, w.env.URL)
	assert.Equal(t, 200, platform.do("GET", "/api/v1/user", nil, map[string]string{"Cookie": "__Host-flowyard_session=" + session}).status)
	assert.Equal(t, 401, platform.do("GET", "/api/v1/user", nil, map[string]string{"Cookie": "flowyard_session=" + session}).status,
		"a plain-named cookie, as a sibling host could plant it, is not read")

	link := platform.do("POST", "/api/v1/instances/"+in.ID+"/editor-link", nil, map[string]string{"Cookie": "__Host-flowyard_session=" + session})
	require.Equal(t, 201, link.status, link.body)
	var answer struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(link.body), &answer))
	e := newEditorBrowser(t, answer.URL, addr)
	opened := e.follow(answer.URL)
	require.Equal(t, 303, opened.status, opened.body)
	editor := cookieFrom(t, opened, "__Host-flowyard_editor")
	e = newEditorBrowser(t, answer.URL, addr) // its own jar would add the cookie it holds
	assert.Equal(t, 200, e.do("GET", "/flows", nil, map[string]string{"Cookie": "__Host-flowyard_editor=" + editor}).status)
	assert.Equal(t, 401, e.do("GET", "/flows", nil, map[string]string{"Cookie": "flowyard_editor=" + editor}).status)

	out := platform.do("POST", "/api/v1/auth/logout", nil, map[string]string{"Cookie": "__Host-flowyard_session=" + session})
	require.Equal(t, 204, out.status)
	cleared := strings.ToLower(strings.Join(out.header.Values("Set-Cookie"), "\n"))
	assert.Contains(t, cleared, "__host-flowyard_session=;")
	assert.Contains(t, cleared, "secure", "cleared with the attributes a browser needs to accept it")
	assert.Equal(t, 401, e.do("GET", "/flows", nil, map[string]string{"Cookie": "__Host-flowyard_editor=" + editor}).status, "signed out: the editor session ended too")
}

// cookieFrom reads a cookie an answer sets, checking that it is host-only, Secure, HttpOnly and for the whole path.
func cookieFrom(t *testing.T, a answer, name string) string {
	t.Helper()
	res := http.Response{Header: a.header}
	for _, c := range res.Cookies() {
		if c.Name == name {
			assert.True(t, c.Secure && c.HttpOnly, "%s is Secure and HttpOnly", name)
			assert.Equal(t, "/", c.Path, name)
			assert.Empty(t, c.Domain, "%s is host-only", name)
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", name, a.header.Values("Set-Cookie"))
	return ""
}

// TestEditorSurvivesNodeJSClosingIdleConnections loads a page's worth of requests at once, waits as long as
// Node.js keeps an idle keep-alive connection (5 s, its http.Server's keepAliveTimeout), and loads again: the
// proxy must not send the next request over the connections Node.js has closed.
func TestEditorSurvivesNodeJSClosingIdleConnections(t *testing.T) {
	t.Parallel()
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // long enough for a page's requests to need connections of their own
		_, _ = rw.Write([]byte("ok"))
	}))
	backend.Config.IdleTimeout = 5 * time.Second
	backend.Start()
	t.Cleanup(backend.Close)
	w := newInstanceWorld(t, "sqlite")
	in, _ := w.addInstance(t, "idle", backend.URL)
	e := openEditor(t, w.browsers["member"], in.ID)
	load := func() {
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.Equal(t, 200, e.do("GET", "/red/asset.js", nil, nil).status)
			}()
		}
		wg.Wait()
	}
	load()
	time.Sleep(5*time.Second + 500*time.Millisecond)
	load()
}
