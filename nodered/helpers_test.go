package nodered

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/internal/proctest"
)

// testNodeRedVersion runs on the machine's Node 20 (docs/node-red.md §0).
const testNodeRedVersion = "4.1.15"

// testStacksDir is shared across test runs so that Node-RED is installed once.
func testStacksDir() string {
	if dir := os.Getenv("FLOWYARD_TEST_STACKS_DIR"); dir != "" {
		return dir
	}
	return "/tmp/flowyard-test-stacks"
}

var (
	sharedRuntimeOnce sync.Once
	sharedRuntime     Runtime
	sharedRuntimeErr  error
)

// testRuntime installs (once) and returns node-red 4.1.15 on the machine's node.
func testRuntime(t *testing.T) Runtime {
	t.Helper()
	sharedRuntimeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sharedRuntime, sharedRuntimeErr = EnsureStack(ctx, testStacksDir(), testNodeRedVersion, "", testLogger(t))
	})
	if sharedRuntimeErr != nil {
		t.Fatalf("node-red %s stack is needed and could not be installed: %v", testNodeRedVersion, sharedRuntimeErr)
	}
	return sharedRuntime
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newToken returns a random token and its settings.js digest.
func newToken(t *testing.T) (token, digest string) {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	token = "tok-" + hex.EncodeToString(b)
	return token, TokenDigest(token)
}

// redProcess is one running Node-RED started by a test.
type redProcess struct {
	t        *testing.T
	cmd      *exec.Cmd
	baseURL  string // http://127.0.0.1:port
	adminURL string // baseURL + admin root, without the trailing slash
	token    string // admin token with "*" permissions
	userDir  string
	// tokenHeader is where the token goes ("" = Authorization: Bearer).
	tokenHeader string
	output      *proctest.Output
	exited      chan struct{}
	exitErr     error
}

type redOptions struct {
	params SettingsParams // Port, CredentialSecret and a "*" token are filled in
	env    []string
}

// startNodeRED renders settings.js into userDir and starts Node-RED on it.
// The process is stopped (SIGTERM, then SIGKILL) when the test ends.
func startNodeRED(t *testing.T, rt Runtime, userDir string, opts redOptions) *redProcess {
	t.Helper()
	p := opts.params
	if p.Port == 0 {
		p.Port = freePort(t)
	}
	if p.CredentialSecret == "" && p.SecretsFile == "" {
		p.CredentialSecret = "test-credential-secret"
	}
	token, digest := newToken(t)
	if p.AdminTokens == nil {
		p.AdminTokens = map[string]string{}
	}
	p.AdminTokens[digest] = "*"
	js, err := RenderSettings(p)
	if err != nil {
		t.Fatalf("render settings: %v", err)
	}
	if err := os.MkdirAll(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	settingsPath := filepath.Join(userDir, "settings.js")
	if err := os.WriteFile(settingsPath, js, 0o600); err != nil {
		t.Fatal(err)
	}
	proc := &redProcess{
		t:           t,
		baseURL:     "http://127.0.0.1:" + strconv.Itoa(p.Port),
		token:       token,
		userDir:     userDir,
		tokenHeader: strings.ToLower(p.TokenHeader),
		output:      &proctest.Output{},
		exited:      make(chan struct{}),
	}
	root := p.HTTPAdminRoot
	if root == "" {
		root = "/"
	}
	proc.adminURL = strings.TrimRight(proc.baseURL+root, "/")
	proc.cmd = exec.Command(rt.NodeBin, rt.RedJS, "-u", userDir, "-s", settingsPath)
	proc.cmd.Env = append(os.Environ(), opts.env...)
	proc.cmd.Stdout = proc.output
	proc.cmd.Stderr = proc.output
	if err := proc.cmd.Start(); err != nil {
		t.Fatalf("start node-red: %v", err)
	}
	go func() {
		proc.exitErr = proc.cmd.Wait()
		close(proc.exited)
	}()
	t.Cleanup(proc.stop)
	return proc
}

// stop ends the process by its PID: SIGTERM, and SIGKILL if it hangs.
func (p *redProcess) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls GET /flows/state until the flows run.
func (p *redProcess) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.t.Fatalf("node-red exited before it was ready (%v):\n%s", p.exitErr, p.output.String())
		default:
		}
		status, body := p.tryAdmin("GET", "/flows/state", nil, nil)
		if status == http.StatusOK && strings.Contains(body, `"state":"start"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("node-red not ready within the deadline:\n%s", p.output.String())
}

// waitExit waits for the process to end on its own and returns its output.
func (p *redProcess) waitExit(timeout time.Duration) string {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.output.String()
	case <-time.After(timeout):
		p.t.Fatalf("node-red still running after %s:\n%s", timeout, p.output.String())
		return ""
	}
}

// admin calls the admin API with the "*" token and fails the test on a
// transport error.
func (p *redProcess) admin(method, path string, body any, headers map[string]string) (int, string) {
	p.t.Helper()
	status, text := p.tryAdmin(method, path, body, headers)
	if status == 0 {
		p.t.Fatalf("%s %s: %s", method, path, text)
	}
	return status, text
}

func (p *redProcess) tryAdmin(method, path string, body any, headers map[string]string) (int, string) {
	all := map[string]string{"Authorization": "Bearer " + p.token}
	if p.tokenHeader != "" {
		all = map[string]string{p.tokenHeader: p.token}
	}
	for k, v := range headers {
		all[k] = v
	}
	return httpDo(method, p.adminURL+path, body, all)
}

// httpDo sends one request; status 0 means a transport error (in the text).
func httpDo(method, url string, body any, headers map[string]string) (int, string) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err.Error()
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return 0, err.Error()
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// deployV2 posts flows (with node credentials inline) as a full deploy.
func (p *redProcess) deployV2(flows []map[string]any) {
	p.t.Helper()
	status, body := p.admin("POST", "/flows", map[string]any{"flows": flows},
		map[string]string{"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"})
	if status != http.StatusOK {
		p.t.Fatalf("deploy: %d %s", status, body)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
