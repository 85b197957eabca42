package storage

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/uptrace/bun"
)

// conflictAttempts bounds how often runRetryingConflicts runs a transaction that Postgres keeps aborting.
const conflictAttempts = 5

// runRetryingConflicts is RunInTx run again, a few times, while Postgres aborts the transaction for a deadlock
// or a serialization failure (Conflicted), after a short random pause so the two sides do not meet again. fn
// must be safe to run again: nothing it did in an aborted attempt remains. Inside a transaction already it runs
// fn once, as the aborted transaction is the caller's.
func (s *Store) runRetryingConflicts(ctx context.Context, fn func(ctx context.Context, tx *Store) error) error {
	_, inTx := s.db.(bun.Tx)
	for attempt := 1; ; attempt++ {
		err := s.RunInTx(ctx, fn)
		if err == nil || inTx || attempt == conflictAttempts || !Conflicted(err) {
			return err
		}
		pause := time.Duration(attempt)*10*time.Millisecond + rand.N(20*time.Millisecond)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
	}
}

// lockDevices locks the devices' rows until the transaction ends, in id order: every transaction that writes
// many devices locks them so first, and two of them over the same devices cannot each hold a row the other
// waits for (an UPDATE alone locks rows in its plan's order). A SQLite transaction holds the database's write
// lock already.
func (s *Store) lockDevices(ctx context.Context, ids []string) error {
	if s.Dialect() != "pg" || len(ids) == 0 {
		return nil
	}
	var locked []string
	return s.db.NewSelect().Model((*Device)(nil)).Column("id").Where("id IN (?)", bun.List(ids)).
		Order("id").For("UPDATE").Scan(ctx, &locked)
}
