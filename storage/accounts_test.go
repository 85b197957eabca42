package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestCredentialUsersAnswersForLiveOnesOnly: of many sessions and tokens (more than one IN list holds), only the
// unexpired sessions and user tokens of existing users are answered, each with its user as it is now.
func TestCredentialUsersAnswersForLiveOnesOnly(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		alice, bob := newUser(t, st, "alice@example.com"), newUser(t, st, "bob@example.com")
		now := time.Now()
		var sessions, tokens []string
		for i := range 600 {
			_, hash := domain.NewToken(domain.TokenPrefixSession)
			expires := now.Add(time.Hour)
			if i%100 == 0 {
				expires = now.Add(-time.Second)
			}
			require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: hash, UserID: alice.ID, ExpiresAt: expires}))
			sessions = append(sessions, hash)
		}
		for _, kind := range []string{"user", "device"} {
			_, hash := domain.NewToken(domain.TokenPrefixUser)
			require.NoError(t, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: kind, Name: kind, OwnerType: "user", OwnerID: bob.ID}))
			tokens = append(tokens, hash)
		}
		at := now.Add(-time.Hour)
		require.NoError(t, st.SetUserSuspended(ctx, bob.ID, &at))

		got, err := st.CredentialUsers(ctx, sessions, append(tokens, "no-such-token"), now)
		require.NoError(t, err)
		assert.Len(t, got, 594+1, "every unexpired session, and the user token")
		assert.NotContains(t, got, sessions[0], "an expired session")
		assert.NotContains(t, got, tokens[1], "another kind of token")
		assert.Equal(t, alice.ID, got[sessions[1]].ID)
		require.NotNil(t, got[tokens[0]].SuspendedAt, "the user as it is now")

		require.NoError(t, st.DeleteUser(ctx, bob.ID))
		got, err = st.CredentialUsers(ctx, nil, tokens, now)
		require.NoError(t, err)
		assert.Empty(t, got, "a deleted user's tokens are gone")
	})
}

// BenchmarkCredentialUsers measures one round of the live streams' credential check of a replica with 1,000 open
// streams (500 by session, 500 by token, of 100 users): go test ./storage -run '^$' -bench CredentialUsers
func BenchmarkCredentialUsers(b *testing.B) {
	for _, dialect := range storagetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			st := storagetest.New(b, dialect)
			ctx := context.Background()
			var users []*storage.User
			for i := range 100 {
				u := &storage.User{ID: domain.NewID(), Email: fmt.Sprintf("u%d@example.com", i), Name: "U", PasswordHash: "x"}
				require.NoError(b, st.InsertUser(ctx, u))
				users = append(users, u)
			}
			var sessions, tokens []string
			for i := range 500 {
				u := users[i%len(users)]
				_, hash := domain.NewToken(domain.TokenPrefixSession)
				require.NoError(b, st.InsertSession(ctx, &storage.Session{TokenHash: hash, UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
				sessions = append(sessions, hash)
				_, hash = domain.NewToken(domain.TokenPrefixUser)
				require.NoError(b, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: "user", Name: "t", OwnerType: "user", OwnerID: u.ID}))
				tokens = append(tokens, hash)
			}
			b.ResetTimer()
			for b.Loop() {
				got, err := st.CredentialUsers(ctx, sessions, tokens, time.Now())
				if err != nil || len(got) != 1000 {
					b.Fatalf("%d credentials, %v", len(got), err)
				}
			}
		})
	}
}
