package storage_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// pgFixture is a rollout fixture on a Postgres store, with a second connection pool to the same database for
// the test's own transactions (another writer holding rows).
func pgFixture(t *testing.T, n int) (*rolloutFixture, *sql.DB) {
	t.Helper()
	url := storagetest.NewDatabase(t, "postgres")
	st, err := storage.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Migrate(context.Background())
	require.NoError(t, err)
	raw := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url)))
	t.Cleanup(func() { _ = raw.Close() })
	return newRolloutFixture(t, st, n), raw
}

// holdDevice starts a transaction of another writer that holds a device's row until it ends.
func holdDevice(t *testing.T, raw *sql.DB, id string) (*sql.Tx, int) {
	t.Helper()
	tx, err := raw.Begin()
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	_, err = tx.Exec("UPDATE devices SET name = name WHERE id = $1", id)
	require.NoError(t, err)
	var pid int
	require.NoError(t, tx.QueryRow("SELECT pg_backend_pid()").Scan(&pid))
	return tx, pid
}

// awaitLockWait waits until a session other than those named waits for a row lock.
func awaitLockWait(t *testing.T, raw *sql.DB, not ...int) {
	t.Helper()
	require.Eventually(t, func() bool {
		rows, err := raw.Query("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var pid int
			require.NoError(t, rows.Scan(&pid))
			if !slices.Contains(not, pid) {
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond)
}

// lockedNow tells whether a device's row is locked by another transaction.
func lockedNow(t *testing.T, raw *sql.DB, id string) bool {
	t.Helper()
	tx, err := raw.Begin()
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.Exec("SELECT id FROM devices WHERE id = $1 FOR UPDATE NOWAIT", id)
	if err != nil {
		var pgErr pgdriver.Error
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "55P03", pgErr.Field('C'), "lock_not_available: %v", err)
		return true
	}
	return false
}

// heapOrder makes the table hold the devices in this order (an updated row moves to the end of the heap): a
// write that locks rows in the order it scans them locks them so.
func heapOrder(t *testing.T, raw *sql.DB, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := raw.Exec("UPDATE devices SET name = name WHERE id = $1", id)
		require.NoError(t, err)
	}
}

// TestDeviceBatchWritesLockInIDOrder: a batch of status reports and a rollout's dispatch over the same devices
// lock the devices' rows in id order, whatever order the reports come in or the table holds them: while the
// lowest is held by another writer, neither holds any other of them, so the two cannot deadlock each other.
func TestDeviceBatchWritesLockInIDOrder(t *testing.T) {
	for _, write := range []string{"status batch", "dispatch", "group settling"} {
		t.Run(write, func(t *testing.T) {
			f, raw := pgFixture(t, 3)
			ctx := context.Background()
			_, err := f.st.PlanRollout(ctx, f.rID, f.group, []int{100})
			require.NoError(t, err)
			sorted := slices.Sorted(slices.Values(f.devices))
			heapOrder(t, raw, sorted[2], sorted[1], sorted[0])
			held, pid := holdDevice(t, raw, sorted[0])

			done := make(chan error, 1)
			go func() {
				switch write {
				case "status batch":
					reverse := slices.Clone(sorted)
					slices.Reverse(reverse)
					reports := make([]storage.DeviceReport, len(reverse))
					for i := range reports {
						reports[i] = storage.DeviceReport{State: "running", ActiveSnapshotID: &f.newS, At: time.Now()}
					}
					_, err := f.st.RecordDeviceReports(ctx, reverse, reports)
					done <- err
				case "dispatch":
					_, err := f.st.DispatchRolloutBatch(ctx, f.rID, 0, f.newS, 10)
					done <- err
				default:
					_, err := f.st.SettleGroupTarget(ctx, f.group, &f.newS)
					done <- err
				}
			}()
			awaitLockWait(t, raw, pid)
			for _, id := range sorted[1:] {
				assert.False(t, lockedNow(t, raw, id), "the %s holds a device above the one it waits for", write)
			}
			require.NoError(t, held.Commit())
			require.NoError(t, <-done)
		})
	}
}

// TestStatusBatchSurvivesDeadlock: a batch of status reports that Postgres aborts for a deadlock with another
// writer (which locks the same devices in the opposite order, as a rollout's dispatch did) runs again: every
// status is recorded in the end.
func TestStatusBatchSurvivesDeadlock(t *testing.T) {
	f, raw := pgFixture(t, 2)
	ctx := context.Background()
	sorted := slices.Sorted(slices.Values(f.devices))
	heapOrder(t, raw, sorted...)
	held, pid := holdDevice(t, raw, sorted[1]) // the other writer holds the higher device first

	done := make(chan error, 1)
	go func() {
		reports := []storage.DeviceReport{{State: "running", AgentVersion: "2", ActiveSnapshotID: &f.newS, At: time.Now()},
			{State: "running", AgentVersion: "2", ActiveSnapshotID: &f.newS, At: time.Now()}}
		_, err := f.st.RecordDeviceReports(ctx, sorted, reports)
		done <- err
	}()
	awaitLockWait(t, raw, pid) // the batch holds the lower device and waits for the higher

	// The other writer now wants the lower device: a deadlock, and Postgres aborts one of the two.
	other := make(chan error, 1)
	go func() {
		_, err := held.Exec("UPDATE devices SET name = name WHERE id = $1", sorted[0])
		if err == nil {
			err = held.Commit()
		}
		other <- err
	}()
	require.NoError(t, <-done, "the status batch is recorded")
	if err := <-other; err != nil {
		assert.True(t, storage.Conflicted(err), "the other writer was the one aborted: %v", err)
	}
	for _, id := range f.devices {
		d, err := f.st.GetDevice(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, "running/2", d.State+"/"+d.AgentVersion)
		assert.Equal(t, &f.newS, d.ActiveSnapshotID)
	}
}
