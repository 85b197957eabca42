package api_test

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestOpenAPIMatchesRoutes keeps /api/v1/openapi.json in step with the routes Fiber actually serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	env := apitest.Start(t, "sqlite")
	doc := env.Client(t).Must(200, "GET", "/api/v1/openapi.json", nil)
	documented := map[string]bool{}
	for path, item := range doc.Body["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}

	srv := api.New(api.Deps{Store: storagetest.New(t, "sqlite")})
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	served := map[string]bool{}
	for _, r := range srv.App().GetRoutes(true) {
		if r.Path == "/" || r.Method == "HEAD" || r.Method == "USE" {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	require.NotEmpty(t, served)
	assert.Equal(t, keys(served), keys(documented))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
