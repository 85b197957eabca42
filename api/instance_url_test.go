package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// TestInstanceURLGetsNoSessionCookie checks that the instance URL the API shows (the instance's own address,
// <name>.<apps domain> on the platform's port, which the API proxies to the runtime) is not a host the platform's
// session cookie goes to: cookies ignore ports, so a URL on the platform's own host would hand a member's http-in
// flow the session of everyone who opens it. The platform is reached both as 127.0.0.1 and as localhost; the jar is net/http/cookiejar holding the
// platform's real Set-Cookie, and a real Node-RED behind the shown URL reports the cookies it gets. (That nothing
// answers on 127.0.0.1:<port> is the driver's part: drivers/local TestInstanceGetsNoPlatformCookie.)
func TestInstanceURLGetsNoSessionCookie(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "sqlite")
	port := freeRuntimePort(t)
	in, sec := w.addInstance(t, "cookie-jar", testRuntimeURL(port))
	red := startNodeRED(t, w.env.URL, in, sec, port)
	status, body := red.call("POST", "/admin/flows", map[string]any{"flows": headerEchoFlow("cookies", "cookie")},
		map[string]string{"Node-RED-API-Version": "v2"})
	require.Equal(t, 200, status, body)

	shown := w.browsers["member"].mustJSON(200, "GET", "/api/v1/instances/"+in.ID, nil)["url"].(string)
	assert.Equal(t, "http://cookie-jar.apps.localhost:"+strings.Split(hostOf(t, w.env.URL), ":")[1]+"/", shown)
	instanceURL, err := url.Parse(shown)
	require.NoError(t, err)

	for _, platformHost := range []string{"127.0.0.1", "localhost"} {
		base := strings.Replace(w.env.URL, "127.0.0.1", platformHost, 1)
		member := newBrowser(t, base)
		signIn := member.do("POST", "/api/v1/auth/login", map[string]string{"email": w.emails["member"], "password": testPassword}, nil)
		require.Equal(t, 200, signIn.status, signIn.body)
		setCookie := strings.Join(signIn.header.Values("Set-Cookie"), "\n")
		require.Contains(t, setCookie, "flowyard_session=")
		assert.NotContains(t, strings.ToLower(setCookie), "domain=", "the session cookie is host-only")
		platformURL, err := url.Parse(base + "/")
		require.NoError(t, err)
		require.NotEmpty(t, member.client.Jar.Cookies(platformURL), "the jar holds the session for %s", platformHost)

		assert.Empty(t, member.client.Jar.Cookies(instanceURL), "signed in at %s, the jar sends nothing to %s", platformHost, shown)
		browser := &http.Client{Jar: member.client.Jar, Timeout: 10 * time.Second,
			Transport: &http.Transport{DialContext: apitest.DialTo(hostOf(t, w.env.URL))}}
		var seen string
		require.Eventually(t, func() bool {
			res, err := browser.Get(shown + "cookies")
			if err != nil {
				return false
			}
			defer res.Body.Close()
			raw, err := io.ReadAll(res.Body)
			seen = string(raw)
			return err == nil && res.StatusCode == 200
		}, 20*time.Second, 100*time.Millisecond, "the shown URL reaches the instance's http-in routes")
		assert.Equal(t, "none", seen, "the member's flow gets no cookie from a browser signed in at %s", platformHost)
	}
}
