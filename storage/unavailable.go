package storage

import (
	"errors"
	"strings"

	"github.com/uptrace/bun/driver/pgdriver"
)

// Unavailable tells whether the store cannot serve now: SQLite with more writers queued than it can serve in
// time, or Postgres starting up, shutting down or
// recovering from a crash (SQLSTATE 57P01-57P03), or the connection failed (class 08). Such an error is
// passing, and a client may retry; the network errors of a database that does not answer at all are told
// apart by their Go types.
func Unavailable(err error) bool {
	if errors.Is(err, errWriteBacklog) {
		return true // SQLite: too many writers ahead in this process
	}
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) {
		return false
	}
	code := pgErr.Field('C')
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}

// Conflicted tells whether Postgres aborted a transaction so that another could go on: a deadlock (SQLSTATE
// 40P01) or a serialization failure (40001). Run again, the transaction usually succeeds.
func Conflicted(err error) bool {
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) {
		return false
	}
	code := pgErr.Field('C')
	return code == "40P01" || code == "40001"
}
