package activities

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestSpecCarriesEveryTemplateLock builds the driver's spec of an instance whose template locks palette
// installs off, a deny list and a time zone: each must reach the spec in Node-RED's terms, and the
// instance's own TZ must not undo the template's time zone.
func TestSpecCarriesEveryTemplateLock(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		tpl := &storage.Template{ID: domain.NewID(), Name: "locked", Active: true,
			Settings: map[string]any{"paletteAllowInstall": false, "paletteDenyList": []any{"node-red-contrib-exec*"},
				"modulesAllowInstall": false, "timeZone": "Asia/Tokyo", "pageTitle": "Locked"},
			Policy: map[string]bool{"paletteAllowInstall": false, "paletteDenyList": false, "modulesAllowInstall": false, "timeZone": false},
			Env:    []domain.EnvVar{}}
		in := insertInstance(t, st, sealer, tpl, []domain.EnvVar{{Name: "TZ", Value: "Europe/Paris"}, {Name: "GREETING", Value: "hi"}})

		a := &Instances{Store: st, Sealer: sealer}
		spec, err := a.spec(ctx, in.ID, false)
		require.NoError(t, err)
		assert.Equal(t, map[string]any{
			"externalModules": map[string]any{
				"palette": map[string]any{"allowInstall": false, "allowUpload": false, "denyList": []any{"node-red-contrib-exec*"}},
				"modules": map[string]any{"allowInstall": false},
			},
			"editorTheme": map[string]any{"page": map[string]any{"title": "Locked"}},
		}, spec.Settings)
		assert.Equal(t, "Asia/Tokyo", spec.Env["TZ"], "the template's time zone, not the instance's TZ")
		assert.Equal(t, "hi", spec.Env["GREETING"])
	})
}

// TestSpecRefusesASettingItCannotApply: a stored setting without a Node-RED equivalent stops the start with
// its name instead of being dropped.
func TestSpecRefusesASettingItCannotApply(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		tpl := &storage.Template{ID: domain.NewID(), Name: "old", Active: true,
			Settings: map[string]any{"paletteCatalogue": "https://catalogue.example"}, Policy: map[string]bool{}, Env: []domain.EnvVar{}}
		in := insertInstance(t, st, sealer, tpl, nil)
		_, err = (&Instances{Store: st, Sealer: sealer}).spec(context.Background(), in.ID, false)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"paletteCatalogue"`)
	})
}

// insertInstance stores tpl and an instance of it with env.
func insertInstance(t *testing.T, st *storage.Store, sealer *domain.Sealer, tpl *storage.Template, env []domain.EnvVar) *storage.Instance {
	t.Helper()
	require.NoError(t, storage.InsertObject(context.Background(), st, tpl))
	return storagetest.NewInstance(t, st, sealer, func(in *storage.Instance) { in.TemplateID, in.Env = tpl.ID, env })
}

// TestSpecRefusesModulesTheTemplateDenies: the platform installs an instance's modules with npm (from a
// blueprint or a restored snapshot) before Node-RED starts, so a module the template's deny list names is
// refused before npm can run its install scripts.
func TestSpecRefusesModulesTheTemplateDenies(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
		require.NoError(t, err)
		tpl := &storage.Template{ID: domain.NewID(), Name: "deny", Active: true,
			Settings: map[string]any{"paletteDenyList": []any{"node-red-contrib-exec*"}}, Policy: map[string]bool{"paletteDenyList": false}, Env: []domain.EnvVar{}}
		require.NoError(t, storage.InsertObject(context.Background(), st, tpl))
		a := &Instances{Store: st, Sealer: sealer}
		for modules, refused := range map[string]bool{`{"node-red-contrib-exec-cmd":"1.0.0"}`: true, `{"node-red-node-random":"0.4.1"}`: false} {
			in := storagetest.NewInstance(t, st, sealer, func(in *storage.Instance) {
				in.TemplateID = tpl.ID
				require.NoError(t, json.Unmarshal([]byte(modules), &in.Modules))
			})
			_, err := a.spec(context.Background(), in.ID, false)
			if refused {
				require.Error(t, err, modules)
				assert.Contains(t, err.Error(), "node-red-contrib-exec-cmd")
			} else {
				require.NoError(t, err, modules)
			}
		}
	})
}
