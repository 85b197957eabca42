// Package storage is Flowyard's store: bun models, migrations that run on SQLite and Postgres, and one file of
// queries per resource. Nothing outside this package sees a bun model.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/flowyard/flowyard/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store runs queries on a database or inside one transaction.
type Store struct {
	db   bun.IDB
	root *bun.DB
}

// Open connects to the database named by url: "postgres://…" for Postgres, otherwise a SQLite file path
// (or "sqlite://path"). It does not migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	var db *bun.DB
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url), pgdriver.WithTimeout(5*time.Second)))
		sqldb.SetMaxOpenConns(20)
		sqldb.SetMaxIdleConns(20)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = bun.NewDB(sqldb, pgdialect.New())
	} else {
		sqldb, err := openSQLite(strings.TrimPrefix(url, "sqlite://"))
		if err != nil {
			return nil, err
		}
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{db: db, root: db}, nil
}

// sqliteBusyTimeout is how long a writer waits for another: for SQLite's lock, and for the write gate.
const sqliteBusyTimeout = 10 * time.Second

// openSQLite opens a SQLite file in WAL mode. Transactions begin IMMEDIATE so that two writers queue on the
// busy timeout instead of failing when a read lock cannot be upgraded.
func openSQLite(path string) (*sql.DB, error) {
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database dir: %w", err)
		}
	}
	dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=busy_timeout(" + fmt.Sprint(sqliteBusyTimeout.Milliseconds()) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	probe, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	sqldb := sql.OpenDB(&gatedConnector{dsn: dsn, drv: probe.Driver(), gate: newWriteGate(sqliteBusyTimeout)})
	_ = probe.Close() // it only lent its driver; it never opened a connection
	// Writers queue at the write gate while holding a connection; enough connections keep readers (which WAL
	// lets run beside the writer) from starving behind them under a burst of writes.
	sqldb.SetMaxOpenConns(32)
	sqldb.SetMaxIdleConns(32)
	return sqldb, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.root.Close() }

// Dialect names the database kind: "sqlite" or "pg".
func (s *Store) Dialect() string { return s.root.Dialect().Name().String() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.root.NewSelect().ColumnExpr("1").Scan(ctx, &one)
}

// RunInTx runs fn in one transaction with a Store bound to it. Inside fn use only the Store it is given.
func (s *Store) RunInTx(ctx context.Context, fn func(ctx context.Context, tx *Store) error) error {
	if _, inTx := s.db.(bun.Tx); inTx {
		return fn(ctx, s)
	}
	return s.root.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return fn(ctx, &Store{db: tx, root: s.root})
	})
}

// Migrate applies every pending migration.
func (s *Store) Migrate(ctx context.Context) ([]string, error) { return s.migrate(ctx, migrationFiles) }

// migrate applies the pending migrations of fsys.
func (s *Store) migrate(ctx context.Context, fsys fs.FS) ([]string, error) {
	migrations := migrate.NewMigrations()
	if err := migrations.Discover(fsys); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	// Migrations are templates: reference guards differ in syntax between the databases (see guards.go).
	m := migrate.NewMigrator(s.root, migrations, migrate.WithTemplateData(migrationTemplate{dialect: s.Dialect()}))
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck // the lock row is removed on the next run anyway
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var names []string
	for _, mg := range group.Migrations {
		names = append(names, mg.Name)
	}
	return names, nil
}

// classify turns driver errors into domain errors where a client can act on them.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return domain.NotFound(what)
	case isUniqueViolation(err):
		return domain.Conflict("already_exists", fmt.Sprintf("A %s with that name already exists.", what))
	case isReferenceViolation(err):
		return errForeignReference(what)
	}
	return err
}

func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C') == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// now is the store's clock, truncated to microseconds so SQLite and Postgres round-trip the same value.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
