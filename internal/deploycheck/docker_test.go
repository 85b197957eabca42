package deploycheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stage is one FROM ... block of a Dockerfile.
type stage struct {
	from  string
	lines []string
}

func stages(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []stage
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); strings.EqualFold(f[0], "FROM") {
			out = append(out, stage{from: f[1]})
			continue
		}
		require.NotEmpty(t, out, "%s: instruction before FROM", path)
		out[len(out)-1].lines = append(out[len(out)-1].lines, line)
	}
	return out
}

func instruction(s stage, name string) []string {
	var out []string
	for _, l := range s.lines {
		if f := strings.Fields(l); strings.EqualFold(f[0], name) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

func TestDockerfilesAreMultiStageAndRunAsNonRoot(t *testing.T) {
	for name, runtimeBase := range map[string]string{
		"flowyard.Dockerfile":       "gcr.io/distroless/static-debian12:nonroot",
		"flowyard-agent.Dockerfile": "node:22-bookworm-slim",
	} {
		st := stages(t, filepath.Join("../../deploy/docker", name))
		require.GreaterOrEqual(t, len(st), 2, "%s: a build stage and a runtime stage", name)
		assert.True(t, strings.HasPrefix(st[0].from, "golang:1.26"), "%s builds with the project's Go", name)
		final := st[len(st)-1]
		assert.Equal(t, runtimeBase, final.from, name)
		users := instruction(final, "USER")
		require.NotEmpty(t, users, "%s: the runtime stage names its user", name)
		assert.NotContains(t, []string{"root", "0", "0:0"}, users[len(users)-1], name)
		assert.NotEmpty(t, instruction(final, "ENTRYPOINT"), name)
		for _, run := range instruction(st[0], "RUN") {
			if strings.Contains(run, "go build") {
				assert.Contains(t, run, "CGO_ENABLED=0", "%s: a static binary", name)
			}
		}
	}
	_, err := os.Stat("../../cmd/flowyard/main.go")
	assert.NoError(t, err, "the flowyard image builds ./cmd/flowyard")
}
