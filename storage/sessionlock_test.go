package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestSessionLock: on Postgres one session holds the lock at a time, and another takes it once it is released;
// one whose session ends knows it has lost it; on SQLite (one process) the lock is always taken.
func TestSessionLock(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			st := storagetest.New(t, dialect)
			ctx := context.Background()
			first, err := st.TryLock(ctx, "test-lock")
			require.NoError(t, err)
			require.NotNil(t, first)
			require.NoError(t, first.Check(ctx))
			second, err := st.TryLock(ctx, "test-lock")
			require.NoError(t, err)
			if dialect == "sqlite" {
				assert.NotNil(t, second)
				return
			}
			assert.Nil(t, second, "held by the first session")
			other, err := st.TryLock(ctx, "another-lock")
			require.NoError(t, err)
			require.NotNil(t, other, "another name is another lock")
			other.Release()
			first.Release()
			again, err := st.TryLock(ctx, "test-lock")
			require.NoError(t, err)
			require.NotNil(t, again, "released with its session")

			// The session holding it ends (an administrator ended it; the call waits until it is gone): Check says so,
			// and another session takes the lock.
			require.NoError(t, st.ExecRaw(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory'
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`))
			require.Error(t, again.Check(ctx))
			again.Release()
			last, err := st.TryLock(ctx, "test-lock")
			require.NoError(t, err)
			require.NotNil(t, last, "released when its session ended")
			last.Release()
		})
	}
}
