package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestDumpTablesListsEveryTable checks that the dump takes its tables from the catalog (every migrated table,
// empty or not) and renders the rows of each, so a change to any row changes the dump.
func TestDumpTablesListsEveryTable(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		before, err := st.DumpTables(ctx)
		require.NoError(t, err)
		for _, table := range []string{"users", "teams", "tokens", "devices", "rollouts", "pipelines", "snapshot_schedules", "subscriptions"} {
			assert.Contains(t, before, table)
		}
		u := newUser(t, st, "dump@example.com")
		after, err := st.DumpTables(ctx)
		require.NoError(t, err)
		require.Len(t, after["users"], len(before["users"])+1)
		assert.True(t, strings.Contains(strings.Join(after["users"], "\n"), u.ID), "the new row is in the dump")
		delete(after, "users")
		delete(before, "users")
		assert.Equal(t, before, after, "no other table changed")
	})
}
