package temporalenv

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/domain"
)

// Environment of the child process in TestDevServerDiesWithParent.
const (
	childDataDirEnv = "FLOWYARD_TEMPORALENV_CHILD_DATA_DIR"
	childBinEnv     = "FLOWYARD_TEMPORALENV_CHILD_BIN"
	childPIDPrefix  = "TEMPORAL_PID="
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDataDirEnv); dir != "" {
		runOrphanChild(dir, os.Getenv(childBinEnv))
		return
	}
	os.Exit(m.Run())
}

// runOrphanChild is the re-executed test binary: it starts a dev server, prints its PID and waits to be
// killed.
func runOrphanChild(dataDir, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := StartDevServer(ctx, DevServerOptions{
		Bin: bin, DataDir: dataDir, Headless: true, Namespace: "orphan",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s%d\n", childPIDPrefix, srv.PID())
	select {}
}

// temporalBin returns the repository's Temporal CLI, failing the test when it has not been built.
func temporalBin(t testing.TB) string {
	t.Helper()
	bin, err := filepath.Abs("../bin/temporal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the Temporal CLI is missing at %s: run `make bin/temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)", bin)
	}
	return bin
}

// freePortPair finds a free port P whose P+1000 is free too, for a dev server with its default UI port.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		port, err := freePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if port+1000 <= 65535 && checkPortFree("127.0.0.1", port+1000) == nil {
			return port
		}
	}
	t.Fatal("no free port pair found")
	return 0
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startServer(t *testing.T, ctx context.Context, opts DevServerOptions) *DevServer {
	t.Helper()
	began := time.Now()
	srv, err := StartDevServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dev server pid %d ready on %s after %s", srv.PID(), srv.Address(), time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Stop(stopCtx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return srv
}

func dialServer(t *testing.T, ctx context.Context, srv *DevServer, namespace string) client.Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Address, cfg.Namespace = srv.Address(), namespace
	c, err := Dial(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// markInstance is the trivial workflow of the lifecycle test: it tags itself with search attributes.
func markInstance(ctx workflow.Context, instanceID string) (string, error) {
	err := workflow.UpsertTypedSearchAttributes(ctx,
		temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrInstanceID).ValueSet(instanceID),
		temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrRolloutID).ValueSet("marked"),
	)
	return "marked " + instanceID, err
}

// waitForWorkflows lists workflows matching query until exactly want are visible (visibility is
// eventually consistent).
func waitForWorkflows(t *testing.T, ctx context.Context, c client.Client, namespace, query string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		if err == nil && len(resp.Executions) == want {
			var ids []string
			for _, e := range resp.Executions {
				ids = append(ids, e.Execution.WorkflowId)
			}
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("list %q: want %d workflows, got %v (err %v)", query, want, resp.GetExecutions(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestDevServerLifecycle(t *testing.T) {
	bin := temporalBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	port := freePortPair(t)
	attrs, err := DefaultConfig().SearchAttributeTypes()
	if err != nil {
		t.Fatal(err)
	}
	opts := DevServerOptions{
		Bin: bin, DataDir: dataDir, Port: port, Namespace: "flowyard",
		SearchAttributes: attrs, Logger: testLogger(t),
		SQLitePragmas: map[string]string{"journal_mode": "wal"},
	}

	// First start: fresh database, namespace and search attributes registered by the CLI.
	srv := startServer(t, ctx, opts)
	if want := fmt.Sprintf("http://127.0.0.1:%d", port+1000); srv.UIURL() != want {
		t.Errorf("UIURL = %q, want %q", srv.UIURL(), want)
	}
	assertUIServes(t, ctx, srv.UIURL())
	c := dialServer(t, ctx, srv, "flowyard")
	if err := Healthy(ctx, c); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	run := runMarkInstance(t, ctx, c, "inst-42")
	waitForWorkflows(t, ctx, c, "flowyard", `InstanceId = "inst-42" AND RolloutId = "marked"`, 1)
	waitForWorkflows(t, ctx, c, "flowyard", `InstanceId = "inst-other"`, 0)
	if _, err := os.Stat(filepath.Join(dataDir, "temporal.db-wal")); err != nil {
		t.Errorf("the journal_mode pragma did not reach SQLite: %v", err)
	}

	stopCtx, stopCancel := context.WithTimeout(ctx, 20*time.Second)
	defer stopCancel()
	if err := srv.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	downCtx, downCancel := context.WithTimeout(ctx, 3*time.Second)
	defer downCancel()
	if err := Healthy(downCtx, c); err == nil {
		t.Error("Healthy must fail once the server is stopped")
	}

	// Restart over the same database with one more attribute: the namespace already exists, the
	// workflow is still there, and the new attribute is added.
	opts.SearchAttributes = map[string]enumspb.IndexedValueType{
		domain.SearchAttrInstanceID: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RolloutPercent":            enumspb.INDEXED_VALUE_TYPE_INT,
	}
	srv = startServer(t, ctx, opts)
	c = dialServer(t, ctx, srv, "flowyard")
	desc, err := c.DescribeWorkflow(ctx, "mark/inst-42", run)
	if err != nil {
		t.Fatalf("workflow from before the restart: %v", err)
	}
	if status := desc.Status; status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("status after restart = %s", status)
	}
	waitForWorkflows(t, ctx, c, "flowyard", `InstanceId = "inst-42"`, 1)
	assertSearchAttribute(t, ctx, c, "flowyard", "RolloutPercent", enumspb.INDEXED_VALUE_TYPE_INT)
	assertSearchAttribute(t, ctx, c, "flowyard", domain.SearchAttrTeamID, enumspb.INDEXED_VALUE_TYPE_KEYWORD)

	t.Run("EnsureNamespaceAndSearchAttributes", func(t *testing.T) {
		testEnsure(t, ctx, srv)
	})
}

func runMarkInstance(t *testing.T, ctx context.Context, c client.Client, instanceID string) string {
	t.Helper()
	w := worker.New(c, "lifecycle-test", worker.Options{})
	w.RegisterWorkflow(markInstance)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	handle, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "mark/" + instanceID, TaskQueue: "lifecycle-test"}, markInstance, instanceID)
	if err != nil {
		t.Fatal(err)
	}
	var result string
	if err := handle.Get(ctx, &result); err != nil || result != "marked "+instanceID {
		t.Fatalf("workflow result %q, err %v", result, err)
	}
	return handle.GetRunID()
}

func assertUIServes(t *testing.T, ctx context.Context, uiURL string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, uiURL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("UI at %s does not answer 200: %v", uiURL, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func assertSearchAttribute(t *testing.T, ctx context.Context, c client.Client, namespace, name string, want enumspb.IndexedValueType) {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := resp.CustomAttributes[name]; !ok || got != want {
		t.Errorf("search attribute %s = %s (present %v), want %s", name, got, ok, want)
	}
}

// testEnsure runs the production registration path against the dev server, on a namespace the server
// did not create.
func testEnsure(t *testing.T, ctx context.Context, srv *DevServer) {
	cfg := DefaultConfig()
	cfg.Address, cfg.Namespace = srv.Address(), "ensured"
	c, err := Dial(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 2 { // the second round finds everything in place
		if err := EnsureNamespace(ctx, c, cfg); err != nil {
			t.Fatalf("EnsureNamespace round %d: %v", i, err)
		}
		if err := EnsureSearchAttributes(ctx, c, cfg); err != nil {
			t.Fatalf("EnsureSearchAttributes round %d: %v", i, err)
		}
	}
	desc, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "ensured"})
	if err != nil {
		t.Fatal(err)
	}
	if got := desc.Config.WorkflowExecutionRetentionTtl.AsDuration(); got != 7*24*time.Hour {
		t.Errorf("retention = %s", got)
	}
	for name := range cfg.SearchAttributes {
		assertSearchAttribute(t, ctx, c, "ensured", name, enumspb.INDEXED_VALUE_TYPE_KEYWORD)
	}

	cfg.SearchAttributes = map[string]string{domain.SearchAttrTeamID: "Int"}
	err = EnsureSearchAttributes(ctx, c, cfg)
	if err == nil || !strings.Contains(err.Error(), "search attribute TeamId exists as Keyword, configured as Int") {
		t.Errorf("a type conflict must be reported, got %v", err)
	}
}

func TestDevServerPortTaken(t *testing.T) {
	bin := temporalBin(t)
	occupy := func(port int) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}

	frontend := freePortPair(t)
	occupy(frontend)
	_, err := StartDevServer(context.Background(), DevServerOptions{Bin: bin, DataDir: t.TempDir(), Port: frontend})
	if want := fmt.Sprintf("frontend port: port %d on 127.0.0.1 is already in use", frontend); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("want %q, got %v", want, err)
	}

	frontend = freePortPair(t)
	occupy(frontend + 1000)
	_, err = StartDevServer(context.Background(), DevServerOptions{Bin: bin, DataDir: t.TempDir(), Port: frontend})
	if want := fmt.Sprintf("ui port: port %d on 127.0.0.1 is already in use", frontend+1000); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("want %q, got %v", want, err)
	}
}

// TestDevServerExitDuringStartup checks that a server that dies while starting is reported at once,
// with the end of its log.
func TestDevServerExitDuringStartup(t *testing.T) {
	_, err := StartDevServer(context.Background(), DevServerOptions{
		Bin: temporalBin(t), DataDir: t.TempDir(), Headless: true, LogLevel: "loud", Logger: testLogger(t),
	})
	if err == nil || !strings.Contains(err.Error(), "temporal exited during start-up") || !strings.Contains(err.Error(), `invalid argument "loud" for "--log-level" flag`) {
		t.Fatalf("want an exit error quoting the log, got %v", err)
	}
}

func TestDevServerMissingBinary(t *testing.T) {
	_, err := StartDevServer(context.Background(), DevServerOptions{Bin: filepath.Join(t.TempDir(), "temporal"), DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make bin/temporal") {
		t.Fatalf("want a hint to build the CLI, got %v", err)
	}
}

func TestDevServerSearchAttributeSlots(t *testing.T) {
	attrs := map[string]enumspb.IndexedValueType{}
	for i := range 4 {
		attrs[fmt.Sprintf("Count%d", i)] = enumspb.INDEXED_VALUE_TYPE_INT
	}
	_, err := StartDevServer(context.Background(), DevServerOptions{Bin: temporalBin(t), DataDir: t.TempDir(), SearchAttributes: attrs})
	if err == nil || !strings.Contains(err.Error(), "4 search attributes of type Int, the dev server holds at most 3") {
		t.Fatalf("got %v", err)
	}
}

// TestDevServerDiesWithParent SIGKILLs a process that runs a dev server and checks that the server
// does not outlive it.
func TestDevServerDiesWithParent(t *testing.T) {
	bin := temporalBin(t)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDataDirEnv+"="+t.TempDir(), childBinEnv+"="+bin)
	child.Stderr = testWriter{t}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	pid := readChildPID(t, bufio.NewScanner(stdout), 50*time.Second)
	t.Cleanup(func() { killIfTemporal(pid) }) // only if the assertion below fails
	if !processAlive(pid) {
		t.Fatalf("temporal pid %d is not running before the parent is killed", pid)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	deadline := time.Now().Add(15 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("temporal pid %d still runs 15 s after its parent was SIGKILLed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readChildPID(t *testing.T, lines *bufio.Scanner, timeout time.Duration) int {
	t.Helper()
	found := make(chan int, 1)
	go func() {
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), childPIDPrefix); ok {
				if pid, err := strconv.Atoi(rest); err == nil {
					found <- pid
					return
				}
			}
		}
		close(found)
	}()
	select {
	case pid, ok := <-found:
		if !ok {
			t.Fatal("the child exited without starting a dev server (see its log above)")
		}
		return pid
	case <-time.After(timeout):
		t.Fatalf("the child did not report a dev server within %s", timeout)
		return 0
	}
}

// processAlive reports whether pid runs; a zombie waiting for a reaper counts as dead.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself contain spaces.
	_, after, ok := strings.Cut(string(stat), ") ")
	return ok && len(after) > 0 && after[0] != 'Z' && after[0] != 'X'
}

func killIfTemporal(pid int) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && strings.Contains(string(cmdline), "start-dev") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestDevServerRelativeDataDir starts a server with a data dir relative to the working directory, as
// `flowyard dev` does with its default ./data: the server runs inside that folder, so the path must be
// resolved once, before it starts.
func TestDevServerRelativeDataDir(t *testing.T) {
	bin := temporalBin(t)
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := StartDevServer(ctx, DevServerOptions{Bin: bin, DataDir: filepath.Join("data", "temporal"), Headless: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start with a relative data dir: %v", err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	if _, err := os.Stat(filepath.Join("data", "temporal", "temporal.db")); err != nil {
		t.Errorf("the database is not in ./data/temporal: %v", err)
	}
}

// TestDevServerGetsAMinimalEnvironment starts a stand-in for the CLI that writes its environment to a file:
// none of the platform's variables (its secrets among them) and no TEMPORAL_* client setting may be in it.
func TestDevServerGetsAMinimalEnvironment(t *testing.T) {
	for name, value := range map[string]string{
		"FLOWYARD_SECRET_KEY": "platform-secret", "FLOWYARD_DATABASE_URL": "postgres://flowyard:pw@db/flowyard",
		"FLOWYARD_ADMIN_PASSWORD": "admin-password", "FLOWYARD_STRIPE_KEY": "sk_test_x",
		"TEMPORAL_ADDRESS": "cloud.example:7233", "OPERATOR_TOKEN": "operator-secret", "HOME": "/home/flowyard",
	} {
		t.Setenv(name, value)
	}
	dir := t.TempDir()
	bin, envFile := filepath.Join(dir, "temporal"), filepath.Join(dir, "env.txt")
	script := "#!/bin/sh\nenv > '" + envFile + "'\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := StartDevServer(context.Background(), DevServerOptions{Bin: bin, DataDir: t.TempDir(), Headless: true, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "temporal exited during start-up") {
		t.Fatalf("the stand-in exits at once; got %v", err)
	}
	raw, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("the stand-in did not run: %v", err)
	}
	env := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FLOWYARD_") || strings.HasPrefix(name, "TEMPORAL_") || name == "OPERATOR_TOKEN" {
			t.Errorf("the dev server inherited %s", name)
		}
	}
	if !slices.Contains(env, "HOME=/home/flowyard") {
		t.Errorf("the dev server lacks HOME (its CLI config): %q", env)
	}
}
