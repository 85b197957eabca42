package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestEditorCodesWorkOnceAndGrantsEndWithTheirSession: a code is taken by one of several racing requests (on
// any replica: they share the database), expired grants are not found, and signing out (deleting the platform
// session) or deleting the instance removes every grant that belonged to it, on both databases.
func TestEditorCodesWorkOnceAndGrantsEndWithTheirSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "editor@example.com")
		in := newInstance(t, st, "editor")
		now := time.Now()
		require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "platform", UserID: u.ID, ExpiresAt: now.Add(time.Hour)}))
		grant := func(hash, kind string, expires time.Time) {
			require.NoError(t, st.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: kind, InstanceID: in.ID,
				SessionHash: "platform", Access: "edit", ExpiresAt: expires}))
		}
		grant("code", storage.EditorCode, now.Add(time.Minute))
		grant("session", storage.EditorSession, now.Add(time.Hour))
		grant("stale", storage.EditorSession, now.Add(-time.Second))

		var wg sync.WaitGroup
		taken := make(chan bool, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.TakeEditorCode(ctx, "code", time.Now())
				taken <- err == nil
			}()
		}
		wg.Wait()
		close(taken)
		n := 0
		for ok := range taken {
			if ok {
				n++
			}
		}
		assert.Equal(t, 1, n, "one of eight racing requests takes the code")
		_, err := st.TakeEditorCode(ctx, "session", now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "a session is not a code")

		_, err = st.GetEditorGrant(ctx, "session", storage.EditorSession, in.ID, now)
		require.NoError(t, err)
		_, err = st.GetEditorGrant(ctx, "session", storage.EditorSession, domain.NewID(), now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "another instance's")
		_, err = st.GetEditorGrant(ctx, "stale", storage.EditorSession, in.ID, now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "expired")

		require.NoError(t, st.DeleteSession(ctx, "platform"))
		dump, err := st.DumpTables(ctx)
		require.NoError(t, err)
		assert.Empty(t, dump["editor_grants"], "signing out ends the editor sessions and codes of that session")

		require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "platform", UserID: u.ID, ExpiresAt: now.Add(time.Hour)}))
		grant("again", storage.EditorSession, now.Add(time.Hour))
		require.NoError(t, st.DeleteInstance(ctx, in.ID))
		dump, err = st.DumpTables(ctx)
		require.NoError(t, err)
		assert.Empty(t, dump["editor_grants"], "and so does deleting the instance")
	})
}
