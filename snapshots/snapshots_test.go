package snapshots_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// fixture is a store with a team, two applications and a sealer; instances are added per test.
type fixture struct {
	t      testing.TB
	st     *storage.Store
	svc    *snapshots.Service
	sealer *domain.Sealer
	team   string
	apps   [2]string
	tpl    *storage.Template
	stack  *storage.Stack
	itype  string
}

func newFixture(t testing.TB, st *storage.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	require.NoError(t, st.SeedDefaults(ctx))
	f := &fixture{t: t, st: st, sealer: sealer, svc: &snapshots.Service{Store: st, Sealer: sealer}}
	types, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	team := &storage.Team{ID: domain.NewID(), Name: "T", Slug: "t-" + strings.ToLower(domain.NewID()), TeamTypeID: types[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	f.team = team.ID
	for i := range f.apps {
		app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "app" + string(rune('a'+i))}
		require.NoError(t, st.InsertApplication(ctx, app))
		f.apps[i] = app.ID
	}
	itypes, _, err := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	require.NoError(t, err)
	f.itype = itypes[0].ID
	stacks, _, err := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	require.NoError(t, err)
	f.stack = &stacks[0]
	tpl := &storage.Template{ID: domain.NewID(), Name: "tpl", Active: true,
		Settings: map[string]any{"pageTitle": "Platform", "timeZone": "UTC", "codeEditor": "monaco"},
		Policy:   map[string]bool{"pageTitle": false},
		Env:      []domain.EnvVar{{Name: "REGION", Value: "eu", Locked: true}, {Name: "LEVEL", Value: "info"}}}
	require.NoError(t, storage.InsertObject(context.Background(), st, tpl))
	f.tpl = tpl
	return f
}

// instance adds an instance of application app (0 or 1) with its own credential secret.
func (f *fixture) instance(name string, app int, secret string) *storage.Instance {
	f.t.Helper()
	in := &storage.Instance{ID: domain.NewID(), Name: name, ApplicationID: f.apps[app], TeamID: f.team,
		InstanceTypeID: f.itype, StackID: f.stack.ID, TemplateID: f.tpl.ID, State: "running", DesiredState: "running",
		Settings: map[string]any{"timeZone": "Europe/Paris"}, Env: []domain.EnvVar{{Name: "LEVEL", Value: "debug"}, {Name: "OWN", Value: "1"}},
		Modules: map[string]string{"node-red-node-random": "^0.4.0"}, CredentialSecret: f.sealer.Seal(secret),
		AdminToken: f.sealer.Seal("a"), ReadToken: f.sealer.Seal("r"), RuntimeToken: f.sealer.Seal("t")}
	require.NoError(f.t, f.st.InsertInstance(context.Background(), in))
	return in
}

// deploy stores flows and credentials as the storage plugin would, credentials encrypted with secret.
func (f *fixture) deploy(in *storage.Instance, secret, flows string, creds map[string]any) {
	f.t.Helper()
	ctx := context.Background()
	blob, err := nodered.EncryptCredentials(secret, creds)
	require.NoError(f.t, err)
	require.NoError(f.t, f.st.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, flows))
	require.NoError(f.t, f.st.PutInstanceStorage(ctx, in.ID, storage.StorageCredentials, string(blob)))
}

// stored reads an instance's flows and its credentials decrypted with secret.
func (f *fixture) stored(in *storage.Instance, secret string) (string, map[string]any) {
	f.t.Helper()
	ctx := context.Background()
	flows, err := f.st.GetInstanceStorage(ctx, in.ID, storage.StorageFlows)
	require.NoError(f.t, err)
	blob, err := f.st.GetInstanceStorage(ctx, in.ID, storage.StorageCredentials)
	require.NoError(f.t, err)
	creds, err := nodered.DecryptCredentials(secret, json.RawMessage(blob))
	require.NoError(f.t, err)
	return flows, creds
}

func (f *fixture) count(in *storage.Instance) int {
	f.t.Helper()
	list, _, err := f.st.ListSnapshots(context.Background(), in.ID, storage.Page{})
	require.NoError(f.t, err)
	return len(list)
}

const (
	flowsV1 = `[{"id":"tab1","type":"tab","label":"v1"},{"id":"req1","type":"http request","z":"tab1"}]`
	flowsV2 = `[{"id":"tab1","type":"tab","label":"v2"},{"id":"req1","type":"http request","z":"tab1"}]`
)

var (
	credsV1 = map[string]any{"req1": map[string]any{"user": "alice", "password": "old-pw"}}
	credsV2 = map[string]any{"req1": map[string]any{"user": "alice", "password": "new-pw"}}
)

func TestCaptureCopiesTheStoreAndSealsTheSecret(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		in := f.instance("cap", 0, "instance-secret")
		f.deploy(in, "instance-secret", flowsV1, credsV1)
		require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageSettings,
			`{"nodes":{"node-red":{"version":"4.1.15"},"node-red-node-random":{"version":"0.4.1","user":true},"node-red-contrib-extra":{"version":"2.0.0","user":true}}}`))
		snap, err := f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: "before change", Description: "d"})
		require.NoError(t, err)

		got, err := st.GetSnapshot(ctx, snap.ID)
		require.NoError(t, err)
		assert.Equal(t, flowsV1, got.Flows)
		assert.NotContains(t, got.Credentials, "old-pw", "credentials stay encrypted")
		creds, err := nodered.DecryptCredentials("instance-secret", json.RawMessage(got.Credentials))
		require.NoError(t, err)
		assert.Equal(t, credsV1, creds)
		assert.NotContains(t, got.CredentialSecret, "instance-secret", "the secret is sealed at rest")
		opened, err := f.sealer.Open(got.CredentialSecret)
		require.NoError(t, err)
		assert.Equal(t, "instance-secret", opened)

		assert.Equal(t, map[string]any{"pageTitle": "Platform", "timeZone": "Europe/Paris", "codeEditor": "monaco"}, got.Settings,
			"effective settings: template merged with the instance's")
		assert.Equal(t, []domain.EnvVar{{Name: "REGION", Value: "eu", Locked: true}, {Name: "LEVEL", Value: "debug"}, {Name: "OWN", Value: "1"}}, got.Env)
		assert.Equal(t, map[string]string{"node-red-node-random": "0.4.1", "node-red-contrib-extra": "2.0.0"}, got.Modules,
			"exact installed versions, and modules installed from the palette")
		assert.Equal(t, f.stack.NodeRedVersion, got.NodeRedVersion)
		assert.False(t, got.Auto)
	})
}

func TestCaptureOfAnEmptyInstanceAndIdempotentIDs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		in := f.instance("empty", 0, "s")
		m := snapshots.Meta{ID: domain.NewID(), Name: "Auto snapshot before rollback", Auto: true}
		snap, err := f.svc.Capture(ctx, in.ID, m)
		require.NoError(t, err)
		assert.Equal(t, "[]", snap.Flows)
		assert.Equal(t, "{}", snap.Credentials)
		_, err = f.svc.Capture(ctx, in.ID, m)
		require.NoError(t, err)
		assert.Equal(t, 1, f.count(in), "a retried capture with the same ID stores one snapshot")
	})
}

func TestCaptureRefusesCorruptAndOversizedFlows(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		in := f.instance("bad", 0, "s")
		for _, flows := range []string{`{"not":"an array"}`, `[{"id":"a"`, "garbage"} {
			require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, flows))
			_, err := f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: "x"})
			de, ok := domain.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, domain.KindUnprocessable, de.Kind)
			assert.Equal(t, "corrupt_flows", de.Code)
		}
		big := `[{"id":"c1","type":"comment","info":"` + strings.Repeat("x", snapshots.MaxBytes) + `"}]`
		require.NoError(t, st.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, big))
		_, err := f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: "x"})
		assert.True(t, domain.IsKind(err, domain.KindTooLarge), "%v", err)
		_, err = f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: ""})
		assert.True(t, domain.IsKind(err, domain.KindInvalid), "a snapshot needs a name")
		assert.Zero(t, f.count(in), "nothing was stored")
	})
}

func TestApplyRestoresEverythingAndReencryptsAcrossInstances(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		a := f.instance("apply-a", 0, "secret-a")
		b := f.instance("apply-b", 0, "secret-b")
		f.deploy(a, "secret-a", flowsV1, credsV1)
		snap, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "v1"})
		require.NoError(t, err)

		f.deploy(a, "secret-a", flowsV2, credsV2)
		a.Env = []domain.EnvVar{{Name: "LEVEL", Value: "warn"}, {Name: "ADDED", Value: "later"}}
		a.Settings = map[string]any{"timeZone": "Asia/Tokyo"}
		require.NoError(t, st.UpdateInstance(ctx, a, "env", "settings"))

		require.NoError(t, f.svc.Apply(ctx, snap.ID, a.ID))
		flows, creds := f.stored(a, "secret-a")
		assert.Equal(t, flowsV1, flows)
		assert.Equal(t, credsV1, creds)
		got, err := st.GetInstance(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, map[string]any{"timeZone": "Europe/Paris"}, got.Settings, "only what differs from the template is the instance's own")
		assert.Equal(t, []domain.EnvVar{{Name: "LEVEL", Value: "debug"}, {Name: "OWN", Value: "1"}}, got.Env,
			"the snapshot's env list replaces the instance's; locked template vars stay the template's")
		assert.Equal(t, map[string]string{"node-red-node-random": "^0.4.0"}, got.Modules)

		require.NoError(t, f.svc.Apply(ctx, snap.ID, a.ID), "applying twice is harmless")
		require.NoError(t, f.svc.Apply(ctx, snap.ID, b.ID))
		flows, creds = f.stored(b, "secret-b")
		assert.Equal(t, flowsV1, flows)
		assert.Equal(t, credsV1, creds, "credentials re-encrypted to the other instance's secret")
	})
}

func TestApplyRefusesAnotherApplicationAndWritesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		a := f.instance("app-a", 0, "secret-a")
		c := f.instance("app-c", 1, "secret-c")
		f.deploy(a, "secret-a", flowsV1, credsV1)
		f.deploy(c, "secret-c", flowsV2, credsV2)
		snap, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "v1"})
		require.NoError(t, err)
		err = f.svc.Apply(ctx, snap.ID, c.ID)
		de, ok := domain.AsError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, "snapshot_other_application", de.Code)
		flows, creds := f.stored(c, "secret-c")
		assert.Equal(t, flowsV2, flows)
		assert.Equal(t, credsV2, creds)
	})
}

func TestOverridesLeaveLockedAndTemplateValuesToTheTemplate(t *testing.T) {
	tpl := &storage.Template{Settings: map[string]any{"pageTitle": "P", "timeZone": "UTC"}, Policy: map[string]bool{"pageTitle": false},
		Env: []domain.EnvVar{{Name: "LOCKED", Value: "x", Locked: true}, {Name: "SAME", Value: "s"}}}
	settings, env, err := snapshots.Overrides(tpl,
		map[string]any{"pageTitle": "changed", "timeZone": "UTC", "theme": "dark", "httpAdminRoot": "/not-ours"},
		[]domain.EnvVar{{Name: "LOCKED", Value: "y", Locked: true}, {Name: "SAME", Value: "s"}, {Name: "MINE", Value: "m"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"theme": "dark"}, settings)
	assert.Equal(t, []domain.EnvVar{{Name: "MINE", Value: "m"}}, env)
}

func TestExportAndImportMoveCredentialsBetweenSecrets(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		a := f.instance("exp-a", 0, "secret-a")
		other := f.instance("exp-other", 1, "secret-other")
		f.deploy(a, "secret-a", flowsV1, credsV1)
		snap, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "v1"})
		require.NoError(t, err)

		_, err = f.svc.ExportCredentials(snap.Credentials, snap.CredentialSecret, "")
		assert.True(t, domain.IsKind(err, domain.KindInvalid), "export needs a secret")
		exported, err := f.svc.ExportCredentials(snap.Credentials, snap.CredentialSecret, "user-chosen")
		require.NoError(t, err)
		creds, err := nodered.DecryptCredentials("user-chosen", exported)
		require.NoError(t, err)
		assert.Equal(t, credsV1, creds)

		content := snapshots.Content{Flows: json.RawMessage(flowsV1), Credentials: exported,
			Settings: map[string]any{"timeZone": "UTC"}, Env: []domain.EnvVar{{Name: "X", Value: "1", Locked: true}},
			Modules: map[string]string{"node-red-node-random": "0.4.1"}, NodeRedVersion: "4.1.15"}
		_, err = f.svc.Import(ctx, other, content, "wrong-secret", snapshots.Meta{Name: "imported"})
		de, ok := domain.AsError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, domain.KindUnprocessable, de.Kind)
		assert.Equal(t, "wrong_credential_secret", de.Code)
		_, err = f.svc.Import(ctx, other, content, "", snapshots.Meta{Name: "imported"})
		assert.True(t, domain.IsKind(err, domain.KindInvalid), "encrypted credentials need a secret")
		assert.Zero(t, f.count(other), "nothing written on a wrong or missing secret")

		imported, err := f.svc.Import(ctx, other, content, "user-chosen", snapshots.Meta{Name: "imported"})
		require.NoError(t, err)
		got, err := st.GetSnapshot(ctx, imported.ID)
		require.NoError(t, err)
		creds, err = nodered.DecryptCredentials("secret-other", json.RawMessage(got.Credentials))
		require.NoError(t, err)
		assert.Equal(t, credsV1, creds, "re-encrypted to the target instance's secret")
		assert.Equal(t, other.CredentialSecret, got.CredentialSecret)
		assert.Equal(t, []domain.EnvVar{{Name: "X", Value: "1"}}, got.Env, "template locks do not travel")

		plain := content
		plain.Credentials = json.RawMessage(`{"req1":{"password":"plain"}}`)
		_, err = f.svc.Import(ctx, other, plain, "", snapshots.Meta{Name: "plain creds"})
		require.NoError(t, err, "unencrypted credentials need no secret")
	})
}

func TestImportRefusesBadContentAndWritesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		in := f.instance("imp-bad", 0, "s")
		good := snapshots.Content{Flows: json.RawMessage(flowsV1), Credentials: json.RawMessage(`{}`)}
		cases := map[string]func(c *snapshots.Content){
			"flows not an array":  func(c *snapshots.Content) { c.Flows = json.RawMessage(`{"a":1}`) },
			"node without a type": func(c *snapshots.Content) { c.Flows = json.RawMessage(`[{"id":"x"}]`) },
			"unknown setting":     func(c *snapshots.Content) { c.Settings = map[string]any{"httpAdminRoot": "/x"} },
			"bad env name":        func(c *snapshots.Content) { c.Env = []domain.EnvVar{{Name: "1bad", Value: "v"}} },
			"bad module":          func(c *snapshots.Content) { c.Modules = map[string]string{"Not A Module": "1"} },
			"malformed creds":     func(c *snapshots.Content) { c.Credentials = json.RawMessage(`{"$":"zz"}`) },
		}
		for name, mutate := range cases {
			c := good
			mutate(&c)
			_, err := f.svc.Import(ctx, in, c, "user-secret", snapshots.Meta{Name: "x"})
			assert.True(t, domain.IsKind(err, domain.KindInvalid), "%s: %v", name, err)
		}
		huge := good
		huge.Flows = json.RawMessage(`[{"id":"c","type":"comment","info":"` + strings.Repeat("y", snapshots.MaxBytes) + `"}]`)
		_, err := f.svc.Import(ctx, in, huge, "", snapshots.Meta{Name: "x"})
		assert.True(t, domain.IsKind(err, domain.KindTooLarge), "%v", err)
		assert.Zero(t, f.count(in))
	})
}

func TestSeedForANewInstance(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		a := f.instance("seed-a", 0, "secret-a")
		f.deploy(a, "secret-a", flowsV1, credsV1)
		snap, err := f.svc.Capture(ctx, a.ID, snapshots.Meta{Name: "v1"})
		require.NoError(t, err)
		seed, err := f.svc.SeedFor(ctx, snap.ID, f.team, f.tpl, f.sealer.Seal("new-secret"))
		require.NoError(t, err)
		assert.Equal(t, flowsV1, seed.Flows)
		creds, err := nodered.DecryptCredentials("new-secret", json.RawMessage(seed.Credentials))
		require.NoError(t, err)
		assert.Equal(t, credsV1, creds)
		assert.Equal(t, map[string]any{"timeZone": "Europe/Paris"}, seed.Settings)

		for _, id := range []string{"nope", snap.ID} {
			team := "another-team"
			if id == "nope" {
				team = f.team
			}
			_, err := f.svc.SeedFor(ctx, id, team, f.tpl, f.sealer.Seal("x"))
			de, ok := domain.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, "unknown_reference", de.Code)
		}
	})
}
