package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage"
)

// pgCluster is a throwaway Postgres server of this machine's installation, so a test can stop and start it
// without disturbing the shared one.
type pgCluster struct {
	t        *testing.T
	bin, dir string
	port     int
}

func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	require.NotEmpty(t, bins, "PostgreSQL's server binaries (pg_ctl, initdb) are needed: apt-get install postgresql")
	dir, err := os.MkdirTemp("", "fy-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, exec.Command("chown", "postgres", dir).Run(), "the test runs Postgres as the postgres user")
	c := &pgCluster{t: t, bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: freeTCPPort(t)}
	c.asPostgres(filepath.Join(c.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres")
	c.start()
	t.Cleanup(func() { c.pgctl("stop", "-m", "immediate") })
	return c
}

func (c *pgCluster) asPostgres(args ...string) {
	c.t.Helper()
	out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...).CombinedOutput()
	require.NoError(c.t, err, string(out))
}

func (c *pgCluster) pgctl(args ...string) {
	c.t.Helper()
	base := []string{filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-w"}
	c.asPostgres(append(base, args...)...)
}

func (c *pgCluster) start() {
	c.pgctl("start", "-l", filepath.Join(c.dir, "log"), "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir))
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// serveOnCluster migrates and seeds the cluster's database, adds the user owner@example.com, and serves the API
// on it.
func serveOnCluster(t *testing.T, pg *pgCluster) *apitest.Env {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, pg.url())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Migrate(ctx)
	require.NoError(t, err)
	require.NoError(t, st.SeedDefaults(ctx))
	u, err := api.NewUser("owner@example.com", "Owner", testPassword, false)
	require.NoError(t, err)
	require.NoError(t, st.InsertUser(ctx, u))

	srv := api.New(api.Deps{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &apitest.Env{URL: "http://" + ln.Addr().String(), Store: st}
}

// TestCrashPostgresRestartWhileServing stops Postgres under a running API: /readyz answers 503 naming the store and
// writes fail with the envelope; when Postgres is back the API recovers by itself, with nothing lost.
func TestCrashPostgresRestartWhileServing(t *testing.T) {
	pg := newPGCluster(t)
	env := serveOnCluster(t, pg)
	c := env.Client(t)
	c.Login("owner@example.com", testPassword)
	c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Before"})

	pg.pgctl("stop", "-m", "fast")
	ready := c.Do("GET", "/readyz", nil)
	assert.Equal(t, 503, ready.Status)
	assert.Contains(t, ready.String("message"), "store")
	write := c.Do("POST", "/api/v1/teams", map[string]any{"name": "During"})
	assert.Equal(t, 503, write.Status, string(write.Raw))
	assert.Equal(t, "store_unavailable", write.String("code"))
	assert.NotEmpty(t, write.String("requestId"), "a 5xx carries a request ID, not an internal error text")

	pg.start()
	deadline := time.Now().Add(30 * time.Second)
	for c.Do("GET", "/readyz", nil).Status != 200 {
		require.True(t, time.Now().Before(deadline), "the API did not recover within 30 s of Postgres coming back")
		time.Sleep(100 * time.Millisecond)
	}
	c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "After"})
	var names []string
	for _, it := range c.Must(200, "GET", "/api/v1/teams", nil).Body["items"].([]any) {
		names = append(names, it.(map[string]any)["name"].(string))
	}
	assert.Equal(t, []string{"Before", "After"}, names, "nothing acknowledged was lost, nothing refused was written")
}
