package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

const testNodeRedVersion = "4.1.15"

// helperEnv makes the test binary act as a platform that starts one instance and then waits to be
// killed (see TestReadoptAfterPlatformKilled).
const helperEnv = "FLOWYARD_LOCAL_DRIVER_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(runHelperPlatform(dir))
	}
	if arg := os.Getenv(netHelperEnv); arg != "" {
		os.Exit(runNetHelper(arg))
	}
	if _, err := exec.LookPath("node"); err != nil {
		fmt.Fprintln(os.Stderr, "drivers/local tests need Node.js 20 (`node` in PATH) to run real Node-RED:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// runHelperPlatform starts instance "adoptee" under dataDir, prints its PID once ready and blocks.
func runHelperPlatform(dataDir string) int {
	d, err := New(Config{DataDir: dataDir, StacksDir: stacksDir(), PortMin: 12700, PortMax: 12799})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	if _, err := d.Start(ctx, testSpec("adoptee")); err != nil {
		fmt.Println("error", err)
		return 1
	}
	st, err := d.WaitReady(ctx, "adoptee")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready", st.PID)
	select {}
}

func stacksDir() string {
	if dir := os.Getenv("FLOWYARD_TEST_STACKS_DIR"); dir != "" {
		return dir
	}
	return "/tmp/flowyard-test-stacks"
}

func testSpec(id string) drivers.InstanceSpec {
	return drivers.InstanceSpec{
		InstanceID: id, Name: "test " + id, NodeRedVersion: testNodeRedVersion,
		CredentialSecret: "secret-" + id, AdminToken: "admin-token-" + id, ReadToken: "read-token-" + id,
		Env: map[string]string{"GREETING": "hello"},
	}
}

// newTestDriver creates a driver over a fresh data dir (or dataDir) and cleans up every Node-RED
// started under it when the test ends.
func newTestDriver(t testing.TB, dataDir string, tweak func(*Config)) *Driver {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := Config{DataDir: dataDir, StacksDir: stacksDir(), ReadyTimeout: 60 * time.Second,
		PollInterval: 50 * time.Millisecond,
		// Not t.Log: driver goroutines may log after the test returns.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		killAllUnder(d.cfg.DataDir)
		dropNetworkFilter(t, d.cfg.DataDir)
	})
	return d
}

// dropNetworkFilter removes the network filter of dataDir, whose instances are gone: another test's
// instance may get one of their uids.
func dropNetworkFilter(t testing.TB, dataDir string) {
	if err := newNetFilter(dataDir, nil).remove(false); err != nil && os.Geteuid() == 0 {
		t.Errorf("remove the network filter of %s: %v", dataDir, err)
	}
}

// killAllUnder kills every process started for an instance under dataDir: the safety net that keeps a
// failing test from leaking Node-RED processes.
func killAllUnder(dataDir string) {
	entries, _ := os.ReadDir(filepath.Join(dataDir, "instances"))
	for _, e := range entries {
		for _, pid := range findInstanceProcesses(filepath.Join(dataDir, "instances", e.Name())) {
			signalGroup(pid, syscall.SIGKILL)
		}
	}
}

// writeHelloFlow pre-writes a flow answering GET /hello with the GREETING env var and what the flow
// can see of FLOWYARD_INSTANCE_ID (it must not see it).
func writeHelloFlow(t *testing.T, d *Driver, id string) {
	t.Helper()
	flows := []map[string]any{
		{"id": "tab1", "type": "tab", "label": "Main"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/hello", "method": "get", "wires": [][]string{{"fn1"}}},
		{"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": [][]string{{"out1"}},
			"func": `msg.payload = env.get("GREETING") + " " + env.get("FLOWYARD_INSTANCE_ID"); return msg;`},
		{"id": "out1", "type": "http response", "z": "tab1", "wires": [][]string{}},
	}
	b, _ := json.Marshal(flows)
	writeFlows(t, d, id, string(b))
}

// writeFlows pre-writes an instance's flows.json (for an instance without the storage plugin).
func writeFlows(t *testing.T, d *Driver, id, flows string) {
	t.Helper()
	userDir := filepath.Join(d.instanceDir(id), userDirName)
	if err := os.MkdirAll(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(userDir, "flows.json"), []byte(flows), 0o644); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func startReady(t *testing.T, d *Driver, spec drivers.InstanceSpec) drivers.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // the first run installs the stack
	defer cancel()
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start %s: %v", spec.InstanceID, err)
	}
	st, err := d.WaitReady(ctx, spec.InstanceID)
	if err != nil {
		t.Fatalf("wait ready %s: %v", spec.InstanceID, err)
	}
	if st.State != drivers.StateRunning {
		t.Fatalf("ready %s but state %s", spec.InstanceID, st.State)
	}
	return st
}

// eventually waits up to 10s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func processGone(pid int) bool {
	st, err := readProcStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

// readLine reads lines from r until one starts with prefix.
func readLine(t *testing.T, r *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
		if strings.HasPrefix(line, "error") || err != nil {
			t.Fatalf("helper platform: %q %v", line, err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeForge is the platform's runtime API as the storage plugin of one instance sees it: it serves the
// given flows, accepts writes, and refuses any token but the instance's.
type fakeForge struct {
	mu       sync.Mutex
	requests []string // "GET /api/v1/runtime/instances/<id>/flows", ...
}

// newFakeForge serves the runtime API for spec until the test ends and points spec.ForgeURL at it.
func newFakeForge(t testing.TB, spec *drivers.InstanceSpec, flows string) *fakeForge {
	f := &fakeForge{}
	token, prefix := spec.InstanceToken, "/api/v1/runtime/instances/"+spec.InstanceID+"/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == prefix+"flows":
			io.WriteString(w, flows)
		case r.Method == http.MethodGet:
			io.WriteString(w, "{}")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	spec.ForgeURL = srv.URL
	return f
}

func (f *fakeForge) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}
