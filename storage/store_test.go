package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func TestMigrateTwiceIsANoop(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		applied, err := st.Migrate(context.Background())
		require.NoError(t, err)
		assert.Empty(t, applied)
	})
}

func newUser(t *testing.T, st *storage.Store, email string) *storage.User {
	t.Helper()
	u := &storage.User{ID: domain.NewID(), Email: email, Name: "U", PasswordHash: "x"}
	require.NoError(t, st.InsertUser(context.Background(), u))
	return u
}

func newTeam(t testing.TB, st *storage.Store, slug string) *storage.Team {
	t.Helper()
	ctx := context.Background()
	tt := &storage.TeamType{ID: domain.NewID(), Name: "type-" + slug, Active: true,
		Properties: domain.TeamTypeProperties{Limits: domain.TeamLimits{Members: 3, InstancesPerType: map[string]int{"a": 2}}}}
	require.NoError(t, storage.InsertObject(ctx, st, tt))
	team := &storage.Team{ID: domain.NewID(), Name: slug, Slug: slug, TeamTypeID: tt.ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	return team
}

func TestUsersAndSessions(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "a@example.com")
		dup := &storage.User{ID: domain.NewID(), Email: "a@example.com", Name: "B", PasswordHash: "y"}
		assert.True(t, domain.IsKind(st.InsertUser(ctx, dup), domain.KindConflict))

		got, err := st.GetUserByEmail(ctx, "a@example.com")
		require.NoError(t, err)
		assert.Equal(t, u.ID, got.ID)
		_, err = st.GetUserByID(ctx, "nope")
		assert.True(t, domain.IsKind(err, domain.KindNotFound))

		n := time.Now()
		require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "live", UserID: u.ID, ExpiresAt: n.Add(time.Hour)}))
		require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "old", UserID: u.ID, ExpiresAt: n.Add(-time.Hour)}))
		su, err := st.GetSessionUser(ctx, "live", n)
		require.NoError(t, err)
		assert.Equal(t, u.ID, su.ID)
		_, err = st.GetSessionUser(ctx, "old", n)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "an expired session must not authenticate")
		removed, err := st.DeleteExpired(ctx, n, 100)
		require.NoError(t, err)
		assert.Equal(t, 1, removed["sessions"])
	})
}

func TestTokensExpireAndAreScopedByKind(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "t@example.com")
		past := time.Now().Add(-time.Minute)
		require.NoError(t, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: "h1", Kind: "user", Name: "n", OwnerType: "user", OwnerID: u.ID, Scopes: []string{"a", "b"}}))
		require.NoError(t, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: "h2", Kind: "user", Name: "n", OwnerType: "user", OwnerID: u.ID, ExpiresAt: &past}))
		tok, err := st.GetTokenByHash(ctx, "h1", time.Now(), "user")
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b"}, tok.Scopes)
		_, err = st.GetTokenByHash(ctx, "h1", time.Now(), "device")
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
		_, err = st.GetTokenByHash(ctx, "h2", time.Now(), "user")
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
		assert.True(t, domain.IsKind(st.DeleteTokenOfOwner(ctx, tok.ID, "user", "someone-else"), domain.KindNotFound))
		require.NoError(t, st.DeleteTokenOfOwner(ctx, tok.ID, "user", u.ID))
	})
}

func TestTeamsMembershipsAndPaging(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "m@example.com")
		var ids []string
		for _, slug := range []string{"t1", "t2", "t3"} {
			team := newTeam(t, st, slug)
			ids = append(ids, team.ID)
			require.NoError(t, st.InsertMembership(ctx, &storage.Membership{TeamID: team.ID, UserID: u.ID, Role: domain.RoleOwner}))
		}
		tt, err := storage.GetObject[storage.TeamType](ctx, st, mustTeam(t, st, ids[0]).TeamTypeID)
		require.NoError(t, err)
		assert.Equal(t, 2, tt.Properties.Limits.InstancesPerType["a"], "JSON properties round-trip")

		page1, next, err := st.ListTeamsOfUser(ctx, u.ID, storage.Page{Limit: 2})
		require.NoError(t, err)
		require.Len(t, page1, 2)
		assert.NotEmpty(t, next)
		assert.Equal(t, domain.RoleOwner, page1[0].Role)
		page2, next2, err := st.ListTeamsOfUser(ctx, u.ID, storage.Page{Limit: 2, Cursor: next})
		require.NoError(t, err)
		require.Len(t, page2, 1)
		assert.Empty(t, next2)
		assert.Equal(t, ids, []string{page1[0].ID, page1[1].ID, page2[0].ID})

		dupTeam := &storage.Team{ID: domain.NewID(), Name: "x", Slug: "t1", TeamTypeID: tt.ID}
		assert.True(t, domain.IsKind(st.InsertTeam(ctx, dupTeam), domain.KindConflict))
		assert.True(t, domain.IsKind(st.InsertMembership(ctx, &storage.Membership{TeamID: ids[0], UserID: u.ID, Role: domain.RoleViewer}), domain.KindConflict))
		owners, err := st.CountMembers(ctx, ids[0], domain.RoleOwner)
		require.NoError(t, err)
		assert.Equal(t, 1, owners)

		require.NoError(t, st.DeleteTeam(ctx, ids[0]))
		_, err = st.GetMembership(ctx, ids[0], u.ID)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "memberships go with their team")
	})
}

func mustTeam(t *testing.T, st *storage.Store, id string) *storage.Team {
	team, err := st.GetTeam(context.Background(), id)
	require.NoError(t, err)
	return team
}

func TestRunInTxRollsBack(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		err := st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
			newUser(t, tx, "tx@example.com")
			return domain.Conflict("boom", "Boom.")
		})
		require.Error(t, err)
		_, err = st.GetUserByEmail(ctx, "tx@example.com")
		assert.True(t, domain.IsKind(err, domain.KindNotFound))
	})
}

func TestOperationsAreIdempotentAndGuarded(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		key := "create/x"
		op := &storage.Operation{ID: domain.NewID(), Kind: "provision", SubjectType: "instance", SubjectID: "i1", Status: domain.OperationPending, WorkflowID: "provision/i1", RequestKey: &key}
		got, created, err := st.InsertOperation(ctx, op)
		require.NoError(t, err)
		assert.True(t, created)
		again, created, err := st.InsertOperation(ctx, &storage.Operation{ID: domain.NewID(), Kind: "provision", SubjectType: "instance", SubjectID: "i1", Status: domain.OperationPending, WorkflowID: "provision/i1", RequestKey: &key})
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, got.ID, again.ID)

		op.Status, op.Progress = domain.OperationSucceeded, map[string]any{"done": 3}
		moved, err := st.UpdateOperation(ctx, op, domain.OperationPending, domain.OperationRunning)
		require.NoError(t, err)
		assert.True(t, moved)
		op.Status = domain.OperationRunning
		moved, err = st.UpdateOperation(ctx, op, domain.OperationPending, domain.OperationRunning)
		require.NoError(t, err)
		assert.False(t, moved, "a finished operation never moves back")
		read, err := st.GetOperation(ctx, op.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OperationSucceeded, read.Status)
		assert.NotNil(t, read.FinishedAt)
		assert.EqualValues(t, 3, read.Progress["done"])
	})
}
