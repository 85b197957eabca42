package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/internal/proctest"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/platform"
)

// freePort finds a free port below the kernel's ephemeral range (32768 and up), where every outgoing connection
// on the machine takes its local port: a port found free there is often taken by some connection of another test
// package before flowyard binds it. Ports are drawn from 6000–10999 (a Temporal port's UI takes port+1000) and
// never handed out twice by this process.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := 6000 + rand.IntN(5000)
		if !portsGiven[p] && portFree(p) {
			portsGiven[p] = true
			return p
		}
	}
	t.Fatal("no free port in 6000-10999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// startDev runs `flowyard dev` in-process on free ports with its own data dir, using the repository's
// bin/temporal and the shared test stacks dir, and returns the API's URL.
// startDev takes extra flags that override the defaults (the last of a flag wins).
// A port found free can be taken by another test package before flowyard binds it; such a start is retried on
// other ports instead of failing the test.
func startDev(t testing.TB, extra ...string) devEnv {
	t.Helper()
	repo, bin := temporalBin(t)
	for attempt := 1; ; attempt++ {
		env, err := tryStartDev(t, repo, bin, extra)
		if err == nil {
			return env
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatalf("flowyard dev did not start: %v", err)
		}
		t.Logf("flowyard dev lost a port to another process (%v); starting it on other ports", err)
	}
}

// temporalBin returns the repository's root and its Temporal CLI (bin/temporal), failing the test when it is missing.
func temporalBin(t testing.TB) (repo, bin string) {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	bin = filepath.Join(repo, "bin", "temporal")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make bin/temporal`", bin)
	}
	return repo, bin
}

// tryStartDev starts `flowyard dev` once and waits until it is ready, or returns the error it exited with.
func tryStartDev(t testing.TB, repo, bin string, extra []string) (devEnv, error) {
	dataDir := t.TempDir()
	linkStacks(t, dataDir)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tport := temporalPort(t)
	cfg, err := config.Load("dev", append([]string{"--data-dir", dataDir, "--listen", listen, "--temporal-port", fmt.Sprint(tport),
		"--temporal-bin", bin, "--temporal-config", filepath.Join(repo, "temporal.yaml"), "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--mqtt-ws-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--instance-ports", instancePorts(),
		"--admin-email", "admin@example.com", "--admin-password", "admin-password"}, extra...), func(string) string { return "" })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The log goes to a file in the data dir, where a test reads what the operator would (a link that was not
	// mailed), and to stderr with -v.
	logFile, err := os.Create(filepath.Join(dataDir, "flowyard.log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = logFile.Close() })
	handlers := []slog.Handler{slog.NewTextHandler(logFile, nil)}
	if testing.Verbose() {
		handlers = append(handlers, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	log := slog.New(slog.NewMultiHandler(handlers...))
	go func() { done <- platform.RunDev(ctx, cfg, log) }()
	url := "http://" + listen
	if err := readyOrExited(url, done); err != nil {
		cancel()
		killInstanceRuntimes(dataDir)
		return devEnv{}, err
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(60 * time.Second):
			proctest.DumpGoroutines()
			t.Error("flowyard dev did not stop within 60 s; its goroutines are above")
		}
		// Node-RED processes outlive the platform by design (they are re-adopted on its next start).
		killInstanceRuntimes(dataDir)
	})
	return devEnv{URL: url, DataDir: dataDir, TemporalAddress: fmt.Sprintf("127.0.0.1:%d", tport), LogFile: logFile.Name()}, nil
}

// readyOrExited waits until the API at url is ready, or returns why flowyard dev exited first.
func readyOrExited(url string, exited <-chan error) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited during start-up: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return errors.New("the API was not ready after 90 s")
}

// devEnv is a running `flowyard dev`.
type devEnv struct {
	URL, DataDir, TemporalAddress string
	LogFile                       string // what flowyard logged, as text
}

// linkStacks shares installed Node-RED stacks between test runs: npm runs once per machine, not per test.
func linkStacks(t testing.TB, dataDir string) {
	t.Helper()
	stacks := os.Getenv("FLOWYARD_TEST_STACKS_DIR")
	if stacks == "" {
		stacks = "/tmp/flowyard-test-stacks"
	}
	require.NoError(t, os.MkdirAll(stacks, 0o755))
	require.NoError(t, os.Symlink(stacks, filepath.Join(dataDir, "stacks")))
}

// temporalPort finds a free port whose UI port (+1000) is free too.
func temporalPort(t testing.TB) int {
	tport := freePort(t)
	for tport+1000 > 65535 || !portFree(tport+1000) {
		tport = freePort(t)
	}
	return tport
}

func waitReady(t testing.TB, url string) {
	t.Helper()
	waitFor(t, 90*time.Second, "the API to be ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// createInstance creates an instance from the seeded objects and returns its ID and operation ID.
func createInstance(t *testing.T, c *apitest.Client, name string) (string, string) {
	t.Helper()
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Team " + name}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	created := c.Must(202, "POST", "/api/v1/applications/"+app+"/instances", map[string]any{"name": name,
		"instanceTypeId": firstID(c.Must(200, "GET", "/api/v1/instance-types", nil)),
		"stackId":        firstID(c.Must(200, "GET", "/api/v1/stacks", nil)),
		"templateId":     firstID(c.Must(200, "GET", "/api/v1/templates", nil))})
	return created.Body["instance"].(map[string]any)["id"].(string), created.Body["operation"].(map[string]any)["id"].(string)
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func firstID(r *apitest.Response) string {
	return r.Body["items"].([]any)[0].(map[string]any)["id"].(string)
}

// waitOperation waits until an operation finishes and returns its final status.
func waitOperation(t testing.TB, c *apitest.Client, opID string) *apitest.Response {
	t.Helper()
	var op *apitest.Response
	deadline := time.Now().Add(3 * time.Minute)
	for {
		op = c.Must(200, "GET", "/api/v1/operations/"+opID, nil)
		switch op.String("status") {
		case "succeeded", "failed", "canceled":
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation did not finish in 3 minutes: %s", op.Raw)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestInstanceLifecycleEndToEnd drives a real instance through the HTTP API: create, run, stop, start,
// restart, suspend, start, delete, against the real Temporal dev server and real Node-RED.
func TestInstanceLifecycleEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "E2E"}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	body := map[string]any{"name": "e2e-one",
		"instanceTypeId": firstID(c.Must(200, "GET", "/api/v1/instance-types", nil)),
		"stackId":        firstID(c.Must(200, "GET", "/api/v1/stacks", nil)),
		"templateId":     firstID(c.Must(200, "GET", "/api/v1/templates", nil)),
		"env":            []map[string]any{{"name": "GREETING", "value": "hello"}}}
	created := c.Must(202, "POST", "/api/v1/applications/"+app+"/instances", body)
	inst := created.Body["instance"].(map[string]any)
	id := inst["id"].(string)
	opID := created.Body["operation"].(map[string]any)["id"].(string)
	assert.Equal(t, "/api/v1/operations/"+opID, created.Header.Get("Location"))
	assert.Equal(t, 409, c.Do("POST", "/api/v1/applications/"+app+"/instances", body).Status, "names are platform-unique")
	// A second action right away is either refused (409) or, when the first is just finishing, runs after it;
	// never both at once.
	queued := c.Do("POST", "/api/v1/instances/"+id+"/actions/restart", nil)
	op := waitOperation(t, c, opID)
	require.Equal(t, "succeeded", op.String("status"), string(op.Raw))
	switch queued.Status {
	case 409:
		assert.Equal(t, "instance_busy", queued.String("code"))
	case 202:
		restart := waitOperation(t, c, queued.Body["operation"].(map[string]any)["id"].(string))
		require.Equal(t, "succeeded", restart.String("status"), string(restart.Raw))
	default:
		t.Fatalf("second action: %d %s", queued.Status, queued.Raw)
	}
	assert.Contains(t, op.String("temporalUrl"), "/workflows/instance%2F"+id)
	got := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
	require.Equal(t, "running", got.String("state"), string(got.Raw))
	logs := c.Must(200, "GET", "/api/v1/instances/"+id+"/logs", nil)
	assert.Contains(t, string(logs.Raw), "Started flows")

	deployAndCall(t, c, id, got.String("url"))
	sessionCookieStaysOut(t, c, dev.URL, got.String("url"))
	crashAndRecover(t, c, id, filepath.Join(dev.DataDir, "instances", id), got.String("url"))

	for _, step := range []struct{ action, state string }{
		{"stop", "stopped"}, {"start", "running"}, {"restart", "running"}, {"suspend", "suspended"}, {"start", "running"},
	} {
		r := c.Must(202, "POST", "/api/v1/instances/"+id+"/actions/"+step.action, nil)
		op := waitOperation(t, c, r.Body["operation"].(map[string]any)["id"].(string))
		require.Equal(t, "succeeded", op.String("status"), "%s: %s", step.action, op.Raw)
		assert.Equal(t, step.state, c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("state"), step.action)
	}

	recordHistories(t, dev, c, id)
	del := c.Must(202, "DELETE", "/api/v1/instances/"+id, nil)
	op = waitOperation(t, c, del.Body["operation"].(map[string]any)["id"].(string))
	require.Equal(t, "succeeded", op.String("status"), string(op.Raw))
	assert.Equal(t, 404, c.Do("GET", "/api/v1/instances/"+id, nil).Status)
	assert.False(t, strings.Contains(string(c.Must(200, "GET", "/api/v1/applications/"+app+"/instances", nil).Raw), id))
}

// deployAndCall deploys an http-in flow through the platform with the current rev, calls it, and checks that a
// stale rev is refused.
func deployAndCall(t *testing.T, c *apitest.Client, id, instanceURL string) {
	t.Helper()
	flows := []any{
		map[string]any{"id": "t1", "type": "tab", "label": "E2E"},
		map[string]any{"id": "in1", "type": "http in", "z": "t1", "url": "/hello", "method": "get", "wires": []any{[]any{"fn1"}}},
		map[string]any{"id": "fn1", "type": "function", "z": "t1", "func": "msg.payload = env.get('GREETING'); return msg;", "wires": []any{[]any{"out1"}}},
		map[string]any{"id": "out1", "type": "http response", "z": "t1"},
		map[string]any{"id": "in2", "type": "http in", "z": "t1", "url": "/cookies", "method": "get", "wires": []any{[]any{"fn2"}}},
		map[string]any{"id": "fn2", "type": "function", "z": "t1", "func": "msg.payload = msg.req.headers.cookie || 'none'; return msg;", "wires": []any{[]any{"out1"}}},
	}
	cur := c.Must(200, "GET", "/api/v1/instances/"+id+"/flows", nil)
	oldRev := cur.String("rev")
	require.NotEmpty(t, oldRev, string(cur.Raw))
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/flows", map[string]any{"flows": flows, "rev": oldRev})
	waitFor(t, 30*time.Second, "the deployed flow to answer", func() bool {
		resp, err := instanceClient.Get(instanceURL + "hello")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == "hello"
	})
	stale := c.Do("PUT", "/api/v1/instances/"+id+"/flows", map[string]any{"flows": flows, "rev": oldRev})
	assert.Equal(t, 409, stale.Status)
	assert.Equal(t, "stale_rev", stale.String("code"))
}

// instanceClient reaches the instance URLs the API shows (<name>.apps.localhost:<port>, which it dials on
// loopback as a browser would), without cookies.
var instanceClient = &http.Client{Timeout: 30 * time.Second, Transport: apitest.LocalhostTransport()}

// sessionCookieStaysOut checks that a member's flow cannot read the session of a user who follows a link to
// the instance: the browser signed in at the platform does not send its cookie to the URL the API shows (the
// instance's own address; the flows deployed by deployAndCall echo what they get).
func sessionCookieStaysOut(t *testing.T, c *apitest.Client, platformURL, instanceURL string) {
	t.Helper()
	platform, err := url.Parse(platformURL + "/")
	require.NoError(t, err)
	shown, err := url.Parse(instanceURL)
	require.NoError(t, err)
	require.NotEmpty(t, c.Jar().Cookies(platform), "signed in at %s", platformURL)
	assert.Empty(t, c.Jar().Cookies(shown), "the browser sends no cookie to %s", instanceURL)
	browser := &http.Client{Jar: c.Jar(), Timeout: 10 * time.Second, Transport: apitest.LocalhostTransport()}
	resp, err := browser.Get(instanceURL + "cookies")
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "none", string(got), "what the flow behind %s gets", instanceURL)
}

// crashAndRecover kills the instance's Node-RED and waits for the platform to notice, record a recover
// operation and bring the instance back with its flows.
func crashAndRecover(t *testing.T, c *apitest.Client, id, instanceDir, instanceURL string) {
	t.Helper()
	pids := nodeRedProcesses(t, instanceDir)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	defer func() {
		if t.Failed() {
			t.Logf("operations: %s", c.Must(200, "GET", "/api/v1/instances/"+id+"/operations?limit=500", nil).Raw)
			t.Logf("instance: %s", c.Must(200, "GET", "/api/v1/instances/"+id, nil).Raw)
		}
	}()
	waitFor(t, 2*time.Minute, "a recover operation to succeed", func() bool {
		ops := c.Must(200, "GET", "/api/v1/instances/"+id+"/operations?limit=500", nil)
		for _, o := range ops.Body["items"].([]any) {
			op := o.(map[string]any)
			if op["kind"] == "recover" && op["status"] == "succeeded" {
				return true
			}
		}
		return false
	})
	assert.Equal(t, "running", c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("state"))
	now := nodeRedProcesses(t, instanceDir)
	require.Len(t, now, 1)
	assert.NotEqual(t, pids[0], now[0], "a new Node-RED runs")
	resp, err := instanceClient.Get(instanceURL + "hello")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "flows survive the crash (they live in the platform)")
}

// instancePorts gives each platform a test starts its own block of Node-RED ports, so platforms of
// concurrently running tests (several packages run at once) never hand out the same port. The blocks stay
// below Linux's ephemeral range (32768+), where outgoing connections would take ports from under Node-RED.
func instancePorts() string {
	n := portBlock.Add(1)
	base := 13000 + int((uint64(os.Getpid())+uint64(n)*37)%190)*100
	return fmt.Sprintf("%d-%d", base, base+99)
}

var portBlock atomic.Int64

// recordHistories writes the history of each lifecycle run of an instance into workflows/instance/testdata,
// for the replay tests, when FLOWYARD_RECORD_HISTORIES=1 (run it after a deliberate workflow change).
func recordHistories(t *testing.T, dev devEnv, c *apitest.Client, id string) {
	t.Helper()
	if !replaytest.Recording() {
		return
	}
	ops := c.Must(200, "GET", "/api/v1/instances/"+id+"/operations?limit=500", nil)
	seen := map[string]bool{}
	for _, o := range ops.Body["items"].([]any) {
		op := o.(map[string]any)
		kind, runID := op["kind"].(string), op["runId"].(string)
		if seen[kind] || runID == "" || op["status"] != "succeeded" {
			continue
		}
		seen[kind] = true
		replaytest.RecordAt(t, dev.TemporalAddress, "flowyard", "instance/"+id, runID, "instance", "replay_"+kind+".json")
	}
}
