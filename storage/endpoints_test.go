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

// TestAddressGrantsAndTokensKeepToTheirKind: an address's code is never an editor's (nor the other way round),
// an instance is found by its name (the label of its address) with its protection, and revoking an endpoint
// token never touches the instance's other tokens.
func TestAddressGrantsAndTokensKeepToTheirKind(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		u := newUser(t, st, "endpoints@example.com")
		in := newInstance(t, st, "endpoints")
		now := time.Now()
		require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: "platform", UserID: u.ID, ExpiresAt: now.Add(time.Hour)}))
		for hash, kind := range map[string]string{"app-code": storage.AppCode, "editor-code": storage.EditorCode} {
			require.NoError(t, st.InsertEditorGrant(ctx, &storage.EditorGrant{TokenHash: hash, Kind: kind, InstanceID: in.ID,
				SessionHash: "platform", Access: storage.AppAccess, ExpiresAt: now.Add(time.Minute)}))
		}
		_, err := st.TakeEditorCode(ctx, "app-code", now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "an address's code is no editor code: %v", err)
		_, err = st.TakeAppCode(ctx, "editor-code", now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "an editor code is no address code: %v", err)
		g, err := st.TakeAppCode(ctx, "app-code", now)
		require.NoError(t, err)
		assert.Equal(t, in.ID, g.InstanceID)
		_, err = st.TakeAppCode(ctx, "app-code", now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "used up")

		in.EndpointsProtected = true
		require.NoError(t, st.UpdateInstance(ctx, in, "endpoints_protected"))
		got, err := st.GetInstanceByName(ctx, in.Name)
		require.NoError(t, err)
		assert.Equal(t, in.ID, got.ID)
		assert.True(t, got.EndpointsProtected)

		runtime := &storage.Token{ID: domain.NewID(), TokenHash: "runtime", Kind: "instance", Name: "runtime", OwnerType: "instance", OwnerID: in.ID}
		endpoint := &storage.Token{ID: domain.NewID(), TokenHash: "endpoint", Kind: storage.TokenKindEndpoint, Name: "e", OwnerType: "instance", OwnerID: in.ID}
		require.NoError(t, st.InsertToken(ctx, runtime))
		require.NoError(t, st.InsertToken(ctx, endpoint))
		_, err = st.GetEndpointToken(ctx, "runtime", in.ID, now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "the runtime token opens no address")
		assert.True(t, domain.IsKind(st.DeleteEndpointToken(ctx, runtime.ID, in.ID), domain.KindNotFound), "nor is it revoked as one")
		_, err = st.GetEndpointToken(ctx, "endpoint", "another-instance", now)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "another instance's token")
		require.NoError(t, st.DeleteEndpointToken(ctx, endpoint.ID, in.ID))
		_, err = st.GetTokenByHash(ctx, "runtime", now, "instance")
		assert.NoError(t, err)
	})
}
