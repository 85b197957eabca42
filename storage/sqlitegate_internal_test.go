package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A writer behind one that holds the gate too long gives up with the busy error SQLite itself would give, and
// one whose caller went away stops waiting at once.
func TestWriteGateWaitIsBounded(t *testing.T) {
	g := newWriteGate(50 * time.Millisecond)
	require.NoError(t, g.enter(context.Background()))
	err := g.enter(context.Background())
	require.ErrorContains(t, err, "database is locked")
	require.True(t, Unavailable(err), "a backlog passes: the API answers 503 and clients retry")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, g.enter(ctx), context.Canceled)

	g.leave()
	require.NoError(t, g.enter(context.Background()), "the slot is free again once its holder leaves")
}

func TestOnlyReadsSkipTheGate(t *testing.T) {
	for q, read := range map[string]bool{
		"SELECT 1": true, "  select * from users": true, "PRAGMA user_version": true,
		`INSERT INTO "users" ("id") VALUES ('a') RETURNING "id"`: false, "UPDATE users SET name = 'x'": false,
		"WITH x AS (SELECT 1) DELETE FROM users": false, "DELETE FROM users": false,
	} {
		require.Equal(t, read, isReadQuery(q), q)
	}
}
