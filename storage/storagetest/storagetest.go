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

// WaitForInstanceWrite waits (up to 30 s) until a transaction on the Postgres database at dbURL is writing an
// instance's content (flows, credentials): the apply step of a rollback or a promotion. A crash test kills the
// platform at that moment, in the middle of the write.
func WaitForInstanceWrite(t testing.TB, dbURL string) {
	t.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dbURL)))
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND xact_start IS NOT NULL AND query LIKE 'INSERT INTO "instance_storage"%'`).Scan(&n)
		if err != nil {
			t.Fatalf("watch the database's activity: %v", err)
		}
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no write of an instance's content started within 30 s")
}
