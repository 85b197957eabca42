package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
)

// endpointsFlows are a member's flows on an instance's address: GET /data, echoes of the request's cookie and
// Authorization headers, an http-in route under Node-RED's admin root (what a member would deploy to read the
// token the editor proxy injects, were a request let through), and a websocket that echoes what it gets.
func endpointsFlows(marker string) []map[string]any {
	flows := []map[string]any{
		{"id": "tabx", "type": "tab", "label": "Endpoints"},
		{"id": "ind", "type": "http in", "z": "tabx", "url": "/data", "method": "get", "wires": []any{[]any{"fnd"}}},
		{"id": "fnd", "type": "function", "z": "tabx", "func": "msg.payload = '" + marker + "'; return msg;", "outputs": 1, "wires": []any{[]any{"outd"}}},
		{"id": "outd", "type": "http response", "z": "tabx", "wires": []any{}},
		{"id": "wsl", "type": "websocket-listener", "path": "/ws", "wholemsg": "false"},
		{"id": "wsin", "type": "websocket in", "z": "tabx", "server": "wsl", "client": "", "wires": []any{[]any{"wsout"}}},
		{"id": "wsout", "type": "websocket out", "z": "tabx", "server": "wsl", "client": "", "wires": []any{}},
	}
	for path, header := range map[string]string{"echo/cookie": "cookie", "echo/auth": "authorization", "admin/steal": "authorization"} {
		for _, n := range headerEchoFlow(path, header)[1:] {
			n = cloneNode(n)
			n["id"] = n["id"].(string) + "-" + strings.ReplaceAll(path, "/", "-")
			n["z"] = "tabx"
			if wires, ok := n["wires"].([]any); ok && len(wires) > 0 {
				next := wires[0].([]any)[0].(string)
				n["wires"] = []any{[]any{next + "-" + strings.ReplaceAll(path, "/", "-")}}
			}
			flows = append(flows, n)
		}
	}
	return flows
}

func cloneNode(n map[string]any) map[string]any {
	out := make(map[string]any, len(n))
	for k, v := range n {
		out[k] = v
	}
	return out
}

// appBrowser is a browser of an instance's address, http://<name>.apps.localhost:<port>, with a cookie jar of its
// own, reaching the API's listener at addr.
func appBrowser(t *testing.T, name, addr string) *browser {
	t.Helper()
	port := strings.Split(addr, ":")[1]
	return &browser{t: t, base: "http://" + name + ".apps.localhost:" + port, client: apitest.NewHostClient(addr)}
}

// signInToEndpoints opens a protected address as the signed-in browser p does: a link from the platform, spent
// on the address, which sets its cookie and sends the browser on to next.
func signInToEndpoints(t *testing.T, p *browser, app *browser, instanceID, next string) {
	t.Helper()
	link := p.mustJSON(201, "POST", "/api/v1/instances/"+instanceID+"/endpoints-link", map[string]any{"next": next})["url"].(string)
	a := app.follow(link)
	require.Equal(t, 303, a.status, a.body)
	require.True(t, strings.HasPrefix(a.header.Get("Location"), "/_flowyard/signed-in?next="), a.header.Get("Location"))
	a = app.do("GET", a.header.Get("Location"), nil, nil)
	require.Equal(t, 303, a.status, a.body)
	require.Equal(t, next, a.header.Get("Location"))
}

// TestInstanceAddressWithRealNodeRED checks an instance's own address end to end with a real Node-RED behind
// it: the flows' endpoints at the root of <name>.apps.localhost, the editor and admin API never reachable there
// (nor, through the editor proxy, a flow under the admin root), the platform's credentials never passed to a
// flow, the protection on and off, and another team's session, link and token refused.
func TestInstanceAddressWithRealNodeRED(t *testing.T) {
	t.Parallel()
	eachDialect(t, instanceAddressWithRealNodeRED)
}

func instanceAddressWithRealNodeRED(t *testing.T, dialect string) {
	w := newInstanceWorld(t, dialect, func(d *api.Deps) { d.Config.Live.Recheck = 50 * time.Millisecond })
	addr := hostOf(t, w.env.URL)
	port := freeRuntimePort(t)
	in, sec := w.addInstance(t, "alpha", testRuntimeURL(port))
	red := startNodeRED(t, w.env.URL, in, sec, port)
	status, body := red.call("POST", "/admin/flows", map[string]any{"flows": endpointsFlows("alpha-data")}, deployHeaders)
	require.Equal(t, 200, status, body)
	owner, member, dash, outsider := w.browsers["owner"], w.browsers["member"], w.browsers["dashboard"], w.browsers["outsider"]

	// Another team, with an instance of its own, whose owner is the outsider.
	otherTeam := outsider.mustJSON(201, "POST", "/api/v1/teams", map[string]any{"name": "Others", "slug": "others"})["id"].(string)
	otherApp := outsider.mustJSON(201, "POST", "/api/v1/teams/"+otherTeam+"/applications", map[string]any{"name": "theirs"})["id"].(string)
	bravo := newInstanceRow(t, w.env.Store, otherTeam, otherApp, "bravo")
	bravo.RuntimeURL = testRuntimeURL(port) // the same runtime: only the platform tells the two apart
	require.NoError(t, w.env.Store.InsertInstance(context.Background(), bravo))

	anon := appBrowser(t, "alpha", addr)

	t.Run("the instance URL is its own address, and the flows answer at its root", func(t *testing.T) {
		shown := member.mustJSON(200, "GET", "/api/v1/instances/"+in.ID, nil)
		assert.Equal(t, anon.base+"/", shown["url"])
		assert.Equal(t, false, shown["endpointsProtected"])
		require.Eventually(t, func() bool {
			a := anon.do("GET", "/data", nil, nil)
			return a.status == 200 && a.body == "alpha-data"
		}, 20*time.Second, 100*time.Millisecond, "GET /data at the root of the address")
		assert.Equal(t, 404, anon.do("GET", "/api/data", nil, nil).status, "no /api/ prefix any more")
		a := appBrowser(t, "nobody", addr).do("GET", "/data", nil, nil)
		assert.Equal(t, 404, a.status)
		assert.Contains(t, a.body, "no instance at this address")
	})

	t.Run("the editor and admin API are never reachable on the address", func(t *testing.T) {
		for _, path := range []string{"/admin/flows", "/admin/", "/admin", "/ADMIN/flows", "//admin/flows", "/%61dmin/flows",
			"/admin/settings", "/admin/steal", "/_flowyard/anything"} {
			a := anon.do("GET", path, nil, map[string]string{"Authorization": "Bearer " + sec.admin})
			assert.Equal(t, 404, a.status, "%s: %s", path, a.body)
			assert.NotContains(t, a.body, "flows", path)
		}
		assert.Equal(t, 400, anon.do("GET", "/x/../admin/flows", nil, nil).status, "dot segments are refused")
		// The token the editor proxy injects never reaches a flow, even one listening under the admin root: the
		// editor origin's /steal is Node-RED's /admin/steal, which the admin API does not handle.
		editor := openEditor(t, member, in.ID)
		a := editor.do("GET", "/steal", nil, nil)
		assert.Equal(t, 404, a.status, a.body)
		assert.NotContains(t, a.body, sec.admin)
		status, body := red.call("GET", "/admin/steal", nil, nil)
		assert.Equal(t, 404, status, "Node-RED itself answers 404 under its admin root: %s", body)
	})

	t.Run("the platform's credentials never reach a flow", func(t *testing.T) {
		for _, cookie := range []string{"flowyard_session=s1", "flowyard_editor=e1", "flowyard_endpoints=a1", "__Host-flowyard_session=s2"} {
			a := anon.do("GET", "/echo/cookie", nil, map[string]string{"Cookie": cookie + "; flow=mine"})
			require.Equal(t, 200, a.status, a.body)
			assert.Equal(t, "flow=mine", a.body, cookie)
		}
		a := anon.do("GET", "/echo/auth", nil, map[string]string{"Authorization": "Bearer fyu_a-personal-token"})
		assert.Equal(t, "none", a.body, "a Flowyard token is taken off")
		a = anon.do("GET", "/echo/auth", nil, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"})
		assert.Equal(t, "Basic dXNlcjpwYXNz", a.body, "a flow's own authorization goes through on an open address")
	})

	t.Run("a websocket of the flows through the address", func(t *testing.T) {
		conn := dialApp(t, addr, "ws://alpha.apps.localhost:"+strings.Split(addr, ":")[1]+"/ws", nil)
		require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("ping-through-address")))
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, msg, err := conn.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "ping-through-address", string(msg))
	})

	var token string
	t.Run("protection: only owners turn it on and make tokens", func(t *testing.T) {
		for _, who := range []string{"member", "viewer", "dashboard"} {
			a := w.browsers[who].do("PUT", "/api/v1/instances/"+in.ID+"/endpoints", map[string]any{"protected": true}, nil)
			assert.Equal(t, 403, a.status, who)
			a = w.browsers[who].do("POST", "/api/v1/instances/"+in.ID+"/endpoint-tokens", map[string]any{"name": "x"}, nil)
			assert.Equal(t, 403, a.status, who)
		}
		a := outsider.do("PUT", "/api/v1/instances/"+in.ID+"/endpoints", map[string]any{"protected": true}, nil)
		assert.Equal(t, 404, a.status, "another team's owner does not see the instance")
		a = owner.do("PUT", "/api/v1/instances/"+in.ID+"/endpoints", map[string]any{}, nil)
		assert.Equal(t, 400, a.status, a.body)
		assert.Contains(t, a.body, `"field":"protected"`)
		got := owner.mustJSON(200, "PUT", "/api/v1/instances/"+in.ID+"/endpoints", map[string]any{"protected": true})
		assert.Equal(t, true, got["protected"])
		created := owner.mustJSON(201, "POST", "/api/v1/instances/"+in.ID+"/endpoint-tokens", map[string]any{"name": "webhook caller"})
		token = created["token"].(string)
		assert.True(t, strings.HasPrefix(token, domain.TokenPrefixEndpoint), token)
		row, err := w.env.Store.GetEndpointToken(context.Background(), domain.HashToken(token), in.ID, time.Now())
		require.NoError(t, err)
		assert.NotContains(t, row.TokenHash, token, "stored hashed")
		listed := owner.mustJSON(200, "GET", "/api/v1/instances/"+in.ID+"/endpoint-tokens", nil)["items"].([]any)
		require.Len(t, listed, 1)
		assert.NotContains(t, listed[0], "token")
	})

	t.Run("a protected address asks for a sign-in or a token", func(t *testing.T) {
		a := anon.do("GET", "/data", nil, nil)
		assert.Equal(t, 401, a.status, a.body)
		assert.Contains(t, a.body, "endpoints_sign_in_required")
		a = anon.do("GET", "/data?x=1", nil, map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		require.Equal(t, 303, a.status)
		assert.Equal(t, w.env.URL+"/endpoints/"+in.ID+"/?next="+url.QueryEscape("/data?x=1"), a.header.Get("Location"),
			"a browser goes through the platform's sign-in")
		_, res, err := dialEditorComms(t, addr, "ws://alpha.apps.localhost:"+strings.Split(addr, ":")[1]+"/ws", nil)
		require.Error(t, err)
		assert.Equal(t, 401, res.StatusCode)

		a = anon.do("GET", "/echo/auth", nil, map[string]string{"Authorization": "Bearer " + token})
		require.Equal(t, 200, a.status, a.body)
		assert.Equal(t, "none", a.body, "the token opens the address and is not passed to the flow")
		for what, bad := range map[string]string{"a made-up token": "fyh_nothing", "the admin token": sec.admin, "a personal token": "fyu_x"} {
			assert.Equal(t, 401, anon.do("GET", "/data", nil, map[string]string{"Authorization": "Bearer " + bad}).status, what)
		}
		// The platform's session cookie means nothing on the address.
		assert.Equal(t, 401, anon.do("GET", "/data", nil, map[string]string{"Cookie": member.cookieHeader()}).status)
	})

	t.Run("a team member signs in through the platform, even with the dashboard role", func(t *testing.T) {
		for _, p := range []*browser{member, dash} {
			app := appBrowser(t, "alpha", addr)
			signInToEndpoints(t, p, app, in.ID, "/data")
			a := app.do("GET", "/data", nil, nil)
			require.Equal(t, 200, a.status, a.body)
			assert.Equal(t, "alpha-data", a.body)
			a = app.do("GET", "/echo/cookie", nil, nil)
			assert.Equal(t, "none", a.body, "the address's own cookie is not passed to the flow")
			conn := dialApp(t, addr, "ws://alpha.apps.localhost:"+strings.Split(addr, ":")[1]+"/ws", http.Header{"Cookie": {app.cookieHeader()}})
			require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("signed-in")))
			_, msg, err := conn.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, "signed-in", string(msg))
		}
		// A write or websocket riding on the session from another address's page (the same site) is refused.
		app := appBrowser(t, "alpha", addr)
		signInToEndpoints(t, member, app, in.ID, "/data")
		other := "http://bravo.apps.localhost:" + strings.Split(addr, ":")[1]
		a := app.do("POST", "/data", "x", map[string]string{"Origin": other, "Sec-Fetch-Site": "same-site"})
		assert.Equal(t, 403, a.status, a.body)
		_, res, err := dialEditorComms(t, addr, "ws://alpha.apps.localhost:"+strings.Split(addr, ":")[1]+"/ws",
			http.Header{"Cookie": {app.cookieHeader()}, "Origin": {other}})
		require.Error(t, err)
		assert.Equal(t, 403, res.StatusCode)
		assert.Equal(t, 200, app.do("GET", "/data", nil, map[string]string{"Sec-Fetch-Site": "same-site"}).status, "a read is a page's link")

		// A link is single-use, and the next path stays on the address.
		link := member.mustJSON(201, "POST", "/api/v1/instances/"+in.ID+"/endpoints-link", map[string]any{"next": "https://evil.example/"})["url"].(string)
		app = appBrowser(t, "alpha", addr)
		a = app.follow(link)
		require.Equal(t, 303, a.status)
		assert.Equal(t, "/_flowyard/signed-in?next=%2F", a.header.Get("Location"))
		assert.Equal(t, 401, app.follow(link).status, "a code works once")
		a = member.do("POST", "/api/v1/instances/"+in.ID+"/endpoints-link", map[string]any{}, map[string]string{"Authorization": "Bearer fyu_x"})
		assert.Equal(t, 401, a.status)
	})

	t.Run("another team's session, link and token are refused", func(t *testing.T) {
		a := outsider.do("POST", "/api/v1/instances/"+in.ID+"/endpoints-link", map[string]any{}, nil)
		assert.Equal(t, 404, a.status, "no link into another team's instance")
		// The outsider protects bravo (their own) and signs in there: that session and a bravo token are bravo's.
		outsider.mustJSON(200, "PUT", "/api/v1/instances/"+bravo.ID+"/endpoints", map[string]any{"protected": true})
		bravoToken := outsider.mustJSON(201, "POST", "/api/v1/instances/"+bravo.ID+"/endpoint-tokens", map[string]any{"name": "theirs"})["token"].(string)
		bravoApp := appBrowser(t, "bravo", addr)
		signInToEndpoints(t, outsider, bravoApp, bravo.ID, "/data")
		require.Equal(t, 200, bravoApp.do("GET", "/data", nil, nil).status, "bravo's own address opens for its owner")
		require.Equal(t, 200, bravoApp.do("GET", "/data", nil, map[string]string{"Authorization": "Bearer " + bravoToken}).status)

		// Replayed on alpha's address: the cookie (sent as alpha's) and the token are refused.
		var bravoCookie string
		for _, ck := range bravoApp.client.Jar.Cookies(mustURL(t, bravoApp.base)) {
			bravoCookie = ck.Name + "=" + ck.Value
		}
		require.NotEmpty(t, bravoCookie)
		assert.Equal(t, 401, anon.do("GET", "/data", nil, map[string]string{"Cookie": bravoCookie}).status, "bravo's session on alpha")
		assert.Equal(t, 401, anon.do("GET", "/data", nil, map[string]string{"Authorization": "Bearer " + bravoToken}).status, "bravo's token on alpha")
		// A link issued for bravo, spent on alpha's address, is refused (and spent).
		link := outsider.mustJSON(201, "POST", "/api/v1/instances/"+bravo.ID+"/endpoints-link", map[string]any{})["url"].(string)
		code := link[strings.Index(link, "code=")+5 : strings.Index(link, "&")]
		a = anon.do("GET", "/_flowyard/sign-in?code="+code, nil, nil)
		assert.Equal(t, 401, a.status, a.body)
		// Alpha's tokens and owner routes are out of the outsider's reach.
		assert.Equal(t, 404, outsider.do("GET", "/api/v1/instances/"+in.ID+"/endpoint-tokens", nil, nil).status)
		assert.Equal(t, 404, outsider.do("DELETE", "/api/v1/instances/"+bravo.ID+"/endpoint-tokens/"+domain.NewID(), nil, nil).status)
	})

	t.Run("a session ends with its platform session and a revoked token stops working", func(t *testing.T) {
		m := newBrowser(t, w.env.URL)
		m.login(w.emails["member"], testPassword)
		app := appBrowser(t, "alpha", addr)
		signInToEndpoints(t, m, app, in.ID, "/data")
		conn := dialApp(t, addr, "ws://alpha.apps.localhost:"+strings.Split(addr, ":")[1]+"/ws", http.Header{"Cookie": {app.cookieHeader()}})
		require.Equal(t, 200, app.do("GET", "/data", nil, nil).status)
		require.Equal(t, 204, m.do("POST", "/api/v1/auth/logout", nil, nil).status)
		assert.Equal(t, 401, app.do("GET", "/data", nil, nil).status, "signed out of the platform")
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, _, err := conn.ReadMessage()
		assert.Error(t, err, "the websocket ends with the session")

		listed := owner.mustJSON(200, "GET", "/api/v1/instances/"+in.ID+"/endpoint-tokens", nil)["items"].([]any)
		id := listed[0].(map[string]any)["id"].(string)
		assert.Equal(t, 204, owner.do("DELETE", "/api/v1/instances/"+in.ID+"/endpoint-tokens/"+id, nil, nil).status)
		assert.Equal(t, 401, anon.do("GET", "/data", nil, map[string]string{"Authorization": "Bearer " + token}).status)
		_, err = w.env.Store.GetTokenByHash(context.Background(), domain.HashToken(sec.runtime), time.Now(), "instance")
		assert.NoError(t, err, "the runtime token of the instance is untouched")
	})

	t.Run("protection off opens the address again", func(t *testing.T) {
		owner.mustJSON(200, "PUT", "/api/v1/instances/"+in.ID+"/endpoints", map[string]any{"protected": false})
		a := anon.do("GET", "/data", nil, nil)
		assert.Equal(t, 200, a.status, a.body)
	})

	t.Run("the dashboard role lists the team's dashboards and nothing else", func(t *testing.T) {
		items := dash.mustJSON(200, "GET", "/api/v1/teams/"+w.teamID+"/dashboards", nil)["items"].([]any)
		require.Len(t, items, 1)
		d := items[0].(map[string]any)
		assert.Equal(t, in.ID, d["instanceId"])
		assert.Equal(t, anon.base+"/dashboard", d["url"])
		assert.Equal(t, 404, outsider.do("GET", "/api/v1/teams/"+w.teamID+"/dashboards", nil, nil).status)
		assert.Equal(t, 403, dash.do("GET", "/api/v1/applications/"+w.appID+"/instances", nil, nil).status)
		assert.Equal(t, 403, dash.do("GET", "/api/v1/instances/"+in.ID+"/endpoint-tokens", nil, nil).status)
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// dialApp opens a websocket of an instance's address (the API's listener at addr), like a browser's page does.
func dialApp(t *testing.T, addr, wsURL string, header http.Header) *websocket.Conn {
	t.Helper()
	conn, _, err := dialEditorComms(t, addr, wsURL, header)
	require.NoError(t, err)
	return conn
}
