package api_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/web"
)

func fetch(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A bare transport: no transparent gzip, so the test sees what the server sent.
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

// TestDashboardIsServed checks how the API serves the web dashboard: index.html for the app's own paths with
// every asset under this build's hashed prefix, assets cached for a year with ETags and gzip, and the API's
// JSON 404 left alone for unknown /api/ paths and other methods.
func TestDashboardIsServed(t *testing.T) {
	env := apitest.Start(t, "sqlite")
	for _, path := range []string{"/", "/signin", "/teams/acme/applications/06h1wvgtn6yqn6aak9nyq3b39g"} {
		res, body := fetch(t, "GET", env.URL+path, nil)
		require.Equal(t, 200, res.StatusCode, path)
		assert.Contains(t, res.Header.Get("Content-Type"), "text/html", path)
		assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"), path)
		assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
		assert.Contains(t, body, `src="`+web.AssetPrefix()+`app.js"`, path)
		assert.NotContains(t, body, "{{ASSETS}}", path)
	}

	asset := env.URL + web.AssetPrefix() + "app.js"
	res, body := fetch(t, "GET", asset, nil)
	require.Equal(t, 200, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Equal(t, "public, max-age=31536000, immutable", res.Header.Get("Cache-Control"))
	assert.Contains(t, body, "startRouter")
	etag := res.Header.Get("ETag")
	require.NotEmpty(t, etag)
	res, _ = fetch(t, "GET", asset, map[string]string{"If-None-Match": etag})
	assert.Equal(t, 304, res.StatusCode, "a cached copy is revalidated by ETag")

	res, zipped := fetch(t, "GET", asset, map[string]string{"Accept-Encoding": "gzip, br"})
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	assert.NotEqual(t, etag, res.Header.Get("ETag"), "the gzipped variant has its own ETag")
	zr, err := gzip.NewReader(strings.NewReader(zipped))
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, body, string(unzipped))

	res, _ = fetch(t, "GET", env.URL+"/assets/0123456789ab/app.js", nil)
	assert.Equal(t, 200, res.StatusCode, "a page of an older build still gets the file")
	assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"), "but not cached as if it were that build's")

	for _, c := range []struct{ method, path string }{
		{"GET", web.AssetPrefix() + "nope.js"}, {"GET", web.AssetPrefix() + "index.html"},
		{"GET", "/api/v1/no-such-route"}, {"GET", "/api/nothing"}, {"POST", "/teams/acme"},
	} {
		res, body := fetch(t, c.method, env.URL+c.path, nil)
		assert.Equal(t, 404, res.StatusCode, c.path)
		assert.Contains(t, body, `"route_not_found"`, c.path)
	}
}

// TestSecurityHeadersOnEveryPlatformAnswer checks that every answer of the platform's origin, pages, assets, API
// answers and errors alike, forbids what the platform does not do: the dashboard's page runs only its own
// scripts and styles, everything else loads nothing; no answer may be framed, sniffed, embedded by another
// origin or keep a handle on the window that opened it. Behind TLS, browsers are told to stay on HTTPS.
func TestSecurityHeadersOnEveryPlatformAnswer(t *testing.T) {
	env := apitest.Start(t, "sqlite")
	dashboardCSP := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	apiCSP := "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	for _, c := range []struct{ method, path, csp string }{
		{"GET", "/", dashboardCSP}, {"GET", "/editor/06h1wvgtn6yqn6aak9nyq3b39g/", dashboardCSP},
		{"GET", web.AssetPrefix() + "app.js", apiCSP}, {"GET", "/api/v1/openapi.json", apiCSP}, {"GET", "/healthz", apiCSP},
		{"GET", "/api/v1/teams", apiCSP}, {"GET", "/api/v1/no-such-route", apiCSP}, {"POST", "/api/v1/auth/login", apiCSP},
		{"GET", "/editor/06h1wvgtn6yqn6aak9nyq3b39g/flows", apiCSP},
	} {
		res, _ := fetch(t, c.method, env.URL+c.path, nil)
		what := c.method + " " + c.path
		assert.Equal(t, c.csp, res.Header.Get("Content-Security-Policy"), what)
		assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), what)
		assert.Equal(t, "DENY", res.Header.Get("X-Frame-Options"), what)
		assert.Equal(t, "same-origin", res.Header.Get("Referrer-Policy"), what)
		assert.Equal(t, "same-origin", res.Header.Get("Cross-Origin-Opener-Policy"), what)
		assert.Equal(t, "same-origin", res.Header.Get("Cross-Origin-Resource-Policy"), what)
		assert.Empty(t, res.Header.Get("Strict-Transport-Security"), "%s: not over plain HTTP", what)
	}
	res, _ := fetch(t, "GET", env.URL+"/editor/06h1wvgtn6yqn6aak9nyq3b39g/flows", nil)
	assert.Equal(t, 404, res.StatusCode, "nothing of an editor is served on the platform's origin")

	tls := apitest.Start(t, "sqlite", func(d *api.Deps) { d.Config.PublicURL = "https://flowyard.example.com" })
	res, _ = fetch(t, "GET", tls.URL+"/api/v1/openapi.json", nil)
	assert.Equal(t, "max-age=31536000", res.Header.Get("Strict-Transport-Security"))
}
