package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestTheSweepDeletesExpiredRowsAndKeepsLiveOnes: sessions, editor codes and sessions, password-reset and
// e-mail links, pending second factors and unread device answers are deleted once dead, in batches smaller than
// their number, and the live ones of each are kept; of several processes sweeping in one period one does the work,
// and the next period sweeps again.
func TestTheSweepDeletesExpiredRowsAndKeepsLiveOnes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "sweep@example.com")
		users := []*storage.User{u}
		for i := 1; i < 5; i++ { // a challenge's insert drops its user's expired ones
			users = append(users, newUser(t, st, fmt.Sprintf("sweep%d@example.com", i)))
		}
		in := newInstance(t, st, "swept")
		now := time.Now()
		live, dead := now.Add(time.Hour), now.Add(-time.Minute)
		for i := range 5 {
			exp := dead
			if i == 0 {
				exp = live
			}
			tag := fmt.Sprintf("%d", i)
			require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "s" + tag, UserID: u.ID, ExpiresAt: exp}))
			require.NoError(t, st.InsertPasswordReset(ctx, &storage.PasswordReset{TokenHash: "r" + tag, UserID: u.ID, ExpiresAt: exp}))
			require.NoError(t, st.InsertEmailVerification(ctx, &storage.EmailVerification{TokenHash: "v" + tag, UserID: u.ID, ExpiresAt: exp}))
			require.NoError(t, st.InsertSecondFactorChallenge(ctx, &storage.SecondFactorChallenge{TokenHash: "c" + tag, UserID: users[i].ID, ExpiresAt: exp}))
			require.NoError(t, st.InsertDeviceReply(ctx, &storage.DeviceReply{ID: "reply" + tag, DeviceID: "d", Body: "{}"}))
		}
		// Grants of the live session. Inserting a reply or a grant drops the dead ones, so these die afterwards.
		for i := range 5 {
			kind := map[bool]string{true: "code", false: "session"}[i%2 == 0]
			require.NoError(t, st.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: fmt.Sprintf("g%d", i), Kind: kind,
				InstanceID: in.ID, SessionHash: "s0", Access: "edit", ExpiresAt: live}))
		}
		require.NoError(t, st.ExecRaw(ctx, "UPDATE device_replies SET created_at = ? WHERE id <> 'reply0'", now.Add(-time.Hour).UTC()))
		require.NoError(t, st.ExecRaw(ctx, "UPDATE editor_grants SET expires_at = ? WHERE token_hash IN ('g2', 'g3', 'g4')", dead.UTC()))

		sweeper := &storage.Sweeper{Store: st, Batch: 2}
		var wg sync.WaitGroup
		results := make([]map[string]int, 3)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				results[i], err = sweeper.Sweep(ctx, now)
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		want := map[string]int{"sessions": 4, "password_resets": 4, "email_verifications": 4, "second_factor_challenges": 4,
			"device_replies": 4, "editor_grants": 3}
		swept := 0
		for _, r := range results {
			if r != nil {
				swept++
				assert.Equal(t, want, r)
			}
		}
		assert.Equal(t, 1, swept, "one process sweeps in a period")

		for _, table := range []string{"sessions", "password_resets", "email_verifications", "second_factor_challenges", "device_replies"} {
			n, err := st.CountAll(ctx, table)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "the live row of %s is kept", table)
		}
		n, err := st.CountAll(ctx, "editor_grants")
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		_, err = st.GetSessionUser(ctx, "s0", now)
		require.NoError(t, err, "the live session still signs in")

		again, err := sweeper.Sweep(ctx, now.Add(time.Minute))
		require.NoError(t, err)
		assert.Nil(t, again, "not this period's to make again")
		later, err := sweeper.Sweep(ctx, now.Add(2*time.Hour))
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"sessions": 1, "password_resets": 1, "email_verifications": 1,
			"second_factor_challenges": 1, "device_replies": 1, "editor_grants": 2}, later, "the next period sweeps what died since")
	})
}
