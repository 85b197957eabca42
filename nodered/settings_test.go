package nodered

import (
	"bufio"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadSettingsInNode requires the rendered file with node and reports what
// Node-RED would see, including what adminAuth.tokens answers for tokens.
func loadSettingsInNode(t *testing.T, js []byte, tokens ...string) (settings map[string]any, users []any, kinds map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.js")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
const s = require(process.argv[1]);
const kinds = {tokens: typeof s.adminAuth.tokens, handler: typeof s.logging.console.handler, storageModule: typeof s.storageModule,
    persistentContext: typeof (s.contextStorage.persistent || {}).module};
Promise.all(process.argv.slice(2).map((tok) => s.adminAuth.tokens(tok))).then((users) => {
    console.log(JSON.stringify({settings: s, users: users, kinds: kinds}));
});`
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to load settings.js: %v", err)
	}
	out, err := exec.Command(nodeBin, append([]string{"-e", script, path}, tokens...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node could not load the rendered settings.js: %v\n%s\n---\n%s", err, out, js)
	}
	var result struct {
		Settings map[string]any    `json:"settings"`
		Users    []any             `json:"users"`
		Kinds    map[string]string `json:"kinds"`
	}
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return result.Settings, result.Users, result.Kinds
}

func TestRenderSettingsLoadsInNode(t *testing.T) {
	adminToken, adminDigest := newToken(t)
	viewerToken, viewerDigest := newToken(t)
	hostileTitle := "Team \"A\" </script> <img src=x onerror=alert(1)> `${process.exit(3)}` \u2028 'x'"
	pluginPath, err := WriteStoragePlugin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	js, err := RenderSettings(SettingsParams{
		Port:             18999,
		HTTPAdminRoot:    "/admin",
		HTTPNodeRoot:     "/api",
		CredentialSecret: "cred'\"secret",
		AdminTokens:      map[string]string{adminDigest: "*", viewerDigest: "read"},
		TokenHeader:      "X-Flowyard-Token",
		StorageModule:    pluginPath,
		DisableEditor:    true,
		PaletteAllowList: []string{"node-red-contrib-*"},
		EnvVarExcludes:   []string{"MY_SECRET"},
		Title:            hostileTitle,
		Settings: map[string]any{
			"uiPort":                1,                                     // platform-owned: ignored
			"adminAuth":             map[string]any{"type": "credentials"}, // platform-owned: ignored
			"httpStatic":            "/srv/static",
			"nodeCloseTimeout":      3000,
			"functionGlobalContext": map[string]any{"answer": 42},
			"editorTheme":           map[string]any{"projects": map[string]any{"enabled": true}, "palette": map[string]any{"catalogues": []any{"https://catalogue.example/catalogue.json"}}},
			"externalModules":       map[string]any{"palette": map[string]any{"allowUpload": false, "allowList": []any{"evil"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{adminToken, viewerToken} {
		if strings.Contains(string(js), secret) {
			t.Fatal("settings.js contains a raw admin token")
		}
	}
	s, users, kinds := loadSettingsInNode(t, js, adminToken, viewerToken, "wrong-token", "")
	want := map[string]any{
		"uiPort": 18999.0, "uiHost": "127.0.0.1", "httpAdminRoot": "/admin", "httpNodeRoot": "/api",
		"credentialSecret": "cred'\"secret", "disableEditor": true, "httpStatic": "/srv/static", "nodeCloseTimeout": 3000.0,
		"runtimeState": map[string]any{"enabled": true, "ui": false},
		"telemetry":    map[string]any{"enabled": false, "updateNotification": false},
		"contextStorage": map[string]any{"default": "memory", "memory": map[string]any{"module": "memory"},
			"persistent": map[string]any{"config": map[string]any{"flushInterval": float64(ContextFlushSeconds)}}},
		"envVarExcludes":  []any{EnvInstanceToken, "MY_SECRET"},
		"adminAuth":       map[string]any{"tokenHeader": "x-flowyard-token"},
		"logging":         map[string]any{"console": map[string]any{"level": "info", "metrics": false, "audit": true}},
		"storageModule":   map[string]any{},
		"externalModules": map[string]any{"autoInstall": false, "palette": map[string]any{"allowUpload": false, "allowList": []any{"node-red-contrib-*"}, "denyList": []any{"*"}}},
		"editorTheme": map[string]any{"tours": false, "projects": map[string]any{"enabled": false},
			"page": map[string]any{"title": hostileTitle}, "header": map[string]any{"title": html.EscapeString(hostileTitle)},
			"palette": map[string]any{"catalogues": []any{"https://catalogue.example/catalogue.json"}}},
		"functionGlobalContext": map[string]any{"answer": 42.0},
	}
	for key, value := range want {
		if !reflect.DeepEqual(s[key], value) {
			t.Errorf("%s = %#v, want %#v", key, s[key], value)
		}
	}
	if kinds["tokens"] != "function" || kinds["handler"] != "function" || kinds["storageModule"] != "object" || kinds["persistentContext"] != "function" {
		t.Errorf("kinds %v", kinds)
	}
	wantUsers := []any{
		map[string]any{"username": "flowyard", "permissions": "*"},
		map[string]any{"username": "flowyard", "permissions": "read"},
		nil, nil,
	}
	if !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("tokens() answered %v, want %v", users, wantUsers)
	}
}

func TestRenderSettingsDefaults(t *testing.T) {
	js, err := RenderSettings(SettingsParams{Port: 1880, CredentialSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	s, users, _ := loadSettingsInNode(t, js, "anything")
	for key, value := range map[string]any{
		"uiHost": "127.0.0.1", "httpAdminRoot": "/", "httpNodeRoot": "/", "disableEditor": false,
		"adminAuth": map[string]any{}, "envVarExcludes": []any{EnvInstanceToken},
		"contextStorage": map[string]any{"default": "memory", "memory": map[string]any{"module": "memory"}}, // no persistent store without the plugin
	} {
		if !reflect.DeepEqual(s[key], value) {
			t.Errorf("%s = %#v, want %#v", key, s[key], value)
		}
	}
	if _, ok := s["storageModule"]; ok {
		t.Error("storageModule set without StorageModule")
	}
	if users[0] != nil {
		t.Errorf("no admin tokens, yet a token was accepted: %v", users[0])
	}
}

func TestRenderSettingsRejectsBadParams(t *testing.T) {
	_, digest := newToken(t)
	ok := SettingsParams{Port: 1880, CredentialSecret: "s", AdminTokens: map[string]string{digest: "*"}}
	cases := map[string]func(p *SettingsParams){
		"port zero":          func(p *SettingsParams) { p.Port = 0 },
		"port too big":       func(p *SettingsParams) { p.Port = 70000 },
		"no secret":          func(p *SettingsParams) { p.CredentialSecret = "" },
		"raw token as key":   func(p *SettingsParams) { p.AdminTokens = map[string]string{"my-token": "*"} },
		"uppercase digest":   func(p *SettingsParams) { p.AdminTokens = map[string]string{strings.ToUpper(digest): "*"} },
		"bad permission":     func(p *SettingsParams) { p.AdminTokens = map[string]string{digest: "write"} },
		"relative root":      func(p *SettingsParams) { p.HTTPAdminRoot = "admin" },
		"root with quote":    func(p *SettingsParams) { p.HTTPNodeRoot = `/api"` },
		"relative storage":   func(p *SettingsParams) { p.StorageModule = "plugin.js" },
		"bad token header":   func(p *SettingsParams) { p.TokenHeader = "x token" },
		"unknown log level":  func(p *SettingsParams) { p.LogLevel = "verbose" },
		"non-JSON settings":  func(p *SettingsParams) { p.Settings = map[string]any{"f": func() {}} },
		"non-finite setting": func(p *SettingsParams) { p.Settings = map[string]any{"n": map[string]any{"x": nan()}} },
	}
	for name, mutate := range cases {
		p := ok
		mutate(&p)
		if _, err := RenderSettings(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := RenderSettings(ok); err != nil {
		t.Fatalf("valid params refused: %v", err)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestNodeRedRunsWithRenderedSettings(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	viewerToken, viewerDigest := newToken(t)
	red := startNodeRED(t, rt, t.TempDir(), redOptions{params: SettingsParams{
		HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api", DisableEditor: true, Title: "settings test",
		AdminTokens: map[string]string{viewerDigest: "read"},
	}})
	red.waitReady()
	status, body := red.admin("GET", "/flows/state", nil, nil)
	if status != 200 || body != `{"state":"start"}` {
		t.Fatalf("GET /flows/state: %d %s", status, body)
	}
	for name, headers := range map[string]map[string]string{
		"wrong token": {"Authorization": "Bearer not-a-token"},
		"no token":    {},
	} {
		status, _ := httpDo("GET", red.adminURL+"/flows/state", nil, headers)
		if status != 401 {
			t.Errorf("%s: GET /flows/state answered %d, want 401", name, status)
		}
	}
	viewer := map[string]string{"Authorization": "Bearer " + viewerToken}
	if status, body := httpDo("GET", red.adminURL+"/flows", nil, viewer); status != 200 {
		t.Errorf("read token: GET /flows answered %d %s, want 200", status, body)
	}
	if status, _ := httpDo("POST", red.adminURL+"/flows", []any{}, viewer); status != 401 {
		t.Errorf("read token: POST /flows answered %d, want 401", status)
	}
	assertJSONLogLines(t, red.output.String())
}

// assertJSONLogLines checks that Node-RED's log reached stdout as JSON lines
// with ts, level and msg, including the "Server now running" line.
func assertJSONLogLines(t *testing.T, output string) {
	t.Helper()
	sawRunning, sawAudit := false, false
	scanner := bufio.NewScanner(strings.NewReader(output))
	for scanner.Scan() {
		var line map[string]any
		if json.Unmarshal(scanner.Bytes(), &line) != nil {
			continue // Node-RED prints a few non-JSON lines (docs/node-red.md §2.2)
		}
		if line["ts"] == nil || line["level"] == nil {
			t.Errorf("log line without ts/level: %s", scanner.Text())
		}
		msg, _ := line["msg"].(string)
		if line["level"] == "info" && strings.HasPrefix(msg, "Server now running at http://127.0.0.1:") {
			sawRunning = true
		}
		if line["level"] == "audit" && line["event"] != nil {
			sawAudit = true
		}
	}
	if !sawRunning || !sawAudit {
		t.Fatalf("no JSON \"Server now running\" (%v) or audit line (%v) in:\n%s", sawRunning, sawAudit, output)
	}
}
