package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTools puts `npm` and `node` first on PATH: each writes the environment it was started with to
// <dir>/<name>.env, and node answers --version.
func fakeTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"npm", "node"} {
		script := "#!/bin/sh\nenv > '" + filepath.Join(dir, name+".env") + "'\necho v20.20.2\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "the tool did not run")
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestChildrenGetNoFlowyardVariables: npm (which runs the install scripts of a snapshot's modules) and
// `node --version` start with a child's minimum environment, never the agent's FLOWYARD_ variables.
func TestChildrenGetNoFlowyardVariables(t *testing.T) {
	t.Setenv("FLOWYARD_SECRET_KEY", "platform-secret-key-0123456789abcdef")
	t.Setenv("FLOWYARD_DATABASE_URL", "postgres://flowyard:db-password@db/flowyard")
	t.Setenv("npm_config_registry", "http://registry.test/") // an npm setting the operator exported
	tools := fakeTools(t)

	n := &NodeRED{Dir: t.TempDir()}
	require.NoError(t, n.install(context.Background(), &Snapshot{ID: "s1", Modules: map[string]string{"node-red": "4.1.15"}}))
	assert.Equal(t, "v20.20.2", hostNodeVersion())

	for _, name := range []string{"npm", "node"} {
		env := readEnvFile(t, filepath.Join(tools, name+".env"))
		for k := range env {
			assert.False(t, strings.HasPrefix(k, "FLOWYARD_"), "%s sees %s", name, k)
		}
		assert.Equal(t, os.Getenv("PATH"), env["PATH"], "%s finds programs", name)
		assert.Equal(t, os.Getenv("HOME"), env["HOME"], "%s has its home (npm's cache and ~/.npmrc)", name)
	}
	assert.Equal(t, "http://registry.test/", readEnvFile(t, filepath.Join(tools, "npm.env"))["npm_config_registry"])
}
