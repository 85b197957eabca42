package agent

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFleetSettingsInTheUserDir: the settings document's fleet settings become Node-RED's: catalogues in the
// editor theme, the local login as adminAuth (the bcrypt hash as it came, and a read-only token for the agent's
// probe), the .npmrc beside package.json; settings.js is JavaScript Node-RED can load.
func TestFleetSettingsInTheUserDir(t *testing.T) {
	n := &NodeRED{Dir: t.TempDir(), Port: 1999, CredentialSecret: "s3cret"}
	var s Settings
	s.Palette.NPMRC = "registry=https://npm.example.com/\n"
	s.Palette.Catalogues = []string{"https://catalogue.example.com/catalogue.json"}
	s.Security.LocalAuth = &LocalAuth{Enabled: true, User: "operator", Pass: "$2a$11$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"}
	path := filepath.Join(n.Dir, "settings.js")
	require.NoError(t, os.WriteFile(path, []byte(n.settingsJS(&s, "probe-token")), 0o600))
	script := `const s = require(process.argv[1]);
s.adminAuth.tokens("probe-token").then((u) => s.adminAuth.tokens("other").then((none) => console.log(JSON.stringify({
  catalogues: s.editorTheme.palette.catalogues, users: s.adminAuth.users, probe: u, other: none, port: s.uiPort }))));`
	out, err := exec.Command("node", "-e", script, path).Output()
	require.NoError(t, err, "settings.js loads in Node.js")
	var got struct {
		Catalogues []string            `json:"catalogues"`
		Users      []map[string]string `json:"users"`
		Probe      map[string]string   `json:"probe"`
		Other      any                 `json:"other"`
		Port       int                 `json:"port"`
	}
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, s.Palette.Catalogues, got.Catalogues)
	assert.Equal(t, []map[string]string{{"username": "operator", "password": s.Security.LocalAuth.Pass, "permissions": "*"}}, got.Users)
	assert.Equal(t, "read", got.Probe["permissions"], "the agent's probe may only read")
	assert.Nil(t, got.Other)
	assert.Equal(t, 1999, got.Port)

	require.NoError(t, n.writeNpmrc(&s))
	b, err := os.ReadFile(filepath.Join(n.Dir, ".npmrc"))
	require.NoError(t, err)
	assert.Equal(t, s.Palette.NPMRC, string(b))
	require.NoError(t, n.writeNpmrc(&Settings{}))
	assert.NoFileExists(t, filepath.Join(n.Dir, ".npmrc"), "a registry no longer set is removed")
	assert.NotContains(t, n.settingsJS(&Settings{}, "x"), "adminAuth", "no login unless enabled")

	snap := &Snapshot{ID: "s1", Modules: map[string]string{"node-red": "4.1.15", "x": "1"}}
	s.Editor.NodeRedVersion = "4.1.14"
	assert.Equal(t, "4.1.14", withNodeRedVersion(snap, &s, true).Modules["node-red"])
	assert.Equal(t, "4.1.15", snap.Modules["node-red"], "the snapshot itself is not changed")
	assert.Equal(t, "4.1.15", withNodeRedVersion(snap, &s, false).Modules["node-red"], "FlowFuse's agent applies it to application devices only")
}

// TestANewCredentialSecretDownloadsTheSnapshotAgain: an agent started with a device.yml whose credential secret is
// not the one its user dir was written with (regenerated credentials) forgets its snapshot, so the next update
// downloads it again; the same secret keeps it.
func TestANewCredentialSecretDownloadsTheSnapshotAgain(t *testing.T) {
	for _, tc := range []struct {
		secret string
		keeps  bool
	}{{"old-secret", true}, {"new-secret", false}} {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "device.yml")
		require.NoError(t, SaveConfig(cfg, &DeviceConfig{DeviceID: "d1", Token: "fyd_x", CredentialSecret: tc.secret, ForgeURL: "http://127.0.0.1:1"}))
		st, err := json.Marshal(persisted{SecretDigest: secretDigest("old-secret"), Snapshot: &Snapshot{ID: "s1"}, Settings: &Settings{Hash: "h1"}})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), st, 0o600))
		a, err := newAgent(context.Background(), Options{ConfigPath: cfg, Dir: dir, Runner: &fakeRunner{}})
		require.NoError(t, err)
		assert.Equal(t, tc.keeps, a.st.Snapshot != nil, "secret %s", tc.secret)
	}
}
