// Package storagetest gives tests a fresh, migrated store on SQLite or Postgres.
package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Dialects are the databases every storage test runs on.
var Dialects = []string{"sqlite", "postgres"}

// PostgresAdminURL is the database used to create one scratch database per test.
func PostgresAdminURL() string {
	if u := os.Getenv("FLOWYARD_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// New returns a migrated store on a new, empty database of the dialect, removed when the test ends.
// Without a reachable Postgres the Postgres variant skips, unless FLOWYARD_REQUIRE_POSTGRES=1 (CI), where it fails.
func New(t testing.TB, dialect string) *storage.Store {
	t.Helper()
	url := NewDatabase(t, dialect)
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// NewDatabase creates an empty database of the dialect and returns its URL.
func NewDatabase(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == "sqlite" {
		return filepath.Join(t.TempDir(), "flowyard.db")
	}
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(PostgresAdminURL()), pgdriver.WithTimeout(5*time.Second)))
	defer admin.Close()
	if err := admin.Ping(); err != nil {
		if os.Getenv("FLOWYARD_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("Postgres is required (FLOWYARD_REQUIRE_POSTGRES=1) but %s does not answer: %v", PostgresAdminURL(), err)
		}
		t.Skipf("Postgres not reachable at %s: %v", PostgresAdminURL(), err)
	}
	name := "fy_" + strings.ToLower(domain.NewID())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		a := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(PostgresAdminURL())))
		defer a.Close()
		_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return replaceDatabase(PostgresAdminURL(), name)
}

func replaceDatabase(url, name string) string {
	q := ""
	if i := strings.Index(url, "?"); i >= 0 {
		url, q = url[:i], url[i:]
	}
	return fmt.Sprintf("%s/%s%s", url[:strings.LastIndex(url, "/")], name, q)
}

// Each runs fn once per dialect as a subtest.
func Each(t *testing.T, fn func(t *testing.T, st *storage.Store)) {
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, New(t, d))
		})
	}
}

// InstanceWriteGate holds back every write of instances' content (flows, credentials) on a Postgres database,
// so that a crash test can kill the platform inside the transaction of a rollback's or a promotion's write, every
// time: the write waits at the gate with its transaction open, and never commits once its process is dead.
type InstanceWriteGate struct {
	t  testing.TB
	db *sql.DB
	tx *sql.Tx
}

// HoldInstanceWrites closes the gate: a transaction of the test takes a SHARE lock on instance_storage, which
// lets reads go on and makes writes wait, until Release (or the end of the test).
func HoldInstanceWrites(t testing.TB, dbURL string) *InstanceWriteGate {
	t.Helper()
	g := &InstanceWriteGate{t: t, db: sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dbURL)))}
	t.Cleanup(func() { g.Release(); _ = g.db.Close() })
	tx, err := g.db.Begin()
	if err != nil {
		t.Fatalf("begin the gate's transaction: %v", err)
	}
	g.tx = tx
	if _, err := tx.Exec(`LOCK TABLE instance_storage IN SHARE MODE`); err != nil {
		t.Fatalf("lock instance_storage: %v", err)
	}
	return g
}

// WaitForWriter waits (up to a minute) until a write of the instance's flows or credentials waits at the gate (not
// one of the settings or sessions its Node-RED saves now and then).
func (g *InstanceWriteGate) WaitForWriter(instanceID string) {
	g.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var n int
		err := g.db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO "instance_storage"%'
			AND (query LIKE '%''' || $1 || ''', ''flows''%' OR query LIKE '%''' || $1 || ''', ''credentials''%')`, instanceID).Scan(&n)
		if err != nil {
			g.t.Fatalf("watch the database's activity: %v", err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("no write of instance %s's content reached the gate within a minute", instanceID)
}

// Release opens the gate: the waiting writes go on.
func (g *InstanceWriteGate) Release() {
	if g.tx != nil {
		_ = g.tx.Rollback()
	}
}

// NewInstance seeds the platform's defaults and stores an instance in a new team and application, on the
// seeded instance type, stack and template, with its secrets sealed by sealer. change, when not nil,
// adjusts the instance before it is stored.
func NewInstance(t testing.TB, st *storage.Store, sealer *domain.Sealer, change func(*storage.Instance)) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			t.Fatalf("new instance: %v", err)
		}
	}
	must(st.SeedDefaults(ctx))
	teamTypes, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	must(err)
	team := &storage.Team{ID: domain.NewID(), Name: "T", Slug: "t-" + strings.ToLower(domain.NewID()), TeamTypeID: teamTypes[0].ID}
	must(st.InsertTeam(ctx, team))
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app"}
	must(st.InsertApplication(ctx, app))
	types, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	must(err)
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	must(err)
	templates, _, err := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	must(err)
	id := domain.NewID()
	in := &storage.Instance{ID: id, Name: "instance-" + strings.ToLower(id), ApplicationID: app.ID, TeamID: team.ID,
		InstanceTypeID: types[0].ID, StackID: stacks[0].ID, TemplateID: templates[0].ID, State: domain.InstanceStopped, DesiredState: domain.InstanceRunning,
		Settings: map[string]any{}, Env: []domain.EnvVar{}, Modules: map[string]string{}, CredentialSecret: sealer.Seal("credential-secret"),
		AdminToken: sealer.Seal("admin"), ReadToken: sealer.Seal("read"), RuntimeToken: sealer.Seal("runtime")}
	if change != nil {
		change(in)
	}
	must(st.InsertInstance(ctx, in))
	return in
}
