package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeviceConfigShapes(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "device.yml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	c, err := LoadConfig(write("deviceId: d1\ntoken: fyd_x\ncredentialSecret: s\nforgeURL: http://f\nport: 1999\nhttpNodeAuth: {user: u, pass: p}\n"))
	require.NoError(t, err)
	assert.Equal(t, "d1", c.DeviceID)
	assert.Equal(t, 1999, c.Port)
	assert.False(t, c.Provisioning())
	assert.Contains(t, c.Extras, "httpNodeAuth", "unknown keys are kept")

	_, err = LoadConfig(write("deviceId: d1\ntoken: t\ncredentialSecret: s\nforgeURL: http://f\nbrokerURL: mqtt://b\n"))
	assert.ErrorContains(t, err, "brokerUsername", "a broker needs its credentials")
	_, err = LoadConfig(write("token: t\n"))
	assert.ErrorContains(t, err, "deviceId")

	c, err = LoadConfig(write("provisioningName: line\nprovisioningTeam: team1\nprovisioningToken: fyp_x\nforgeURL: http://f\nport: 1881\n"))
	require.NoError(t, err)
	assert.True(t, c.Provisioning())
	assert.Equal(t, "line", c.ProvisioningName)
}

func TestBrokerAddress(t *testing.T) {
	for in, want := range map[string]string{"mqtt://h:1884": "tcp://h:1884", "mqtts://h:8883": "ssl://h:8883", "ws://h:1885/some/path": "ws://h:1885/", "wss://h": "wss://h/"} {
		got, err := brokerAddress(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := brokerAddress("http://h")
	assert.Error(t, err)
}

// fakeRunner records what the agent asks of Node-RED.
type fakeRunner struct {
	mu       sync.Mutex
	prepared []string
	running  bool
	failWith error
}

func (r *fakeRunner) Prepare(_ context.Context, snap *Snapshot, _ *Settings, install bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if install {
		r.prepared = append(r.prepared, snap.ID)
	}
	return r.failWith
}
func (r *fakeRunner) Start(context.Context) error {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	return nil
}
func (r *fakeRunner) Stop(context.Context) error {
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	return nil
}
func (r *fakeRunner) Clean() error           { return nil }
func (r *fakeRunner) Prepared() bool         { return true }
func (r *fakeRunner) NodeRedVersion() string { return "4.1.15" }

// platform is a minimal HTTP side of the protocol: it wants snapshot "s1" with settings "h1".
type platform struct {
	mu      sync.Mutex
	reports []map[string]any
	status  int // answer to check-ins when set (401 to revoke)
}

func (p *platform) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/devices/d1/live/state", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "Bearer fyd_x", r.Header.Get("Authorization"))
		var rep map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&rep))
		p.mu.Lock()
		p.reports = append(p.reports, rep)
		status := p.status
		p.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if rep["snapshot"] == "s1" && rep["settings"] == "h1" {
			w.Write([]byte("{}"))
			return
		}
		w.WriteHeader(409)
		w.Write([]byte(`{"error":"incorrect-snapshot","application":"app1","snapshot":"s1","settings":"h1"}`))
	})
	mux.HandleFunc("GET /api/v1/devices/d1/live/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"s1","name":"v1","env":{"A":"1"},"modules":{"node-red":"4.1.15"},"flows":[],"credentials":{}}`))
	})
	mux.HandleFunc("GET /api/v1/devices/d1/live/settings", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"hash":"h1","env":{"B":"2"}}`))
	})
	return mux
}

func (p *platform) last() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reports) == 0 {
		return nil
	}
	return p.reports[len(p.reports)-1]
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHTTPModeDeploysTheTarget: without a broker the agent polls live/state, follows the 409 to download the
// snapshot and settings, installs, runs and reports running; a 401 makes it stop and forget.
func TestHTTPModeDeploysTheTarget(t *testing.T) {
	p := &platform{}
	srv := httptest.NewServer(p.handler(t))
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, SaveConfig(cfgPath, &DeviceConfig{DeviceID: "d1", Token: "fyd_x", CredentialSecret: "s", ForgeURL: srv.URL}))
	runner := &fakeRunner{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Dir: dir, Runner: runner, Interval: 50 * time.Millisecond})
	}()
	waitUntil(t, "running s1", func() bool {
		r := p.last()
		return r != nil && r["state"] == "running" && r["snapshot"] == "s1" && r["settings"] == "h1"
	})
	assert.Equal(t, []string{"s1"}, runner.prepared, "installed once")
	r := p.last()
	assert.Equal(t, "application", r["ownerType"])
	assert.Equal(t, "app1", r["application"])
	assert.Equal(t, Version, r["agentVersion"])
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"id":"s1"`, "the snapshot is persisted for an offline restart")

	p.mu.Lock()
	p.status = 401
	p.mu.Unlock()
	waitUntil(t, "the revoked agent to stop", func() bool {
		runner.mu.Lock()
		defer runner.mu.Unlock()
		return !runner.running
	})
	cancel()
	require.NoError(t, <-done)
}

func TestFailedInstallReportsError(t *testing.T) {
	p := &platform{}
	srv := httptest.NewServer(p.handler(t))
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, SaveConfig(cfgPath, &DeviceConfig{DeviceID: "d1", Token: "fyd_x", CredentialSecret: "s", ForgeURL: srv.URL}))
	runner := &fakeRunner{failWith: errors.New("npm ERR! ETARGET")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = Run(ctx, Options{ConfigPath: cfgPath, Dir: dir, Runner: runner, Interval: 50 * time.Millisecond})
	}()
	waitUntil(t, "an error report", func() bool {
		r := p.last()
		return r != nil && r["state"] == "error"
	})
	r := p.last()
	assert.Equal(t, "s1", r["snapshot"], "the new snapshot is reported with the error, as FlowFuse's agent does")
	assert.Contains(t, r["stateDetail"], "ETARGET")
}

// TestOfflineRestartRunsTheLastSnapshot: an agent that restarts while the platform is unreachable starts the
// snapshot it ran before, without downloading or installing anything.
func TestOfflineRestartRunsTheLastSnapshot(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, SaveConfig(cfgPath, &DeviceConfig{DeviceID: "d1", Token: "fyd_x", CredentialSecret: "s", ForgeURL: "http://127.0.0.1:1"}))
	st, _ := json.Marshal(persisted{Application: strPtr("app1"), Snapshot: &Snapshot{ID: "s1"}, Settings: &Settings{Hash: "h1"}})
	require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), st, 0o600))
	runner := &fakeRunner{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Dir: dir, Runner: runner, Interval: 50 * time.Millisecond})
	}()
	waitUntil(t, "Node-RED started from disk", func() bool {
		runner.mu.Lock()
		defer runner.mu.Unlock()
		return runner.running
	})
	assert.Empty(t, runner.prepared, "nothing was installed")
	cancel()
	require.NoError(t, <-done)
}

func strPtr(s string) *string { return &s }

// provisioningPlatform adds registration to the fake platform: every device provisioned is "d1" (the fake
// serves one device's documents).
func (p *platform) provisioningHandler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/devices/", p.handler(t))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "Bearer fyp_x", r.Header.Get("Authorization"))
	})
	mux.HandleFunc("POST /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		assert.Equal(t, "Auto Provisioned", body["type"])
		w.Write([]byte(`{"id":"d1","credentials":{"token":"fyd_x","credentialSecret":"s"}}`))
	})
	return mux
}

// TestSimulate runs a small simulated fleet: each device provisions, deploys its target and reports running,
// or error at the failure rate.
func TestSimulate(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		state string
	}{{0, "running"}, {1, "error"}} {
		p := &platform{}
		srv := httptest.NewServer(p.provisioningHandler(t))
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Simulate(ctx, SimulateOptions{ForgeURL: srv.URL, ProvisioningToken: "fyp_x", Count: 5, FailureRate: tc.rate,
				Delay: 10 * time.Millisecond, Dir: dir, Interval: time.Hour})
		}()
		waitUntil(t, "every simulated device to report "+tc.state, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			n := 0
			for _, r := range p.reports {
				if r["state"] == tc.state && r["snapshot"] == "s1" {
					n++
				}
			}
			return n >= 5
		})
		cancel()
		require.NoError(t, <-done)
		srv.Close()
		cfg, err := LoadConfig(filepath.Join(dir, "device-00003", "device.yml"))
		require.NoError(t, err)
		assert.Equal(t, "d1", cfg.DeviceID, "provisioned once and kept in --dir")
		assert.True(t, cfg.AutoProvisioned)
	}
}

// slowCleanRunner takes until release is closed to delete the user dir, as deleting node_modules does.
type slowCleanRunner struct {
	fakeRunner
	cleaning chan struct{}
	release  chan struct{}
}

func (r *slowCleanRunner) Clean() error {
	close(r.cleaning)
	<-r.release
	return nil
}

// TestRunWaitsForTheUpdater: an agent stopped while it forgets a revoked device's snapshot returns only once
// that is done, so nothing of it still writes in its folder (the state file, the user dir) after Run returned.
func TestRunWaitsForTheUpdater(t *testing.T) {
	p := &platform{status: 401}
	srv := httptest.NewServer(p.handler(t))
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, SaveConfig(cfgPath, &DeviceConfig{DeviceID: "d1", Token: "fyd_x", CredentialSecret: "s", ForgeURL: srv.URL}))
	runner := &slowCleanRunner{cleaning: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Dir: dir, Runner: runner, Interval: time.Hour})
	}()
	<-runner.cleaning
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while the agent was still deleting the user dir")
	case <-time.After(300 * time.Millisecond):
	}
	close(runner.release)
	require.NoError(t, <-done)
	_, err := os.Stat(filepath.Join(dir, stateFile))
	assert.NoError(t, err, "the forgotten state was saved before Run returned")
}
