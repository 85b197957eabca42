package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestSnapshotScheduleLifecycle puts, replaces, reads and deletes an instance's schedule, checks the retention
// it sets, and that deleting the instance takes the schedule with it.
func TestSnapshotScheduleLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st, "scheduled")
		keep, err := st.AutoSnapshotRetention(ctx, in.ID, 10)
		require.NoError(t, err)
		assert.Equal(t, 10, keep, "no schedule: the default")
		_, err = st.GetSnapshotSchedule(ctx, in.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "%v", err)

		require.NoError(t, st.PutSnapshotSchedule(ctx, &storage.SnapshotSchedule{InstanceID: in.ID, TeamID: in.TeamID, Every: "24h", Keep: 3}))
		first, err := st.GetSnapshotSchedule(ctx, in.ID)
		require.NoError(t, err)
		require.NoError(t, st.PutSnapshotSchedule(ctx, &storage.SnapshotSchedule{InstanceID: in.ID, TeamID: in.TeamID, Cron: "0 3 * * *", Keep: 5}))
		got, err := st.GetSnapshotSchedule(ctx, in.ID)
		require.NoError(t, err)
		assert.Equal(t, "", got.Every)
		assert.Equal(t, "0 3 * * *", got.Cron)
		assert.Equal(t, 5, got.Keep)
		assert.True(t, got.CreatedAt.Equal(first.CreatedAt), "replacing keeps the creation time")
		keep, err = st.AutoSnapshotRetention(ctx, in.ID, 10)
		require.NoError(t, err)
		assert.Equal(t, 5, keep)

		deleted, err := st.DeleteSnapshotSchedule(ctx, in.ID)
		require.NoError(t, err)
		assert.True(t, deleted)
		deleted, err = st.DeleteSnapshotSchedule(ctx, in.ID)
		require.NoError(t, err)
		assert.False(t, deleted)

		require.NoError(t, st.PutSnapshotSchedule(ctx, &storage.SnapshotSchedule{InstanceID: in.ID, TeamID: in.TeamID, Every: "1h", Keep: 1}))
		require.NoError(t, st.DeleteInstance(ctx, in.ID))
		_, err = st.GetSnapshotSchedule(ctx, in.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "the schedule goes with its instance: %v", err)
	})
}
