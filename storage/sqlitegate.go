package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// writeGate lets this process's SQLite writers reach the database one at a time, in the order they arrive.
//
// SQLite admits one writer; the others poll its busy handler with growing sleeps, so nobody is woken when the
// lock frees and an unlucky writer can keep losing the race. Measured: 10,000 simulated devices provisioning and
// reporting at once made device status writes fail with SQLITE_BUSY after the 10 s busy timeout while the lock
// was mostly idle between polls. Blocked senders on a channel are served first come, first served, and one is
// woken the moment the slot frees. SQLite's busy timeout still guards against writers in other processes.
type writeGate struct {
	slot    chan struct{}
	timeout time.Duration // as long as SQLite's busy timeout: a writer never waits longer than before
}

// errWriteBacklog is a write that waited its whole timeout in line: the store is overloaded, which passes, so
// the API answers 503 store_unavailable and clients retry.
var errWriteBacklog = errors.New("database is locked")

func newWriteGate(timeout time.Duration) *writeGate {
	return &writeGate{slot: make(chan struct{}, 1), timeout: timeout}
}

func (g *writeGate) enter(ctx context.Context) error {
	select {
	case g.slot <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(g.timeout)
	defer timer.Stop()
	select {
	case g.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w: waited %s for the writers ahead", errWriteBacklog, g.timeout)
	}
}

func (g *writeGate) leave() { <-g.slot }

// gatedConnector opens SQLite connections whose writes pass the gate.
type gatedConnector struct {
	dsn  string
	drv  driver.Driver
	gate *writeGate
}

func (c *gatedConnector) Connect(context.Context) (driver.Conn, error) {
	inner, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	conn, ok := inner.(sqliteConn)
	if !ok {
		_ = inner.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods", inner)
	}
	return &gatedConn{sqliteConn: conn, gate: c.gate}, nil
}

func (c *gatedConnector) Driver() driver.Driver { return c.drv }

// sqliteConn is what modernc's connection implements and database/sql uses.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// gatedConn holds the gate for the whole of a write transaction, and for the length of a write outside one.
// database/sql uses a connection from one goroutine at a time, so inTx needs no lock.
type gatedConn struct {
	sqliteConn
	gate *writeGate
	inTx bool
}

func (c *gatedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *gatedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.sqliteConn.BeginTx(ctx, opts)
	}
	if err := c.gate.enter(ctx); err != nil {
		return nil, err
	}
	tx, err := c.sqliteConn.BeginTx(ctx, opts)
	if err != nil {
		c.gate.leave()
		return nil, err
	}
	c.inTx = true
	return &gatedTx{Tx: tx, end: func() { c.inTx = false; c.gate.leave() }}, nil
}

func (c *gatedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.inTx {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	if err := c.gate.enter(ctx); err != nil {
		return nil, err
	}
	defer c.gate.leave()
	return c.sqliteConn.ExecContext(ctx, query, args)
}

// QueryContext gates writes that return rows (INSERT … RETURNING) until their rows are closed, when SQLite
// has finished the statement.
func (c *gatedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.inTx || isReadQuery(query) {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	if err := c.gate.enter(ctx); err != nil {
		return nil, err
	}
	rows, err := c.sqliteConn.QueryContext(ctx, query, args)
	if err != nil {
		c.gate.leave()
		return nil, err
	}
	return &gatedRows{Rows: rows, end: c.gate.leave}, nil
}

// isReadQuery tells statements that only read; anything else is treated as a write.
func isReadQuery(query string) bool {
	word, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	switch strings.ToUpper(word) {
	case "SELECT", "PRAGMA", "EXPLAIN":
		return true
	}
	return false
}

type gatedTx struct {
	driver.Tx
	once sync.Once
	end  func()
}

func (t *gatedTx) Commit() error {
	defer t.once.Do(t.end)
	return t.Tx.Commit()
}

func (t *gatedTx) Rollback() error {
	defer t.once.Do(t.end)
	return t.Tx.Rollback()
}

type gatedRows struct {
	driver.Rows
	once sync.Once
	end  func()
}

func (r *gatedRows) Close() error {
	defer r.once.Do(r.end)
	return r.Rows.Close()
}
