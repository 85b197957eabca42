package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestSessionLock: on Postgres one session holds the lock at a time, and another takes it once it is released;
// on SQLite (one process) the lock is always taken.
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
			again.Release()
		})
	}
}
