package nodered

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePlatform implements the platform side of the storage plugin's HTTP
// contract in memory, for one instance.
type fakePlatform struct {
	instanceID, token string

	mu        sync.Mutex
	docs      map[string]json.RawMessage // flows, credentials, settings, sessions
	library   map[string]libraryEntry    // type + "/" + name
	failNext  int                        // answer 503 to this many requests
	requests  []string                   // "GET flows", "PUT credentials", ...
	refusals  int                        // 503s sent
	badTokens int                        // 401s sent
}

type libraryEntry struct {
	Meta map[string]any `json:"meta"`
	Body string         `json:"body"`
}

func newFakePlatform(instanceID, token string) *fakePlatform {
	return &fakePlatform{instanceID: instanceID, token: token, docs: map[string]json.RawMessage{}, library: map[string]libraryEntry{}}
}

func (f *fakePlatform) handler() http.Handler {
	mux := http.NewServeMux()
	prefix := "/api/v1/runtime/instances/{id}/"
	for _, doc := range []string{"flows", "credentials", "settings", "sessions"} {
		mux.HandleFunc("GET "+prefix+doc, f.guard(func(w http.ResponseWriter, r *http.Request) { f.getDoc(w, doc) }))
		mux.HandleFunc("PUT "+prefix+doc, f.guard(func(w http.ResponseWriter, r *http.Request) { f.putDoc(w, r, doc) }))
	}
	mux.HandleFunc("GET "+prefix+"context", f.guard(f.getContext))
	mux.HandleFunc("PATCH "+prefix+"context", f.guard(f.patchContext))
	mux.HandleFunc("GET "+prefix+"library/{type}", f.guard(f.getLibrary))
	mux.HandleFunc("PUT "+prefix+"library/{type}", f.guard(f.putLibrary))
	return mux
}

// guard checks the token and instance, logs the call and injects failures.
func (f *fakePlatform) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/api/v1/runtime/instances/"+r.PathValue("id")+"/"))
		if f.failNext > 0 {
			f.failNext--
			f.refusals++
			f.mu.Unlock()
			http.Error(w, "platform restarting", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			f.badTokens++
			f.mu.Unlock()
			http.Error(w, `{"error":"invalid instance token"}`, http.StatusUnauthorized)
			return
		}
		f.mu.Unlock()
		if r.PathValue("id") != f.instanceID {
			http.Error(w, "no such instance", http.StatusNotFound)
			return
		}
		next(w, r)
	}
}

// contextLimit is the persistent context the fake platform keeps, as an instance type's default limit.
const contextLimit = 1 << 20

// getContext answers the persistent context store's load (GET /context): the scopes kept, unlimited in count.
func (f *fakePlatform) getContext(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	scopes := f.contextScopes()
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"limitBytes": contextLimit, "usedBytes": 0, "scopes": scopes})
}

// patchContext replaces the scopes a PATCH /context names; null deletes one.
func (f *fakePlatform) patchContext(w http.ResponseWriter, r *http.Request) {
	var changes map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&changes); err != nil {
		http.Error(w, "bad context document", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	scopes := f.contextScopes()
	for scope, value := range changes {
		if string(value) == "null" {
			delete(scopes, scope)
		} else {
			scopes[scope] = value
		}
	}
	f.docs["context"], _ = json.Marshal(scopes)
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// contextScopes reads the kept context; the caller holds f.mu.
func (f *fakePlatform) contextScopes() map[string]json.RawMessage {
	scopes := map[string]json.RawMessage{}
	if doc, ok := f.docs["context"]; ok {
		json.Unmarshal(doc, &scopes)
	}
	return scopes
}

func (f *fakePlatform) getDoc(w http.ResponseWriter, name string) {
	f.mu.Lock()
	doc, ok := f.docs[name]
	f.mu.Unlock()
	if !ok {
		doc = json.RawMessage("{}")
		if name == "flows" {
			doc = json.RawMessage("[]")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

func (f *fakePlatform) putDoc(w http.ResponseWriter, r *http.Request, name string) {
	body, err := io.ReadAll(r.Body)
	var value any
	if err == nil {
		err = json.Unmarshal(body, &value)
	}
	_, isArray := value.([]any)
	_, isObject := value.(map[string]any)
	if err != nil || (name == "flows") != isArray || (name != "flows" && !isObject) {
		http.Error(w, "bad "+name+" document", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.docs[name] = body
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// getLibrary answers a file's text, or a listing of a folder (sub-folder
// names, then {fn, ...meta} for files), like Node-RED's file library.
func (f *fakePlatform) getLibrary(w http.ResponseWriter, r *http.Request) {
	typ, name := r.PathValue("type"), r.URL.Query().Get("name")
	f.mu.Lock()
	defer f.mu.Unlock()
	if entry, ok := f.library[typ+"/"+name]; ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, entry.Body)
		return
	}
	folder := typ + "/" + strings.TrimSuffix(name, "/")
	if name != "" {
		folder += "/"
	}
	var dirs []string
	var files []any
	for key, entry := range f.library {
		rest, ok := strings.CutPrefix(key, folder)
		if !ok {
			continue
		}
		if dir, _, nested := strings.Cut(rest, "/"); nested {
			if !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
			continue
		}
		file := map[string]any{"fn": rest}
		for k, v := range entry.Meta {
			file[k] = v
		}
		files = append(files, file)
	}
	if dirs == nil && files == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	listing := []any{}
	for _, d := range dirs {
		listing = append(listing, d)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(append(listing, files...))
}

func (f *fakePlatform) putLibrary(w http.ResponseWriter, r *http.Request) {
	var entry struct {
		Name string         `json:"name"`
		Meta map[string]any `json:"meta"`
		Body string         `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&entry); err != nil || entry.Name == "" {
		http.Error(w, "bad library entry", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.library[r.PathValue("type")+"/"+entry.Name] = libraryEntry{Meta: entry.Meta, Body: entry.Body}
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakePlatform) doc(name string) json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[name]
}

func (f *fakePlatform) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// serveFakePlatform serves a fakePlatform for instanceID and token until the test ends.
func serveFakePlatform(t *testing.T, instanceID, token string) (*fakePlatform, *httptest.Server) {
	platform := newFakePlatform(instanceID, token)
	srv := httptest.NewServer(platform.handler())
	t.Cleanup(srv.Close)
	return platform, srv
}

// startWithPlatform starts Node-RED with the storage plugin pointed at baseURL.
func startWithPlatform(t *testing.T, rt Runtime, baseURL, instanceID, token string, params SettingsParams) *redProcess {
	t.Helper()
	plugin, err := WriteStoragePlugin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	params.StorageModule = plugin
	return startNodeRED(t, rt, t.TempDir(), redOptions{params: params, env: StoragePluginEnv(baseURL, instanceID, token)})
}

func TestStoragePluginKeepsFlowsAndCredentialsAcrossRestart(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	platform, srv := serveFakePlatform(t, "inst-1", "instance-token-1")
	port := freePort(t)
	params := SettingsParams{Port: port, CredentialSecret: "plugin-secret", DisableEditor: true}

	first := startWithPlatform(t, rt, srv.URL, "inst-1", "instance-token-1", params)
	first.waitReady()
	first.deployV2(credentialFlows(port, true))
	if got := first.probe(); got != wantProbe {
		t.Fatalf("probe before restart: %q", got)
	}
	// The platform holds the flows and Node-RED's encrypted credentials blob.
	var flows []map[string]any
	if err := json.Unmarshal(platform.doc("flows"), &flows); err != nil || len(flows) != len(credentialFlows(port, true)) {
		t.Fatalf("platform flows %s (%v)", platform.doc("flows"), err)
	}
	creds, err := DecryptCredentials("plugin-secret", platform.doc("credentials"))
	if err != nil {
		t.Fatalf("platform credentials %s: %v", platform.doc("credentials"), err)
	}
	if user := creds["req1"].(map[string]any)["password"]; user != "s3cr3t-pw" {
		t.Fatalf("stored credentials %v", creds)
	}
	if len(platform.doc("settings")) < 3 {
		t.Fatalf("runtime settings not stored: %s", platform.doc("settings"))
	}
	first.stop()

	// A new process with an empty userDir (another machine) gets everything back.
	second := startWithPlatform(t, rt, srv.URL, "inst-1", "instance-token-1", params)
	second.waitReady()
	status, body := second.admin("GET", "/flows", nil, nil)
	if status != 200 || !strings.Contains(body, `"id":"req1"`) || !strings.Contains(body, `"url":"/probe"`) {
		t.Fatalf("flows after restart: %d %s", status, body)
	}
	if got := second.probe(); got != wantProbe {
		t.Fatalf("probe after restart: %q, want %q (credentials did not round-trip)", got, wantProbe)
	}
	// Nothing of the instance's state lives on its disk.
	for _, f := range []string{"flows.json", "flows_cred.json", ".config.runtime.json"} {
		if _, err := os.Stat(filepath.Join(second.userDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists in the userDir (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(second.userDir, "package.json")); err != nil {
		t.Errorf("the plugin did not create userDir/package.json: %v", err)
	}
	if strings.Contains(second.output.String(), `"level":"error"`) {
		t.Errorf("node-red logged errors:\n%s", second.output.String())
	}
	log := platform.requestLog()
	for _, want := range []string{"GET settings", "PUT settings", "GET flows", "GET credentials", "PUT flows", "PUT credentials"} {
		if !slices.Contains(log, want) {
			t.Errorf("platform never saw %q: %v", want, log)
		}
	}
}

func TestStoragePluginLibrary(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	platform, srv := serveFakePlatform(t, "inst-lib", "lib-token")
	red := startWithPlatform(t, rt, srv.URL, "inst-lib", "lib-token", SettingsParams{HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api"})
	red.waitReady()

	status, body := red.admin("POST", "/library/local/functions/tools/double", map[string]any{"name": "double", "outputs": 1, "text": "msg.payload *= 2;\nreturn msg;"}, nil)
	if status != 204 {
		t.Fatalf("save library entry: %d %s", status, body)
	}
	platform.mu.Lock()
	entry, ok := platform.library["functions/tools/double"]
	platform.mu.Unlock()
	if !ok || entry.Body != "msg.payload *= 2;\nreturn msg;" || entry.Meta["name"] != "double" {
		t.Fatalf("platform library: %+v", platform.library)
	}
	checks := []struct{ path, want string }{
		{"/library/local/functions/tools/double", "msg.payload *= 2;\nreturn msg;"},
		{"/library/local/functions/", `["tools"]`},
		{"/library/local/functions/tools", `[{"fn":"double","name":"double","outputs":1}]`},
		{"/library/local/templates/", `[]`},
	}
	for _, c := range checks {
		status, body := red.admin("GET", c.path, nil, nil)
		if status != 200 || strings.TrimSpace(body) != c.want {
			t.Errorf("GET %s: %d %q, want %q", c.path, status, body, c.want)
		}
	}
	if status, body := red.admin("GET", "/library/local/functions/tools/missing", nil, nil); status != 404 {
		t.Errorf("missing entry: %d %s, want 404", status, body)
	}
}

func TestStoragePluginRetriesWhilePlatformIsDown(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	platform := newFakePlatform("inst-retry", "retry-token")
	platform.failNext = 2 // then answer 503 twice more after coming up
	platformPort := freePort(t)
	baseURL := "http://127.0.0.1:" + strconv.Itoa(platformPort)

	// Node-RED starts while nothing listens on the platform's port.
	red := startWithPlatform(t, rt, baseURL, "inst-retry", "retry-token", SettingsParams{DisableEditor: true})
	waitFor(t, "a retry warning from the plugin", 20*time.Second, func() bool {
		return strings.Contains(red.output.String(), "flowyard storage: GET") && strings.Contains(red.output.String(), "retrying")
	})
	listener, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(platformPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: listener, Config: &http.Server{Handler: platform.handler()}}
	srv.Start()
	t.Cleanup(srv.Close)

	red.waitReady()
	platform.mu.Lock()
	refusals := platform.refusals
	platform.mu.Unlock()
	if refusals != 2 {
		t.Fatalf("platform refused %d requests, want 2 (503s retried)", refusals)
	}
	if !strings.Contains(red.output.String(), "answered 503") {
		t.Fatalf("no 503 retry in the log:\n%s", red.output.String())
	}
}

func TestStoragePluginGivesUpWhenPlatformStaysDown(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	baseURL := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens here
	red := startWithPlatform(t, rt, baseURL, "inst-down", "down-token", SettingsParams{DisableEditor: true})
	output := red.waitExit(60 * time.Second)
	want := "flowyard storage: GET /api/v1/runtime/instances/inst-down/settings failed after 6 attempts: connect ECONNREFUSED"
	if !strings.Contains(output, want) {
		t.Fatalf("output lacks %q:\n%s", want, output)
	}
}

func TestStoragePluginFailsAtOnceOn4xx(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	platform, srv := serveFakePlatform(t, "inst-denied", "the-right-token")
	red := startWithPlatform(t, rt, srv.URL, "inst-denied", "a-wrong-token", SettingsParams{DisableEditor: true})
	output := red.waitExit(30 * time.Second)
	// red.js logs "Failed to start server" and exits with status 0 (doc.go
	// tells supervisors so).
	if red.exitErr != nil || !strings.Contains(output, "Failed to start server") {
		t.Errorf("failed start: exit %v, want status 0 and \"Failed to start server\"", red.exitErr)
	}
	want := "flowyard storage: GET /api/v1/runtime/instances/inst-denied/settings answered 401"
	if !strings.Contains(output, want) {
		t.Fatalf("output lacks %q:\n%s", want, output)
	}
	platform.mu.Lock()
	defer platform.mu.Unlock()
	if platform.badTokens != 1 {
		t.Fatalf("platform saw %d requests with the wrong token, want 1 (no retries on 4xx)", platform.badTokens)
	}
	if strings.Contains(output, "a-wrong-token") {
		t.Fatal("the plugin logged its token")
	}
}

func TestStoragePluginNeedsItsEnvironment(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	plugin, err := WriteStoragePlugin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	red := startNodeRED(t, rt, t.TempDir(), redOptions{params: SettingsParams{StorageModule: plugin, DisableEditor: true},
		env: []string{EnvForgeURL + "=", EnvInstanceID + "=", EnvInstanceToken + "="}})
	output := red.waitExit(30 * time.Second)
	want := "flowyard storage: environment variable(s) not set: FLOWYARD_FORGE_URL, FLOWYARD_INSTANCE_ID, FLOWYARD_INSTANCE_TOKEN"
	if !strings.Contains(output, want) {
		t.Fatalf("output lacks %q:\n%s", want, output)
	}
}

func TestWriteStoragePlugin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	path, err := WriteStoragePlugin(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, StoragePluginFile) {
		t.Fatalf("path %q", path)
	}
	written, err := os.ReadFile(path)
	if err != nil || string(written) != string(storagePluginJS) {
		t.Fatalf("written plugin differs from the embedded one (%v)", err)
	}
	// Rewriting over an existing file works and leaves no temp files.
	if _, err := WriteStoragePlugin(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("plugin dir holds %v", entries)
	}
	if _, err := WriteStoragePlugin("/proc/no-such-dir"); err == nil {
		t.Fatal("writing into an impossible dir succeeded")
	}
}

// TestSecretsFile: with a SecretsFile, the credential secret and the instance token reach Node-RED and the
// storage plugin from that file only: settings.js holds neither, and the environment has no token.
func TestSecretsFile(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	platform, srv := serveFakePlatform(t, "inst-s", "token-from-the-file")
	secrets, _ := json.Marshal(Secrets{CredentialSecret: "secret-from-the-file", InstanceToken: "token-from-the-file"})
	secretsFile := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secretsFile, secrets, 0o400); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// No token in the environment: FLOWYARD_INSTANCE_TOKEN is set empty.
	red := startWithPlatform(t, rt, srv.URL, "inst-s", "", SettingsParams{Port: port, SecretsFile: secretsFile, DisableEditor: true})
	red.waitReady()
	red.deployV2(credentialFlows(port, true))
	if _, err := DecryptCredentials("secret-from-the-file", platform.doc("credentials")); err != nil {
		t.Fatalf("credentials not encrypted with the file's secret: %v", err)
	}
	js, err := os.ReadFile(filepath.Join(red.userDir, "settings.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"secret-from-the-file", "token-from-the-file"} {
		if strings.Contains(string(js), secret) {
			t.Errorf("settings.js holds %q", secret)
		}
	}
	if _, err := RenderSettings(SettingsParams{Port: port, SecretsFile: secretsFile, CredentialSecret: "both"}); err == nil {
		t.Error("a credential secret beside a secrets file was accepted")
	}
	if _, err := RenderSettings(SettingsParams{Port: port, SecretsFile: "secrets.json"}); err == nil {
		t.Error("a relative secrets file was accepted")
	}
}
