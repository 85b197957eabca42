package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

// TestLifecycle drives one instance through start, a second (idempotent) start, readiness, an http-in
// request, the admin API's token checks, stop, restart with its flows, a spec change, port exhaustion
// and removal.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	port := freePort(t)
	for _, name := range []string{"FLOWYARD_SECRET_KEY", "FLOWYARD_DATABASE_URL", "FLOWYARD_ADMIN_PASSWORD", "FLOWYARD_STRIPE_KEY", "OPERATOR_TOKEN"} {
		t.Setenv(name, "must-not-leak") // the platform's own env must not reach Node-RED
	}
	d := newTestDriver(t, "", func(c *Config) { c.PortMin, c.PortMax = port, port })
	spec := testSpec("life")
	spec.MemoryMB = 256
	writeHelloFlow(t, d, spec.InstanceID)

	first, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if first.State != drivers.StateStarting || first.PID == 0 || first.Port != port {
		t.Fatalf("after start: %+v", first)
	}
	again, err := d.Start(ctx, spec)
	if err != nil || again.PID != first.PID {
		t.Fatalf("second start should return the same runtime: %+v %v", again, err)
	}
	st, err := d.WaitReady(ctx, spec.InstanceID)
	if err != nil || st.State != drivers.StateRunning || st.URL != runtimeURL(port) {
		t.Fatalf("wait ready: %+v %v", st, err)
	}
	if code, body := httpGet(t, st.URL+"/hello", ""); code != 200 || body != "hello undefined" {
		t.Fatalf("http-in answered %d %q, want 200 \"hello undefined\" (user env visible, FLOWYARD_* hidden)", code, body)
	}
	checkAdminAuth(t, st.URL, spec)
	checkChildEnvironment(t, d, st.PID, spec)
	lines, err := d.Logs(ctx, spec.InstanceID, time.Time{}, 0)
	if err != nil || !slices.ContainsFunc(lines, func(l drivers.LogLine) bool { return l.Msg == "Started flows" && l.Level == "info" }) {
		t.Fatalf("logs lack Started flows: %v %+v", err, lines)
	}

	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(ctx, spec.InstanceID); st.State != drivers.StateStopped || !processGone(first.PID) {
		t.Fatalf("after stop: %+v, process gone %v", st, processGone(first.PID))
	}
	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if ids, _ := d.Running(ctx); len(ids) != 0 {
		t.Fatalf("running after stop: %v", ids)
	}

	st = startReady(t, d, spec)
	if code, body := httpGet(t, st.URL+"/hello", ""); code != 200 || body != "hello undefined" {
		t.Fatalf("after restart http-in answered %d %q", code, body)
	}

	safe := spec
	safe.SafeMode = true
	safeSt := startReady(t, d, safe)
	if safeSt.PID == st.PID || !processGone(st.PID) {
		t.Fatalf("a changed spec must replace the runtime: old pid %d, new %d", st.PID, safeSt.PID)
	}
	if code, _ := httpGet(t, safeSt.URL+"/hello", ""); code != 404 {
		t.Fatalf("in safe mode http-in answered %d, want 404", code)
	}

	other := testSpec("other")
	if _, err := d.Start(ctx, other); !errors.Is(err, drivers.ErrNoFreePort) {
		t.Fatalf("start with the only port taken: %v, want ErrNoFreePort", err)
	}

	if err := d.Remove(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.instanceDir(spec.InstanceID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance dir still there: %v", err)
	}
	if st, _ := d.Status(ctx, spec.InstanceID); st.State != drivers.StateMissing {
		t.Fatalf("after remove: %s", st.State)
	}
	if !processGone(safeSt.PID) || !portFree(port) {
		t.Fatal("remove left the process or the port behind")
	}
	if got, err := d.allocatePort(ctx, d.instanceDir("other")); err != nil || got != port {
		t.Fatalf("the removed instance's port should be free again: %d %v", got, err)
	}
	if err := d.Remove(ctx, spec.InstanceID); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

// checkAdminAuth: the admin token has full access, the read token read access, anything else none.
func checkAdminAuth(t *testing.T, url string, spec drivers.InstanceSpec) {
	t.Helper()
	for _, c := range []struct {
		token string
		want  int
	}{{spec.AdminToken, 200}, {spec.ReadToken, 200}, {"wrong-token", 401}, {"", 401}} {
		if code, _ := httpGet(t, url+drivers.AdminRoot+"flows", c.token); code != c.want {
			t.Errorf("GET flows with token %q: %d, want %d", c.token, code, c.want)
		}
	}
	for _, c := range []struct {
		token string
		ok    bool
	}{{spec.AdminToken, true}, {spec.ReadToken, false}} {
		req, _ := http.NewRequest(http.MethodPost, url+drivers.AdminRoot+"flows/state", strings.NewReader(`{"state":"start"}`))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.StatusCode == 200) != c.ok {
			t.Errorf("POST flows/state with token %q: %d", c.token, resp.StatusCode)
		}
	}
}

// checkChildEnvironment: Node-RED gets a minimal env plus the user's and Flowyard's variables, never the
// platform's own; settings.js holds no raw token.
func checkChildEnvironment(t *testing.T, d *Driver, pid int, spec drivers.InstanceSpec) {
	t.Helper()
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(string(env), "\x00")
	ours := []string{envInstanceDir, nodered.EnvInstanceID, nodered.EnvForgeURL, nodered.EnvInstanceToken}
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		if (strings.HasPrefix(name, "FLOWYARD_") && !slices.Contains(ours, name)) || strings.Contains(v, "must-not-leak") {
			t.Errorf("the platform's environment leaked into Node-RED: %s", name)
		}
	}
	for _, want := range []string{"GREETING=hello", "NODE_ENV=production", "FLOWYARD_INSTANCE_ID=" + spec.InstanceID} {
		if !slices.Contains(vars, want) {
			t.Errorf("child env lacks %s: %q", want, vars)
		}
	}
	js, err := os.ReadFile(filepath.Join(d.instanceDir(spec.InstanceID), settingsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), spec.AdminToken) || !strings.Contains(string(js), tokenDigest(spec.AdminToken)) {
		t.Error("settings.js must hold the admin token's digest, not the token")
	}
	if !slices.Contains(cmdArgs(t, d, spec.InstanceID), "--max-old-space-size=192") {
		t.Error("a 256 MB instance should run with --max-old-space-size=192")
	}
}

func cmdArgs(t *testing.T, d *Driver, id string) []string {
	t.Helper()
	inst := d.lookup(id)
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.proc == nil || inst.proc.cmd == nil {
		return nil
	}
	return inst.proc.cmd.Args
}

// TestCrashIsReported: a SIGKILLed Node-RED is reported through OnExit and Status, and starts again.
func TestCrashIsReported(t *testing.T) {
	ctx := context.Background()
	exits := make(chan drivers.Status, 4)
	d := newTestDriver(t, "", func(c *Config) {
		c.OnExit = func(id string, st drivers.Status) { exits <- st }
	})
	spec := testSpec("crashy")
	st := startReady(t, d, spec)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-exits:
		if ex.State != drivers.StateCrashed || ex.ExitCode != 137 || len(ex.LastLines) == 0 {
			t.Fatalf("OnExit got %+v", ex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnExit not called after kill -9")
	}
	if got, _ := d.Status(ctx, spec.InstanceID); got.State != drivers.StateCrashed || !strings.Contains(got.Reason, "signal 9") {
		t.Fatalf("status after crash: %+v", got)
	}
	if _, err := d.WaitReady(ctx, spec.InstanceID); !errors.Is(err, drivers.ErrExited) {
		t.Fatalf("wait ready of a crashed instance: %v", err)
	}
	// A driver created after the crash learns it from the pidfile the dead process left behind, and
	// still serves its logs.
	later := newTestDriver(t, d.cfg.DataDir, nil)
	if got, _ := later.Status(ctx, spec.InstanceID); got.State != drivers.StateCrashed || got.ExitCode != -1 {
		t.Fatalf("status seen by a later driver: %+v", got)
	}
	if lines, err := later.Logs(ctx, spec.InstanceID, time.Time{}, 5); err != nil || len(lines) != 5 {
		t.Fatalf("logs seen by a later driver: %v %v", lines, err)
	}
	later.Close()
	again := startReady(t, d, spec)
	if again.Port != st.Port {
		t.Fatalf("restart after a crash moved the port: %d -> %d", st.Port, again.Port)
	}
	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-exits:
		t.Fatalf("Stop reported as a crash: %+v", ex)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSecondDriverAdopts: a new driver over the same data dir takes over a running Node-RED instead of
// starting another.
func TestSecondDriverAdopts(t *testing.T) {
	ctx := context.Background()
	var exitsMu sync.Mutex
	var exits []string
	onExit := func(id string, st drivers.Status) { exitsMu.Lock(); exits = append(exits, id); exitsMu.Unlock() }
	d1 := newTestDriver(t, "", func(c *Config) { c.OnExit = onExit })
	spec := testSpec("adopt")
	st := startReady(t, d1, spec)
	d1.Close()

	d2 := newTestDriver(t, d1.cfg.DataDir, func(c *Config) { c.OnExit = onExit })
	if ids, _ := d2.Running(ctx); !slices.Equal(ids, []string{spec.InstanceID}) {
		t.Fatalf("second driver's running = %v", ids)
	}
	got, _ := d2.Status(ctx, spec.InstanceID)
	if got.State != drivers.StateRunning || got.PID != st.PID || got.Port != st.Port {
		t.Fatalf("adopted status %+v, want running pid %d", got, st.PID)
	}
	again, err := d2.Start(ctx, spec)
	if err != nil || again.PID != st.PID {
		t.Fatalf("start with the same spec after adoption: %+v %v", again, err)
	}
	if pids := findInstanceProcesses(d2.instanceDir(spec.InstanceID)); !slices.Equal(pids, []int{st.PID}) {
		t.Fatalf("node-red processes of the instance: %v, want only %d", pids, st.PID)
	}
	if err := d2.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	if !processGone(st.PID) {
		t.Fatal("adopted process survived Stop")
	}
	time.Sleep(3 * d2.cfg.PollInterval) // give a wrongly reported crash the chance to show up
	exitsMu.Lock()
	defer exitsMu.Unlock()
	if len(exits) != 0 {
		t.Fatalf("stopping an adopted process reported exits: %v", exits)
	}
}

// TestReadoptAfterPlatformKilled: a platform process is SIGKILLed while its Node-RED runs. Node-RED
// survives; the next driver re-adopts it (no second process, same port), notices when it dies, and a
// later Start replaces it with exactly one process.
func TestReadoptAfterPlatformKilled(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	t.Cleanup(func() { killAllUnder(dataDir) })
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+dataDir)
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	line := readLine(t, bufio.NewReader(out), "ready ")
	pid, _ := strconv.Atoi(strings.TrimPrefix(line, "ready "))
	helper.Process.Kill()
	helper.Wait()
	if processGone(pid) {
		t.Fatal("node-red died with its platform; children must outlive it")
	}

	exits := make(chan drivers.Status, 2)
	d := newTestDriver(t, dataDir, func(c *Config) {
		c.PortMin, c.PortMax = 12700, 12799
		c.OnExit = func(id string, st drivers.Status) { exits <- st }
	})
	st, _ := d.Status(ctx, "adoptee")
	if st.State != drivers.StateRunning || st.PID != pid {
		t.Fatalf("after platform kill: %+v, want running pid %d", st, pid)
	}
	if code, _ := httpGet(t, st.URL+drivers.AdminRoot+"flows", testSpec("adoptee").AdminToken); code != 200 {
		t.Fatalf("adopted node-red answered %d", code)
	}

	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case ex := <-exits:
		if ex.State != drivers.StateCrashed || ex.ExitCode != -1 {
			t.Fatalf("OnExit for the adopted process: %+v", ex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("death of an adopted process not noticed")
	}
	restarted := startReady(t, d, testSpec("adoptee"))
	if restarted.Port != st.Port {
		t.Fatalf("restart moved the port: %d -> %d", st.Port, restarted.Port)
	}
	if pids := findInstanceProcesses(d.instanceDir("adoptee")); !slices.Equal(pids, []int{restarted.PID}) {
		t.Fatalf("processes of the instance: %v", pids)
	}
	if err := d.Stop(ctx, "adoptee"); err != nil {
		t.Fatal(err)
	}
}

// TestReadinessFailures: flows that never start, and flows waiting for a node type nobody installed,
// both end WaitReady with an error carrying the last log lines; the status says starting, not running.
func TestReadinessFailures(t *testing.T) {
	ctx := context.Background()
	// Long enough for Node-RED to listen on a loaded machine (it took 8 s under CI's load): the stopped flows
	// must be seen as stopped, not as a runtime that never answered; missing types end the wait at once.
	d := newTestDriver(t, "", func(c *Config) { c.ReadyTimeout = 30 * time.Second })

	stopped := testSpec("stopped-flows")
	userDir := filepath.Join(d.instanceDir(stopped.InstanceID), userDirName)
	os.MkdirAll(userDir, 0o755)
	// Node-RED persists a "stop" of the flows (POST flows/state) and honours it at the next start.
	os.WriteFile(filepath.Join(userDir, ".config.runtime.json"), []byte(`{"runtimeFlowState":"stop"}`), 0o644)

	missing := testSpec("missing-types")
	missingDir := filepath.Join(d.instanceDir(missing.InstanceID), userDirName)
	os.MkdirAll(missingDir, 0o755)
	os.WriteFile(filepath.Join(missingDir, "flows.json"),
		[]byte(`[{"id":"tab1","type":"tab"},{"id":"n1","type":"no-such-node","z":"tab1","wires":[]}]`), 0o644)

	for _, c := range []struct {
		spec drivers.InstanceSpec
		want error
	}{{stopped, drivers.ErrNeverReady}, {missing, drivers.ErrMissingTypes}} {
		if _, err := d.Start(ctx, c.spec); err != nil {
			t.Fatal(err)
		}
		st, err := d.WaitReady(ctx, c.spec.InstanceID)
		var re *drivers.RuntimeError
		if !errors.Is(err, c.want) || !errors.As(err, &re) || len(re.LastLines) == 0 {
			t.Fatalf("%s: wait ready gave %v, want %v with log lines", c.spec.InstanceID, err, c.want)
		}
		if c.want == drivers.ErrNeverReady && !strings.Contains(re.Detail, "flows state stop") {
			t.Fatalf("%s: the runtime never answered, so stopped flows were not what was tested: %v", c.spec.InstanceID, err)
		}
		if st.State != drivers.StateStarting || st.Reason == "" {
			t.Fatalf("%s: status %+v", c.spec.InstanceID, st)
		}
		if err := d.Stop(ctx, c.spec.InstanceID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgeStorage: with a ForgeURL, Node-RED keeps its flows in the platform through the storage
// plugin, authenticated with the instance token, which flows cannot read.
func TestForgeStorage(t *testing.T) {
	spec := testSpec("forged")
	spec.InstanceToken = "instance-token-forged"
	flows := `[{"id":"tab1","type":"tab","label":"Main"},
		{"id":"in1","type":"http in","z":"tab1","url":"/token","method":"get","wires":[["fn1"]]},
		{"id":"fn1","type":"function","z":"tab1","outputs":1,"wires":[["out1"]],
		 "func":"msg.payload = 'token ' + env.get('FLOWYARD_INSTANCE_TOKEN'); return msg;"},
		{"id":"out1","type":"http response","z":"tab1","wires":[]}]`
	forge := newFakeForge(t, &spec, flows)

	d := newTestDriver(t, "", nil)
	st := startReady(t, d, spec)
	if code, body := httpGet(t, st.URL+"/token", ""); code != 200 || body != "token undefined" {
		t.Fatalf("flow from the forge answered %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(d.instanceDir(spec.InstanceID), userDirName, "flows.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("flows.json written to the userDir despite the storage plugin: %v", err)
	}
	requests := forge.seen()
	if !slices.Contains(requests, "GET /api/v1/runtime/instances/forged/flows") {
		t.Fatalf("forge requests: %v", requests)
	}
}

// TestStrayWithoutPidfileIsReplaced covers a platform killed between starting Node-RED and writing its
// pidfile: the next driver still finds the process by its environment marker, reports it, and replaces
// it on Start, so the instance never runs twice.
func TestStrayWithoutPidfileIsReplaced(t *testing.T) {
	ctx := context.Background()
	d1 := newTestDriver(t, "", nil)
	spec := testSpec("stray")
	stray := startReady(t, d1, spec)
	d1.Close()
	if err := os.Remove(filepath.Join(d1.instanceDir(spec.InstanceID), pidFileName)); err != nil {
		t.Fatal(err)
	}

	d2 := newTestDriver(t, d1.cfg.DataDir, nil)
	if ids, _ := d2.Running(ctx); !slices.Equal(ids, []string{spec.InstanceID}) {
		t.Fatalf("running = %v; a process without pidfile must still count", ids)
	}
	if st, _ := d2.Status(ctx, spec.InstanceID); st.PID != stray.PID || st.State != drivers.StateStarting {
		t.Fatalf("status of the stray: %+v", st)
	}
	fresh := startReady(t, d2, spec)
	if fresh.PID == stray.PID || !processGone(stray.PID) {
		t.Fatalf("the stray (pid %d) should have been replaced, got pid %d", stray.PID, fresh.PID)
	}
	if pids := findInstanceProcesses(d2.instanceDir(spec.InstanceID)); !slices.Equal(pids, []int{fresh.PID}) {
		t.Fatalf("processes of the instance: %v", pids)
	}
	if fresh.Port != stray.Port {
		t.Fatalf("port moved: %d -> %d", stray.Port, fresh.Port)
	}
}

// TestModulesInstalledOnce: palette modules of the spec are installed with npm before the first start and
// loaded by Node-RED; a restart with the same modules does not run npm again.
func TestModulesInstalledOnce(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, "", nil)
	spec := testSpec("modules")
	spec.Modules = map[string]string{"node-red-node-random": "0.4.1"}
	st := startReady(t, d, spec)
	if code, body := httpGet(t, st.URL+drivers.AdminRoot+"nodes/node-red-node-random", spec.AdminToken); code != 200 || !strings.Contains(body, `"version":"0.4.1"`) {
		t.Fatalf("module not loaded: %d %s", code, body)
	}
	marker := filepath.Join(d.instanceDir(spec.InstanceID), modulesFileName)
	before, err := os.Stat(marker)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	startReady(t, d, spec)
	after, _ := os.Stat(marker)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("modules were installed again for an unchanged spec")
	}
}

// TestStackOnTheWrongNodeIsAnInvalidSpec: a stack whose Node-RED refuses the Node.js it would run on (Node-RED 5
// on the machine's Node 20) fails its start as an invalid spec, which the platform does not retry.
func TestStackOnTheWrongNodeIsAnInvalidSpec(t *testing.T) {
	d := newTestDriver(t, "", nil)
	spec := testSpec("too-new")
	spec.NodeRedVersion = "5.0.7"
	_, err := d.Start(context.Background(), spec)
	if !errors.Is(err, drivers.ErrInvalidSpec) || !strings.Contains(err.Error(), "engines") {
		t.Fatalf("start gave %v, want an invalid spec naming the engines", err)
	}
}
