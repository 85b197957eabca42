package nodered

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowyard/flowyard/domain"
)

// lockedTemplate holds a value for every setting a template may hold; the
// test below checks each one where Node-RED reads it.
var lockedTemplate = map[string]any{
	"disableEditor":           false,
	"codeEditor":              "ace",
	"theme":                   "flowyard-test-theme",
	"pageTitle":               "Locked page title",
	"headerTitle":             "Locked header title",
	"timeZone":                "Asia/Tokyo",
	"paletteAllowInstall":     false,
	"paletteAllowList":        []any{"node-red-contrib-approved-*"},
	"paletteDenyList":         []any{"node-red-contrib-approved-bad"},
	"modulesAllowInstall":     false,
	"debugMaxLength":          42.0,
	"apiMaxLength":            "2kb",
	"functionExternalModules": true,
	"functionTimeout":         7.0,
}

func TestTemplateSettingsCoverEveryTemplateSetting(t *testing.T) {
	for _, name := range domain.TemplateSettingNames() {
		if _, ok := lockedTemplate[name]; !ok {
			t.Errorf("the template setting %s is not checked against Node-RED here", name)
		}
		if _, _, err := TemplateSettings(map[string]any{name: lockedTemplate[name]}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := TemplateSettings(map[string]any{"httpAdminRoot": "/"}); err == nil || !strings.Contains(err.Error(), `"httpAdminRoot"`) {
		t.Fatalf("an unknown setting must be refused by name, got %v", err)
	}
	if _, _, err := TemplateSettings(map[string]any{"timeZone": 9.0}); err == nil {
		t.Fatal("a time zone that is not a string was accepted")
	}
}

// TestTemplateSettingsReachNodeRed starts Node-RED on the settings.js a
// template that locks every setting renders to, and asks Node-RED itself.
func TestTemplateSettingsReachNodeRed(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	settings, env, err := TemplateSettings(lockedTemplate)
	if err != nil {
		t.Fatal(err)
	}
	red := startNodeRED(t, rt, t.TempDir(), redOptions{
		params: SettingsParams{HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api", Settings: settings, Title: "platform title"},
		env:    envList(env),
	})
	red.waitReady()

	// paletteAllowInstall false: Node-RED does not even route POST /nodes.
	module := writeNodeModule(t, "node-red-contrib-approved-ok")
	if status, body := red.admin("POST", "/nodes", map[string]any{"module": module}, nil); status != http.StatusNotFound {
		t.Errorf("POST /nodes with installs locked off: %d %s, want 404", status, body)
	}

	var runtime struct {
		ExternalModules         map[string]any `json:"externalModules"`
		FunctionExternalModules bool           `json:"functionExternalModules"`
		FunctionTimeout         float64        `json:"functionTimeout"`
		CodeEditor              map[string]any `json:"codeEditor"`
		EditorTheme             map[string]any `json:"editorTheme"`
	}
	red.adminJSON("/settings", &runtime)
	wantModules := map[string]any{
		"autoInstall": false,
		"palette": map[string]any{"allowInstall": false, "allowUpload": false,
			"allowList": []any{"node-red-contrib-approved-*"}, "denyList": []any{"node-red-contrib-approved-bad"}},
		"modules": map[string]any{"allowInstall": false},
	}
	if !reflect.DeepEqual(runtime.ExternalModules, wantModules) {
		t.Errorf("externalModules = %v\nwant %v", runtime.ExternalModules, wantModules)
	}
	if !runtime.FunctionExternalModules || runtime.FunctionTimeout != 7 || runtime.CodeEditor["lib"] != "ace" ||
		runtime.EditorTheme["theme"] != "flowyard-test-theme" {
		t.Errorf("GET /settings: functionExternalModules %v, functionTimeout %v, codeEditor %v, theme %v",
			runtime.FunctionExternalModules, runtime.FunctionTimeout, runtime.CodeEditor, runtime.EditorTheme["theme"])
	}

	var diagnostics struct {
		Runtime struct {
			Settings map[string]any `json:"settings"`
		} `json:"runtime"`
	}
	red.adminJSON("/diagnostics", &diagnostics)
	for key, want := range map[string]any{"apiMaxLength": "2kb", "debugMaxLength": 42.0, "disableEditor": false} {
		if got := diagnostics.Runtime.Settings[key]; got != want {
			t.Errorf("diagnostics: %s = %v, want %v", key, got, want)
		}
	}
	var theme struct {
		Page, Header map[string]any
	}
	red.adminJSON("/theme", &theme)
	if theme.Page["title"] != "Locked page title" || theme.Header["title"] != "Locked header title" {
		t.Errorf("the editor's theme has titles %v and %v, want the template's", theme.Page["title"], theme.Header["title"])
	}

	// apiMaxLength: a body over 2 kB is refused.
	big := map[string]any{"flows": []any{map[string]any{"id": "t", "type": "tab", "info": strings.Repeat("x", 4096)}}}
	if status, _ := red.admin("POST", "/flows", big, map[string]string{"Node-RED-API-Version": "v2"}); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 4 kB deploy answered %d, want 413", status)
	}

	// timeZone: the process's TZ, as a function node sees it.
	red.deployV2(timeZoneFlow())
	var answer string
	waitFor(t, "the time zone flow", 10*time.Second, func() bool {
		status, body := httpDo("GET", red.baseURL+"/api/tz", nil, nil)
		answer = body
		return status == http.StatusOK
	})
	if !strings.HasPrefix(answer, "Asia/Tokyo ") || !strings.Contains(answer, "GMT+0900") {
		t.Errorf("a function node's time zone: %q, want Asia/Tokyo", answer)
	}

	// modulesAllowInstall false: a function node's module is not installed.
	red.deployV2([]map[string]any{{"id": "libs-tab", "type": "tab"},
		{"id": "libs-fn", "type": "function", "z": "libs-tab", "func": "return msg;", "outputs": 1,
			"libs": []any{map[string]any{"var": "leftPad", "module": "left-pad"}}, "wires": []any{}}})
	waitFor(t, "Node-RED to refuse the function node's module", 10*time.Second, func() bool {
		return strings.Contains(red.output.String(), "left-pad [install_not_allowed]")
	})
}

// TestTemplatePaletteListsReachNodeRed installs local modules through
// Node-RED's own palette API under a template's allow or deny list: the
// listed module is refused by Node-RED, the other one installs.
func TestTemplatePaletteListsReachNodeRed(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	for name, tc := range map[string]struct {
		template        map[string]any
		allowed, denied string
	}{
		"deny list": {map[string]any{"paletteDenyList": []any{"node-red-contrib-denied-*"}, "disableEditor": true},
			"node-red-contrib-fine", "node-red-contrib-denied-one"},
		"allow list alone": {map[string]any{"paletteAllowList": []any{"node-red-contrib-approved-*"}, "disableEditor": true},
			"node-red-contrib-approved-one", "node-red-contrib-other"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			settings, env, err := TemplateSettings(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			red := startNodeRED(t, rt, t.TempDir(), redOptions{
				params: SettingsParams{HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api", Settings: settings}, env: envList(env)})
			red.waitReady()
			if status, _ := red.admin("GET", "/", nil, nil); status != http.StatusNotFound {
				t.Errorf("disableEditor: the editor answered %d, want 404", status)
			}
			status, body := red.admin("POST", "/nodes", map[string]any{"module": writeNodeModule(t, tc.denied)}, nil)
			if status != http.StatusBadRequest || !strings.Contains(body, "install_not_allowed") {
				t.Errorf("install of %s: %d %s, want 400 install_not_allowed", tc.denied, status, body)
			}
			status, body = red.admin("POST", "/nodes", map[string]any{"module": writeNodeModule(t, tc.allowed)}, nil)
			if status != http.StatusOK {
				t.Errorf("install of %s: %d %s, want 200", tc.allowed, status, body)
			}
		})
	}
}

// adminJSON GETs an admin path and decodes its JSON answer into v.
func (p *redProcess) adminJSON(path string, v any) {
	p.t.Helper()
	status, body := p.admin("GET", path, nil, map[string]string{"Accept": "application/json"})
	if status != http.StatusOK {
		p.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		p.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func envList(env map[string]string) []string {
	var list []string
	for name, value := range env {
		list = append(list, name+"="+value)
	}
	return list
}

// timeZoneFlow answers GET /api/tz with the time zone and the epoch as a
// function node sees them.
func timeZoneFlow() []map[string]any {
	return []map[string]any{
		{"id": "tz-tab", "type": "tab"},
		{"id": "tz-in", "type": "http in", "z": "tz-tab", "url": "/tz", "method": "get", "wires": []any{[]any{"tz-fn"}}},
		{"id": "tz-fn", "type": "function", "z": "tz-tab", "outputs": 1, "wires": []any{[]any{"tz-out"}},
			"func": "msg.payload = Intl.DateTimeFormat().resolvedOptions().timeZone + ' ' + new Date(0).toString();\nreturn msg;"},
		{"id": "tz-out", "type": "http response", "z": "tz-tab", "wires": []any{}},
	}
}

// writeNodeModule writes a minimal Node-RED node module into a new
// directory and returns the directory, which POST /nodes installs without a
// registry.
func writeNodeModule(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	files := map[string]string{
		"package.json": `{"name":"` + name + `","version":"1.0.0","node-red":{"nodes":{"` + name + `":"node.js"}}}`,
		"node.js": `module.exports = function (RED) {
    RED.nodes.registerType("` + name + `", function (config) { RED.nodes.createNode(this, config); });
};`,
		"node.html": `<script type="text/javascript">RED.nodes.registerType("` + name + `", {category: "function", defaults: {}, inputs: 1});</script>`,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
