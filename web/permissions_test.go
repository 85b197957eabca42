package web_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
)

var (
	jsTableRow = regexp.MustCompile(`(?m)^\s*'([a-z:-]+)': '([a-z]+)',$`)
	goAction   = regexp.MustCompile(`Action\w+\s+Action = "([^"]+)"`)
)

// TestPermissionTableMatchesDomain checks the dashboard's copy of the permission table (static/permissions.js)
// against domain.MinRole for every action declared in domain/permissions.go, both ways.
func TestPermissionTableMatchesDomain(t *testing.T) {
	js, err := os.ReadFile("static/permissions.js")
	require.NoError(t, err)
	goSrc, err := os.ReadFile("../domain/permissions.go")
	require.NoError(t, err)

	copied := map[string]string{}
	for _, m := range jsTableRow.FindAllStringSubmatch(string(js), -1) {
		copied[m[1]] = m[2]
	}
	require.NotEmpty(t, copied, "no rows found in static/permissions.js")
	declared := goAction.FindAllStringSubmatch(string(goSrc), -1)
	require.NotEmpty(t, declared, "no actions found in domain/permissions.go")
	for _, m := range declared {
		action := m[1]
		want, ok := domain.MinRole(domain.Action(action))
		got, inJS := copied[action]
		if !ok {
			assert.False(t, inJS, "%s is admin-only or needs no role in domain, but permissions.js lists it", action)
			continue
		}
		assert.Equal(t, want.String(), got, "least role for %s", action)
	}
	for action := range copied {
		_, ok := domain.MinRole(domain.Action(action))
		assert.True(t, ok, "permissions.js lists %s, which domain does not", action)
	}
}
