package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// A burst of writers far larger than the connection pool, plain writes and transactions that hold the lock a
// while, all succeed: none is left polling SQLite's busy handler until it gives up.
func TestBurstOfConcurrentWritersAllSucceed(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		require.NoError(t, burstOfWriters(ctx, st, "burst"))
		users, err := st.CountRows(ctx, "users", "password_hash", "x")
		require.NoError(t, err)
		require.Equal(t, burstWriters*burstEach*3/2, users, "every acknowledged write is there")
	})
}

// BenchmarkBurstOfWriters times one burst (64 writers × 10 writes, 960 rows) on SQLite.
//
//	go test ./storage -run '^$' -bench BurstOfWriters -benchtime 10x
func BenchmarkBurstOfWriters(b *testing.B) {
	st := storagetest.New(b, "sqlite")
	for i := range b.N {
		require.NoError(b, burstOfWriters(context.Background(), st, fmt.Sprint("b", i)))
	}
}

const burstWriters, burstEach = 64, 10

// burstOfWriters runs many more writers than the connection pool holds, half of their writes plain and half
// transactions of two, and returns the first error.
func burstOfWriters(ctx context.Context, st *storage.Store, prefix string) error {
	var wg sync.WaitGroup
	errs := make(chan error, burstWriters*burstEach)
	for w := range burstWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range burstEach {
				errs <- writeOne(ctx, st, fmt.Sprintf("%s-%d-%d", prefix, w, i), i%2 == 0)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// writeOne inserts one user, or two in a transaction that keeps the write lock for a moment.
func writeOne(ctx context.Context, st *storage.Store, name string, inTx bool) error {
	user := func(suffix string) *storage.User {
		return &storage.User{ID: domain.NewID(), Email: name + suffix + "@example.com", Name: name, PasswordHash: "x"}
	}
	if !inTx {
		return st.InsertUser(ctx, user(""))
	}
	return st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertUser(ctx, user("-a")); err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // work done while holding the lock
		return tx.InsertUser(ctx, user("-b"))
	})
}
