package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// ---- fixture: a team with one user per role, an application and instances inserted through the store ----

// instanceWorld is a running API (with a sealer) and a team whose users sign in with browser-like clients.
type instanceWorld struct {
	env      *apitest.Env
	sealer   *domain.Sealer
	browsers map[string]*browser // admin, owner, member, viewer, dashboard, outsider, anonymous
	emails   map[string]string
	teamID   string
	appID    string
}

// instanceSecrets are the raw tokens of an instance (the row holds them sealed).
type instanceSecrets struct {
	runtime, admin, read, credentialSecret string
}

func newInstanceWorld(t *testing.T, dialect string, mutate ...func(*api.Deps)) *instanceWorld {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, dialect, append([]func(*api.Deps){func(d *api.Deps) { d.Sealer = sealer }}, mutate...)...)
	w := &instanceWorld{env: env, sealer: sealer, browsers: map[string]*browser{}, emails: map[string]string{}}
	for _, name := range []string{"admin", "owner", "member", "viewer", "dashboard", "outsider"} {
		email := name + "@example.com"
		u, err := api.NewUser(email, name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		w.emails[name] = email
		w.browsers[name] = newBrowser(t, env.URL)
		w.browsers[name].login(email, testPassword)
	}
	w.browsers["anonymous"] = newBrowser(t, env.URL)
	owner := w.browsers["owner"]
	w.teamID = owner.mustJSON(201, "POST", "/api/v1/teams", map[string]any{"name": "Editors", "slug": "editors"})["id"].(string)
	for _, role := range []string{"member", "viewer", "dashboard"} {
		w.browsers["admin"].mustJSON(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": w.emails[role], "role": role})
	}
	w.appID = owner.mustJSON(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": "app"})["id"].(string)
	return w
}

// addInstance inserts an instance row and its runtime token, as provisioning would.
func (w *instanceWorld) addInstance(t *testing.T, name, runtimeURL string) (*storage.Instance, instanceSecrets) {
	t.Helper()
	ctx := context.Background()
	st := w.env.Store
	runtimeToken, runtimeHash := domain.NewToken(domain.TokenPrefixInstance)
	sec := instanceSecrets{runtime: runtimeToken, admin: randomToken(t), read: randomToken(t), credentialSecret: randomToken(t)}
	in := newInstanceRow(t, st, w.teamID, w.appID, name)
	in.CredentialSecret, in.AdminToken = w.sealer.Seal(sec.credentialSecret), w.sealer.Seal(sec.admin)
	in.ReadToken, in.RuntimeToken, in.RuntimeURL = w.sealer.Seal(sec.read), w.sealer.Seal(runtimeToken), runtimeURL
	require.NoError(t, st.InsertInstance(ctx, in))
	require.NoError(t, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: runtimeHash, Kind: "instance",
		Name: "runtime", OwnerType: "instance", OwnerID: in.ID, TeamID: &w.teamID}))
	return in, sec
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// runtimeClient calls the runtime API with an instance's runtime token.
func (w *instanceWorld) runtimeClient(t *testing.T, token string) *apitest.Client {
	c := w.env.Client(t)
	c.Bearer = token
	return c
}

// ---- browser: an HTTP client with a cookie jar that does not follow redirects ----

type browser struct {
	t      *testing.T
	base   string
	client *http.Client
	bearer string
}

type answer struct {
	status int
	header http.Header
	body   string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) login(email, password string) {
	b.t.Helper()
	b.mustJSON(200, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password})
}

// do sends a request; a non-string body is sent as JSON.
func (b *browser) do(method, path string, body any, headers map[string]string) answer {
	b.t.Helper()
	var reader io.Reader
	contentType := ""
	switch v := body.(type) {
	case nil:
	case string:
		reader, contentType = strings.NewReader(v), "text/plain"
	default:
		raw, err := json.Marshal(v)
		require.NoError(b.t, err)
		reader, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, b.base+path, reader)
	require.NoError(b.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if b.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+b.bearer)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host // net/http sends req.Host, never a Host header of its own
	}
	res, err := b.client.Do(req)
	require.NoError(b.t, err, "%s %s", method, path)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	return answer{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func (b *browser) mustJSON(want int, method, path string, body any) map[string]any {
	b.t.Helper()
	a := b.do(method, path, body, nil)
	require.Equal(b.t, want, a.status, "%s %s: %s", method, path, a.body)
	var out map[string]any
	require.NoError(b.t, json.Unmarshal([]byte(a.body), &out), a.body)
	return out
}

// cookieHeader returns the Cookie header the browser would send to the API.
func (b *browser) cookieHeader() string {
	req, _ := http.NewRequest("GET", b.base+"/", nil)
	var parts []string
	for _, c := range b.client.Jar.Cookies(req.URL) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// putDeclaringLength sends only the head of a PUT whose Content-Length is size and returns the status the
// server answers without waiting for the body (a client still writing a refused body may see a reset).
func putDeclaringLength(t *testing.T, rawURL, token string, size int) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, token, size)
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

// ---- a real Node-RED, configured as the local driver configures it ----

const testNodeRedVersion = "4.1.15" // runs on the machine's Node 20

var (
	stackOnce sync.Once
	stackRT   nodered.Runtime
	stackErr  error
)

// nodeRedRuntime installs (once, shared with the other packages' tests) and returns node-red 4.1.15.
func nodeRedRuntime(t *testing.T) nodered.Runtime {
	t.Helper()
	stackOnce.Do(func() {
		dir := os.Getenv("FLOWYARD_TEST_STACKS_DIR")
		if dir == "" {
			dir = "/tmp/flowyard-test-stacks"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stackRT, stackErr = nodered.EnsureStack(ctx, dir, testNodeRedVersion, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	if stackErr != nil {
		t.Fatalf("node-red %s is needed for this test and could not be installed: %v", testNodeRedVersion, stackErr)
	}
	return stackRT
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

func freePortOn(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testRuntimeHost is where the tests' Node-RED listens: like the local driver's instances, on a loopback
// address of its own, never the platform's 127.0.0.1 (or localhost), whose cookies browsers would send it.
const testRuntimeHost = "127.1.255.254"

// freeRuntimePort is a free port on testRuntimeHost.
func freeRuntimePort(t *testing.T) int {
	t.Helper()
	return freePortOn(t, testRuntimeHost)
}

// testRuntimeURL is the runtime URL of a test's Node-RED on port.
func testRuntimeURL(port int) string {
	return "http://" + net.JoinHostPort(testRuntimeHost, strconv.Itoa(port))
}

func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// nodeRED is one Node-RED process started by a test.
type nodeRED struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string // testRuntimeURL(port)
	admin   string // the "*" token
	output  *proctest.Output
	exited  chan struct{}
	exitErr error
}

// startNodeRED runs Node-RED for the instance with the storage plugin pointed at the API, the admin API at
// /admin/ and http-in at the root, the admin and read tokens accepted, and the editor on. It is stopped (by PID)
// when the test ends.
func startNodeRED(t *testing.T, forgeURL string, in *storage.Instance, sec instanceSecrets, port int) *nodeRED {
	t.Helper()
	rt := nodeRedRuntime(t)
	dir := t.TempDir()
	plugin, err := nodered.WriteStoragePlugin(dir)
	require.NoError(t, err)
	js, err := nodered.RenderSettings(nodered.SettingsParams{
		Port: port, Host: testRuntimeHost, HTTPAdminRoot: "/admin/", HTTPNodeRoot: "/",
		CredentialSecret: sec.credentialSecret, StorageModule: plugin, Title: in.Name,
		AdminTokens: map[string]string{tokenDigest(sec.admin): "*", tokenDigest(sec.read): "read"},
	})
	require.NoError(t, err)
	userDir := filepath.Join(dir, "userdir")
	require.NoError(t, os.MkdirAll(userDir, 0o755))
	settings := filepath.Join(dir, "settings.js")
	require.NoError(t, os.WriteFile(settings, js, 0o600))

	p := &nodeRED{t: t, url: testRuntimeURL(port), admin: sec.admin, output: &proctest.Output{}, exited: make(chan struct{})}
	p.cmd = exec.Command(rt.NodeBin, rt.RedJS, "-u", userDir, "-s", settings)
	p.cmd.Env = append([]string{"PATH=" + filepath.Dir(rt.NodeBin) + ":/usr/bin:/bin", "HOME=" + userDir},
		nodered.StoragePluginEnv(forgeURL, in.ID, sec.runtime)...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start(), "start node-red")
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	p.waitReady()
	return p
}

// stop ends the process by its PID: SIGTERM, then SIGKILL if it hangs.
func (p *nodeRED) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls GET /admin/flows/state until the flows run (docs/node-red.md §2.3).
func (p *nodeRED) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.t.Fatalf("node-red exited before it was ready (%v):\n%s", p.exitErr, p.output.String())
		default:
		}
		status, body := p.call("GET", "/admin/flows/state", nil, nil)
		if status == 200 && strings.Contains(body, `"state":"start"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("node-red not ready within 45 s:\n%s", p.output.String())
}

// call sends a request straight to Node-RED with the admin token; status 0 is a transport error.
func (p *nodeRED) call(method, path string, body any, headers map[string]string) (int, string) {
	var reader io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, p.url+path, reader)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+p.admin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

// ---- runtime API tests ----

func TestRuntimeDocuments(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newInstanceWorld(t, dialect, func(d *api.Deps) { d.Config.BodyLimit = 4 << 20 })
		in, sec := w.addInstance(t, "docs", "")
		rt := w.runtimeClient(t, sec.runtime)
		base := "/api/v1/runtime/instances/" + in.ID + "/"

		for doc, empty := range map[string]string{"flows": "[]", "credentials": "{}", "settings": "{}", "sessions": "{}"} {
			r := rt.Must(200, "GET", base+doc, nil)
			assert.Equal(t, empty, string(r.Raw), "%s before anything is stored", doc)
			assert.Contains(t, r.Header.Get("Content-Type"), "application/json")
		}

		flows := `[{"id":"tab1","type":"tab","label":"Flow 1"},{"id":"n1","type":"inject","z":"tab1","name":"ünïcode \u2603"}]`
		rt.Must(204, "PUT", base+"flows", flows)
		assert.Equal(t, flows, string(rt.Must(200, "GET", base+"flows", nil).Raw), "flows come back as stored")
		creds := `{"$":"0123abcd"}`
		rt.Must(204, "PUT", base+"credentials", creds)
		assert.Equal(t, creds, string(rt.Must(200, "GET", base+"credentials", nil).Raw))
		rt.Must(204, "PUT", base+"settings", `{"_credentialSecret":"x","users":{}}`)
		rt.Must(204, "PUT", base+"sessions", `{}`)
		stored, err := w.env.Store.GetInstanceStorage(context.Background(), in.ID, storage.StorageFlows)
		require.NoError(t, err)
		assert.Equal(t, flows, stored)

		bad := []struct{ doc, body, code string }{
			{"flows", `{"a":1}`, "invalid_document"},
			{"credentials", `[1]`, "invalid_document"},
			{"settings", `"text"`, "invalid_document"},
			{"sessions", `null`, "invalid_document"},
			{"flows", `[{"id":`, "invalid_json"},
			{"flows", ` `, "invalid_json"},
		}
		for _, c := range bad {
			r := rt.Do("PUT", base+c.doc, c.body)
			assert.Equal(t, 400, r.Status, "%s %q: %s", c.doc, c.body, r.Raw)
			assert.Equal(t, c.code, r.String("code"), "%s %q", c.doc, c.body)
			assert.NotEmpty(t, r.String("message"))
		}
		assert.Equal(t, flows, string(rt.Must(200, "GET", base+"flows", nil).Raw), "a refused write changes nothing")

		// Settings and sessions are capped at 1 MiB; flows and credentials only by the body limit (4 MiB here).
		big := `{"k":"` + strings.Repeat("x", 1<<20) + `"}`
		for _, doc := range []string{"settings", "sessions"} {
			r := rt.Do("PUT", base+doc, big)
			assert.Equal(t, 413, r.Status, doc)
			assert.Equal(t, "body_too_large", r.String("code"), doc)
		}
		rt.Must(204, "PUT", base+"credentials", big)
		bigFlows := "[" + strings.Repeat(`{"id":"x"},`, 2<<20/11) + "{}]"
		rt.Must(204, "PUT", base+"flows", bigFlows)
		assert.Len(t, rt.Must(200, "GET", base+"flows", nil).Raw, len(bigFlows))
		assert.Equal(t, 413, putDeclaringLength(t, w.env.URL+base+"flows", sec.runtime, 5<<20), "beyond the body limit")
		r := rt.Do("PUT", base+"flows", `[]`)
		assert.Equal(t, 204, r.Status, "an empty flow list is a valid deploy: %s", r.Raw)
	})
}

func TestRuntimeAuthentication(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newInstanceWorld(t, dialect)
		a, secA := w.addInstance(t, "inst-a", "")
		b, secB := w.addInstance(t, "inst-b", "")
		pathA := "/api/v1/runtime/instances/" + a.ID + "/flows"

		w.runtimeClient(t, secA.runtime).Must(200, "GET", pathA, nil)
		assert.Equal(t, 404, w.runtimeClient(t, secB.runtime).Do("GET", pathA, nil).Status, "another instance's token")
		assert.Equal(t, 404, w.runtimeClient(t, secB.runtime).Do("PUT", pathA, `[]`).Status)
		assert.Equal(t, 404, w.runtimeClient(t, secA.runtime).Do("GET", "/api/v1/runtime/instances/no-such-instance/flows", nil).Status)

		unknown, _ := domain.NewToken(domain.TokenPrefixInstance)
		for name, token := range map[string]string{"none": "", "unknown runtime token": unknown, "admin token of the instance": secA.admin} {
			r := w.runtimeClient(t, token).Do("GET", pathA, nil)
			assert.Equal(t, 401, r.Status, name)
			assert.Equal(t, "unauthorized", r.String("code"), name)
			assert.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer", name)
		}

		// A user's session or personal token does not open the runtime API, even the platform admin's.
		owner := w.browsers["owner"]
		assert.Equal(t, 401, owner.do("GET", pathA, nil, nil).status, "owner's session")
		assert.Equal(t, 401, w.browsers["admin"].do("GET", pathA, nil, nil).status, "admin's session")
		pat := owner.mustJSON(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"})["token"].(string)
		assert.Equal(t, 401, w.runtimeClient(t, pat).Do("GET", pathA, nil).Status, "personal access token")

		// And the runtime token opens nothing else.
		assert.Equal(t, 401, w.runtimeClient(t, secA.runtime).Do("GET", "/api/v1/teams", nil).Status)

		// A revoked token stops working at once.
		require.NoError(t, w.env.Store.DeleteTokensOfOwner(context.Background(), "instance", b.ID))
		assert.Equal(t, 401, w.runtimeClient(t, secB.runtime).Do("GET", "/api/v1/runtime/instances/"+b.ID+"/flows", nil).Status)
	})
}

func TestRuntimeLibrary(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newInstanceWorld(t, dialect)
		in, sec := w.addInstance(t, "lib", "")
		rt := w.runtimeClient(t, sec.runtime)
		lib := "/api/v1/runtime/instances/" + in.ID + "/library/"

		rt.Must(204, "PUT", lib+"functions", map[string]any{"name": "utils/add.js", "meta": map[string]any{"name": "add", "outputs": 1}, "body": "return msg;"})
		rt.Must(204, "PUT", lib+"functions", map[string]any{"name": "/top.js", "meta": map[string]any{"name": "top"}, "body": "top"})
		rt.Must(204, "PUT", lib+"functions", map[string]any{"name": "utils/deep/x.js", "body": "x"})
		rt.Must(204, "PUT", lib+"functions", map[string]any{"name": "ünï/z.js", "body": "z"})
		rt.Must(204, "PUT", lib+"flows", map[string]any{"name": "saved", "meta": map[string]any{}, "body": `[{"id":"a"}]`})

		entry := rt.Must(200, "GET", lib+"functions?name=utils/add.js", nil)
		assert.Equal(t, "return msg;", string(entry.Raw))
		assert.Contains(t, entry.Header.Get("Content-Type"), "text/plain")
		assert.Equal(t, "top", string(rt.Must(200, "GET", lib+"functions?name=top.js", nil).Raw), "leading slash ignored")
		assert.Equal(t, `[{"id":"a"}]`, string(rt.Must(200, "GET", lib+"flows?name=saved", nil).Raw), "flows saved as saved.json and found without .json")
		assert.Equal(t, `[{"id":"a"}]`, string(rt.Must(200, "GET", lib+"flows?name=saved.json", nil).Raw))

		listing := func(name string) string {
			r := rt.Must(200, "GET", lib+"functions?name="+name, nil)
			assert.Contains(t, r.Header.Get("Content-Type"), "application/json")
			return string(r.Raw)
		}
		assert.JSONEq(t, `["utils","ünï",{"fn":"top.js","name":"top"}]`, listing(""))
		assert.JSONEq(t, `["deep",{"fn":"add.js","name":"add","outputs":1}]`, listing("utils/"))
		assert.JSONEq(t, `["deep",{"fn":"add.js","name":"add","outputs":1}]`, listing("utils"), "a folder named without the slash")
		assert.JSONEq(t, `[{"fn":"z.js"}]`, listing("%C3%BCn%C3%AF/"), "non-ASCII folder")

		assert.Equal(t, 404, rt.Do("GET", lib+"functions?name=missing.js", nil).Status)
		assert.Equal(t, 404, rt.Do("GET", lib+"functions?name=nothing/", nil).Status, "an empty folder (the plugin answers [])")
		assert.Equal(t, 404, rt.Do("GET", lib+"templates?name=", nil).Status)

		for name, c := range map[string]struct {
			method, path string
			body         any
		}{
			"dot-dot name":   {"GET", lib + "functions?name=utils/../x", nil},
			"folder on save": {"PUT", lib + "functions", map[string]any{"name": "utils/", "body": "x"}},
			"empty segment":  {"PUT", lib + "functions", map[string]any{"name": "a//b", "body": "x"}},
			"bad type":       {"GET", lib + "fun%20ctions?name=x", nil},
			"unknown field":  {"PUT", lib + "functions", map[string]any{"name": "a", "body": "x", "extra": 1}},
			"body not text":  {"PUT", lib + "functions", map[string]any{"name": "a", "body": 1}},
		} {
			assert.Equal(t, 400, rt.Do(c.method, c.path, c.body).Status, name)
		}
		_, other := w.addInstance(t, "lib-other", "")
		assert.Equal(t, 404, w.runtimeClient(t, other.runtime).Do("GET", lib+"functions?name=utils/add.js", nil).Status)
	})
}

// TestRuntimeWithRealNodeRED deploys flows with credentials and a library entry through a real Node-RED's
// admin API, restarts it on an empty userDir and gets everything back from the platform.
func TestRuntimeWithRealNodeRED(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "postgres")
	in, sec := w.addInstance(t, "e2e-runtime", "")
	red := startNodeRED(t, w.env.URL, in, sec, freeRuntimePort(t))

	flows := []map[string]any{
		{"id": "tab1", "type": "tab", "label": "Flow 1"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/hello", "method": "get", "wires": []any{[]any{"fn1"}}},
		{"id": "fn1", "type": "function", "z": "tab1", "func": "msg.payload = 'hello from the platform'; return msg;", "outputs": 1, "wires": []any{[]any{"out1"}}},
		{"id": "out1", "type": "http response", "z": "tab1", "wires": []any{}},
		{"id": "req1", "type": "http request", "z": "tab1", "method": "GET", "url": "http://127.0.0.1:1/", "authType": "basic",
			"credentials": map[string]any{"user": "alice", "password": "s3cr3t-pw"}, "wires": []any{}},
	}
	status, body := red.call("POST", "/admin/flows", map[string]any{"flows": flows}, map[string]string{"Node-RED-API-Version": "v2"})
	require.Equal(t, 200, status, body)
	status, body = red.call("POST", "/admin/library/local/functions/shared/greet.js", map[string]any{"name": "greet", "text": "return 'hi';"}, nil)
	require.Equal(t, 204, status, body)

	ctx := context.Background()
	storedFlows, err := w.env.Store.GetInstanceStorage(ctx, in.ID, storage.StorageFlows)
	require.NoError(t, err)
	assert.Contains(t, storedFlows, `"fn1"`)
	assert.NotContains(t, storedFlows, "s3cr3t-pw", "credentials never sit in the flows")
	storedCreds, err := w.env.Store.GetInstanceStorage(ctx, in.ID, storage.StorageCredentials)
	require.NoError(t, err)
	assert.Contains(t, storedCreds, `"$"`, "credentials arrive encrypted with the instance's secret")
	assert.NotContains(t, storedCreds, "s3cr3t-pw")
	entry, err := w.env.Store.GetLibraryEntry(ctx, in.ID, "functions", "shared/greet.js")
	require.NoError(t, err)
	assert.Equal(t, "return 'hi';", entry.Body)

	red.stop()
	red = startNodeRED(t, w.env.URL, in, sec, freeRuntimePort(t)) // a new, empty userDir

	status, body = red.call("GET", "/admin/flows", nil, nil)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "hello from the platform")
	status, body = red.call("GET", "/hello", nil, nil)
	assert.Equal(t, 200, status)
	assert.Equal(t, "hello from the platform", body, "the flows run after the restart")
	status, body = red.call("GET", "/admin/credentials/http-request/req1", nil, nil)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"user":"alice","has_password":true}`, body, "credentials decrypted after the restart")
	status, body = red.call("GET", "/admin/library/local/functions/", nil, nil)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `["shared"]`, body)
	status, body = red.call("GET", "/admin/library/local/functions/shared/greet.js", nil, nil)
	assert.Equal(t, 200, status)
	assert.Equal(t, "return 'hi';", body)
	assert.NotContains(t, red.output.String(), "flowyard storage:", "the plugin logged no retries or failures")
}
