package nodered

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// credentialFlows deploys a tab where GET /probe makes an http request node
// call GET /echo with basic auth from its credentials; /echo answers with the
// Authorization header it received. So /probe shows the decrypted password.
// The mqtt-broker config node carries credentials too but never connects.
func credentialFlows(port int, withCredentials bool) []map[string]any {
	request := map[string]any{
		"id": "req1", "type": "http request", "z": "tab1", "name": "probe-request", "method": "GET", "ret": "txt",
		"url": "http://127.0.0.1:" + strconv.Itoa(port) + "/echo", "authType": "basic", "wires": []any{[]any{"resp1"}},
	}
	broker := map[string]any{
		"id": "broker1", "type": "mqtt-broker", "name": "broker", "broker": "127.0.0.1", "port": "1883",
		"clientid": "", "autoConnect": false, "protocolVersion": "4", "keepalive": "60", "cleansession": true,
	}
	if withCredentials {
		request["credentials"] = map[string]any{"user": "alice", "password": "s3cr3t-pw"}
		broker["credentials"] = map[string]any{"user": "mqttuser", "password": "mqtt-pw"}
	}
	return []map[string]any{
		{"id": "tab1", "type": "tab", "label": "Main"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/probe", "method": "get", "wires": []any{[]any{"req1"}}},
		request,
		{"id": "resp1", "type": "http response", "z": "tab1", "wires": []any{}},
		{"id": "in2", "type": "http in", "z": "tab1", "url": "/echo", "method": "get", "wires": []any{[]any{"fn2"}}},
		{"id": "fn2", "type": "function", "z": "tab1", "func": "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;", "outputs": 1, "wires": []any{[]any{"resp2"}}},
		{"id": "resp2", "type": "http response", "z": "tab1", "wires": []any{}},
		broker,
	}
}

var wantProbe = "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cr3t-pw"))

// probe calls the /probe flow and returns the Authorization header that the
// http request node built from its credentials.
func (p *redProcess) probe() string {
	p.t.Helper()
	var status int
	var body string
	// http-in routes answer 404 until the flows have started (docs/node-red.md §2.3).
	waitFor(p.t, "GET /probe", 20*time.Second, func() bool {
		status, body = httpDo("GET", p.baseURL+"/probe", nil, nil)
		return status == 200
	})
	return body
}

func TestGoDecryptsCredentialsNodeRedWrote(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	userDir := t.TempDir()
	port := freePort(t)
	red := startNodeRED(t, rt, userDir, redOptions{params: SettingsParams{Port: port, CredentialSecret: "nr-wrote-this", DisableEditor: true}})
	red.waitReady()
	red.deployV2(credentialFlows(port, true))
	if got := red.probe(); got != wantProbe {
		t.Fatalf("probe: %q, want %q", got, wantProbe)
	}
	credFile := filepath.Join(userDir, "flows_cred.json")
	raw, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatalf("node-red wrote no flows_cred.json: %v", err)
	}
	t.Logf("flows_cred.json written by node-red: %s", raw)
	got, err := DecryptCredentials("nr-wrote-this", raw)
	if err != nil {
		t.Fatalf("decrypt %s: %v", raw, err)
	}
	want := map[string]any{
		"req1":    map[string]any{"user": "alice", "password": "s3cr3t-pw"},
		"broker1": map[string]any{"user": "mqttuser", "password": "mqtt-pw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decrypted %v, want %v", got, want)
	}
	if _, err := DecryptCredentials("another-secret", raw); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong secret on node-red's file: got %v, want ErrWrongSecret", err)
	}
}

func TestNodeRedLoadsCredentialsGoEncrypted(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	userDir := t.TempDir()
	port := freePort(t)
	creds := map[string]any{
		"req1":    map[string]any{"user": "alice", "password": "s3cr3t-pw"},
		"broker1": map[string]any{"user": "mqttuser", "password": "mqtt-pw"},
	}
	// Encrypt under an old secret and re-key, as the platform does on a secret change.
	oldBlob, err := EncryptCredentials("old-secret", creds)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := ReencryptCredentials("old-secret", "go-wrote-this", oldBlob)
	if err != nil {
		t.Fatal(err)
	}
	flows, _ := json.Marshal(credentialFlows(port, false))
	if err := os.WriteFile(filepath.Join(userDir, "flows.json"), flows, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(userDir, "flows_cred.json"), blob, 0o600); err != nil {
		t.Fatal(err)
	}
	red := startNodeRED(t, rt, userDir, redOptions{params: SettingsParams{Port: port, CredentialSecret: "go-wrote-this"}})
	red.waitReady()
	if got := red.probe(); got != wantProbe {
		t.Fatalf("probe: %q, want %q (node-red did not load the Go-encrypted password)\n%s", got, wantProbe, red.output.String())
	}
	// The editor's credentials endpoint confirms the config node's credentials.
	status, body := red.admin("GET", "/credentials/mqtt-broker/broker1", nil, nil)
	if status != 200 || !strings.Contains(body, `"user":"mqttuser"`) || !strings.Contains(body, `"has_password":true`) {
		t.Fatalf("GET /credentials/mqtt-broker/broker1: %d %s", status, body)
	}
	if strings.Contains(red.output.String(), "Error loading credentials") {
		t.Fatalf("node-red complained about the credentials:\n%s", red.output.String())
	}
}
