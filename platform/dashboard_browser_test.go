package platform_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// browserTestTools returns the repository's directory, Debian's chromium and node, which the browser tests
// (web/e2e, `node --test` with playwright-core) need, or fails the test naming what is missing.
func browserTestTools(t *testing.T) (repo, chromium, node string) {
	t.Helper()
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	chromium = os.Getenv("FLOWYARD_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: the dashboard's browser tests need Debian's chromium (`make web-test-deps` runs apt-get install -y chromium)", chromium)
	}
	if _, err := os.Stat(filepath.Join(repo, "web", "e2e", "node_modules", "playwright-core")); err != nil {
		t.Fatalf("web/e2e/node_modules is missing: run `make web-test-deps` (npm ci in web/e2e)")
	}
	node, err = exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing: the dashboard's browser tests run with `node --test`")
	}
	return repo, chromium, node
}

// figureInstances is how many instances the figures' application holds.
const figureInstances = 100

// TestDashboardInBrowser runs the web dashboard's browser tests (web/e2e, `node --test` with playwright-core
// driving Debian's chromium) against `flowyard dev`: the whole scenario of web/e2e/dashboard.test.mjs, and the
// instance-list figures of web/e2e/figures.test.mjs (written to bench/dashboard.json under make bench,
// FLOWYARD_BENCH=1; to a temporary file otherwise, so a test run leaves the tree clean). FLOWYARD_SCREENSHOTS=1
// also writes the main pages to docs/screenshots/.
func TestDashboardInBrowser(t *testing.T) {
	repo, chromium, node := browserTestTools(t)
	agentBin := filepath.Join(t.TempDir(), "flowyard-agent")
	build := exec.Command("go", "build", "-o", agentBin, "./cmd/flowyard-agent")
	build.Dir = repo
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the agent: %s", out)

	// The alerts page's test delivers to a webhook receiver it runs on 127.0.0.1.
	dev := startDev(t, "--webhooks-allow-private")
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	for _, u := range []string{"member", "viewer"} {
		c.Must(201, "POST", "/api/v1/users", map[string]any{"email": u + "@example.com", "name": "A " + u, "password": u + "-password"})
	}
	figures := seedFigureApplication(t, c, dev)

	env := append(os.Environ(),
		"FLOWYARD_URL="+dev.URL, "FLOWYARD_CHROMIUM="+chromium, "FLOWYARD_AGENT_BIN="+agentBin,
		"FLOWYARD_ADMIN_EMAIL=admin@example.com", "FLOWYARD_ADMIN_PASSWORD=admin-password",
		"FLOWYARD_MEMBER_EMAIL=member@example.com", "FLOWYARD_MEMBER_PASSWORD=member-password",
		"FLOWYARD_VIEWER_EMAIL=viewer@example.com", "FLOWYARD_VIEWER_PASSWORD=viewer-password",
		"FLOWYARD_LOG_FILE="+dev.LogFile, "FLOWYARD_FIGURES_PATH="+figures, fmt.Sprintf("FLOWYARD_FIGURES_INSTANCES=%d", figureInstances),
		"FLOWYARD_BENCH_FILE="+figuresFile(t, repo))
	env = append(env, ssoBrowserEnv(t, c, dev.URL)...)
	if os.Getenv("FLOWYARD_SCREENSHOTS") == "1" {
		env = append(env, "FLOWYARD_SCREENSHOTS_DIR="+filepath.Join(repo, "docs", "screenshots"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "web/e2e/")
	cmd.Dir = repo
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("the browser tests failed (%v); their report is above", err)
	}
}

// seedFigureApplication gives a team an application with figureInstances stopped instances, written through the
// storage package (no Node-RED needed), and returns the dashboard path of its instance list.
func seedFigureApplication(t *testing.T, c *apitest.Client, dev devEnv) string {
	t.Helper()
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Figures", "slug": "figures"}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "hundred"}).String("id")
	objects := seededObjects(c)
	ctx := context.Background()
	st, err := storage.Open(ctx, filepath.Join(dev.DataDir, "flowyard.db"))
	require.NoError(t, err)
	defer st.Close()
	for i := range figureInstances {
		require.NoError(t, st.InsertInstance(ctx, &storage.Instance{ID: domain.NewID(), Name: fmt.Sprintf("figure-%03d", i), ApplicationID: app, TeamID: team,
			InstanceTypeID: objects["instanceTypeId"].(string), StackID: objects["stackId"].(string), TemplateID: objects["templateId"].(string),
			State: "stopped", DesiredState: "stopped", Settings: map[string]any{}, Env: []domain.EnvVar{}, Modules: map[string]string{}}))
	}
	return "/teams/figures/applications/" + app
}

// testWriter sends a child process's output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// figuresFile is where the browser writes the instance-list figures.
func figuresFile(t *testing.T, repo string) string {
	if os.Getenv("FLOWYARD_BENCH") == "1" {
		return filepath.Join(repo, "bench", "dashboard.json")
	}
	return filepath.Join(t.TempDir(), "dashboard.json")
}
