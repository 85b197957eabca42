package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// SessionLock is a Postgres session-level advisory lock held on a database connection of its own, taken out of
// the pool for as long as the lock is held: when the process holding it dies, its connection closes and the
// server releases the lock, so another process can take it. On SQLite there is one process, which always holds it.
type SessionLock struct {
	conn *bun.Conn // nil on SQLite
	name string
}

// lockIdleTimeout ends a lock's session that has not been checked for that long (see SessionLock.Check).
const lockIdleTimeout = 15 * time.Second

// TryLock takes the named session lock if no other session holds it: (nil, nil) when another one does.
func (s *Store) TryLock(ctx context.Context, name string) (*SessionLock, error) {
	if s.Dialect() != "pg" {
		return &SessionLock{}, nil
	}
	conn, err := s.root.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("take the lock %s: %w", name, err)
	}
	var held bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(hashtext(?))", name).Scan(&held); err != nil {
		(&SessionLock{conn: &conn, name: name}).Release() // the server may have granted it before the answer was lost
		return nil, fmt.Errorf("take the lock %s: %w", name, err)
	}
	if !held {
		_ = conn.Close()
		return nil, nil
	}
	// A holder cut off from the server pings no more: the server ends its idle session, releasing the lock, after
	// lockIdleTimeout rather than when TCP gives up on it (hours). Postgres before 14 has no such setting and
	// refuses it, which leaves the lock held, released by TCP.
	_, _ = conn.ExecContext(ctx, "SET idle_session_timeout = ?", lockIdleTimeout.Milliseconds())
	return &SessionLock{conn: &conn, name: name}, nil
}

// Check reports whether the lock is still held: its connection answers (a session lock lasts as long as its
// session). After an error the lock must be released, which closes the connection. The holder checks it more
// often than lockIdleTimeout, or the server ends the session.
func (l *SessionLock) Check(ctx context.Context) error {
	if l.conn == nil {
		return nil
	}
	return l.conn.PingContext(ctx)
}

// Release lets the lock go: at once when its connection still answers, and in any case by closing the
// connection (the server then ends the session, releasing its locks), so that a connection that may still hold
// it never goes back to the pool.
func (l *SessionLock) Release() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.ExecContext(ctx, "SELECT pg_advisory_unlock(hashtext(?))", l.name)
	// ErrBadConn makes database/sql close the driver connection rather than return it to the pool.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = l.conn.Close()
}
