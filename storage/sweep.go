package storage

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// expiring is every table of single-use or short-lived rows, and the column after whose time a row is dead:
// sessions, editor codes and sessions, password-reset and e-mail links, pending second factors by their expiry;
// device answers nobody read by their age (deviceReplyTTL). Editor grants go before the sessions they belong to.
var expiring = []struct {
	table, key, column string
	age                time.Duration // a row dies this long after column (0: at column)
}{
	{"editor_grants", "token_hash", "expires_at", 0},
	{"sessions", "token_hash", "expires_at", 0},
	{"password_resets", "token_hash", "expires_at", 0},
	{"email_verifications", "token_hash", "expires_at", 0},
	{"second_factor_challenges", "token_hash", "expires_at", 0},
	{"device_replies", "id", "created_at", deviceReplyTTL},
}

// DeleteExpired removes the rows of every expiring table that were dead at at, batch rows per statement so that
// no statement holds its locks long, and returns how many each table lost. Deleting is idempotent: several
// callers at once only share the work.
func (s *Store) DeleteExpired(ctx context.Context, at time.Time, batch int) (map[string]int, error) {
	out := map[string]int{}
	for _, t := range expiring {
		q := fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s IN (SELECT %[2]s FROM %[1]s WHERE %[3]s <= ? ORDER BY %[3]s LIMIT ?)",
			t.table, t.key, t.column)
		for {
			res, err := s.db.NewRaw(q, at.Add(-t.age).UTC(), batch).Exec(ctx)
			if err != nil {
				return out, fmt.Errorf("delete expired %s: %w", t.table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return out, err
			}
			out[t.table] += int(n)
			if n < int64(batch) {
				break
			}
		}
	}
	return out, nil
}

// ClaimPeriodic reports whether the caller may run the job name at at: yes for the first caller in each period
// of every, no for the others, whichever process they are in.
func (s *Store) ClaimPeriodic(ctx context.Context, name string, at time.Time, every time.Duration) (bool, error) {
	return affectedOne(s.db.NewRaw(`INSERT INTO periodic_runs (name, last_at) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET last_at = excluded.last_at WHERE periodic_runs.last_at <= ?`,
		name, at.UTC(), at.Add(-every).UTC()).Exec(ctx))
}

// Sweeper deletes expired rows (DeleteExpired) every period. It runs in every worker process; the period's claim
// (ClaimPeriodic) lets one of them sweep each time, and should two sweep at once nothing breaks.
type Sweeper struct {
	Store *Store
	Log   *slog.Logger
	Every time.Duration // default 10 minutes
	Batch int           // rows per statement, default 500
	// Tick is how often a process looks whether the period's sweep is due (default a minute): a sweep
	// missed by a process that stopped is made by another within a tick.
	Tick time.Duration
}

// Run sweeps until ctx ends.
func (w *Sweeper) Run(ctx context.Context) {
	tick := time.NewTicker(orDefault(w.Tick, time.Minute))
	defer tick.Stop()
	for {
		if removed, err := w.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			w.Log.Warn("delete expired rows", "error", err)
		} else if len(removed) > 0 {
			w.Log.Info("deleted expired rows", "removed", removed)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Sweep deletes the rows dead at at if this period's sweep is the caller's to make; it returns the tables that
// lost rows and how many.
func (w *Sweeper) Sweep(ctx context.Context, at time.Time) (map[string]int, error) {
	mine, err := w.Store.ClaimPeriodic(ctx, "sweep-expired", at, orDefault(w.Every, 10*time.Minute))
	if err != nil || !mine {
		return nil, err
	}
	batch := w.Batch
	if batch <= 0 {
		batch = 500
	}
	removed, err := w.Store.DeleteExpired(ctx, at, batch)
	for table, n := range removed {
		if n == 0 {
			delete(removed, table)
		}
	}
	return removed, err
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
