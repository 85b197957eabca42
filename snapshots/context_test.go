package snapshots_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// setContext writes an instance's persistent context as its context plugin would.
func (f *fixture) setContext(in *storage.Instance, scopes map[string]string) {
	f.t.Helper()
	changes := map[string]*string{}
	for scope, body := range scopes {
		changes[scope] = &body
	}
	_, err := f.st.PatchInstanceContext(context.Background(), in.ID, changes, 1<<20)
	require.NoError(f.t, err)
}

func (f *fixture) context(in *storage.Instance) storage.InstanceContext {
	f.t.Helper()
	scopes, err := f.st.GetInstanceContext(context.Background(), in.ID)
	require.NoError(f.t, err)
	return scopes
}

// TestSnapshotContextOnlyWhenAsked: a snapshot holds the persistent context only when its taker asks; applying
// one that holds it restores it, one that does not leaves the instance's own, and a promotion never carries
// it. An export carries it and an import of that export brings it back; a new instance from the snapshot
// starts with it.
func TestSnapshotContextOnlyWhenAsked(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		a := f.instance("ctx-a", 0, "secret-a")
		f.deploy(a, "secret-a", flowsV1, credsV1)
		f.setContext(a, map[string]string{"global": `{"count":1}`, "tab1": `{"seen":true}`})

		without, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "flows only"})
		require.NoError(t, err)
		with, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "with context", WithContext: true})
		require.NoError(t, err)
		assert.False(t, without.HasContext)
		assert.True(t, with.HasContext)
		assert.Greater(t, with.SizeBytes, without.SizeBytes, "the context counts in the snapshot's size")
		meta, err := st.GetSnapshotMeta(ctx, with.ID)
		require.NoError(t, err)
		assert.True(t, meta.HasContext, "known without reading the content")
		list, _, err := st.ListSnapshots(ctx, a.ID, storage.Page{})
		require.NoError(t, err)
		assert.Equal(t, []bool{false, true}, []bool{list[0].HasContext, list[1].HasContext})

		f.setContext(a, map[string]string{"global": `{"count":7}`, "n1:tab1": `{"x":1}`})
		require.NoError(t, f.svc.Apply(ctx, without.ID, a.ID))
		assert.Equal(t, storage.InstanceContext{"global": `{"count":7}`, "tab1": `{"seen":true}`, "n1:tab1": `{"x":1}`}, f.context(a),
			"a snapshot without context leaves the instance's")
		require.NoError(t, f.svc.Promote(ctx, with.ID, a.ID))
		assert.Equal(t, `{"count":7}`, f.context(a)["global"], "a promotion never carries context")
		require.NoError(t, f.svc.Apply(ctx, with.ID, a.ID))
		assert.Equal(t, storage.InstanceContext{"global": `{"count":1}`, "tab1": `{"seen":true}`}, f.context(a),
			"the captured context replaces the instance's whole context")

		full, err := st.GetSnapshot(ctx, with.ID)
		require.NoError(t, err)
		imported, err := f.svc.Import(ctx, a, snapshots.Content{Flows: json.RawMessage(full.Flows), Credentials: json.RawMessage(`{}`),
			Settings: full.Settings, Env: full.Env, Modules: full.Modules, Context: json.RawMessage(*full.Context)}, "", snapshots.Meta{Name: "imported"})
		require.NoError(t, err)
		assert.True(t, imported.HasContext)
		_, err = f.svc.Import(ctx, a, snapshots.Content{Flows: json.RawMessage(full.Flows), Credentials: json.RawMessage(`{}`),
			Context: json.RawMessage(`{"global":[1]}`)}, "", snapshots.Meta{Name: "bad"})
		assert.ErrorContains(t, err, "not valid")

		seed, err := f.svc.SeedFor(ctx, with.ID, f.team, f.tpl, f.sealer.Seal("secret-new"))
		require.NoError(t, err)
		require.NotNil(t, seed.Context)
		assert.JSONEq(t, `{"global":{"count":1},"tab1":{"seen":true}}`, *seed.Context)
	})
}
