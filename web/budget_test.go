package web_test

import (
	"maps"
	"path"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/web"
)

// The dashboard's script budgets (web/CONVENTIONS.md, "Size"), in bytes of uncompressed JavaScript.
const (
	// shellBudget: app.js and every module it imports statically, fetched before any page.
	shellBudget = 40 * 1024
	// firstLoadBudget: the shell plus the page modules of a first visit (the sign-in page, or the start page
	// and the team's applications it goes to).
	firstLoadBudget = 45 * 1024
	// pageBudget: what opening one page adds to the shell (its module and the modules only it imports).
	pageBudget = 24 * 1024
)

var (
	staticImport = regexp.MustCompile(`(?m)^\s*import\s+(?:[^'"]*?\s+from\s+)?'(\.[^']+)'`)
	routeImport  = regexp.MustCompile(`import\('(\./pages/[^']+)'\)`)
)

// moduleClosure adds name and every module it imports statically (import … from './x.js') to seen.
func moduleClosure(t *testing.T, name string, seen map[string]bool) map[string]bool {
	if seen[name] {
		return seen
	}
	a, ok := web.Lookup(name)
	require.True(t, ok, "module %s is imported but missing from web/static", name)
	seen[name] = true
	for _, m := range staticImport.FindAllStringSubmatch(string(a.Body), -1) {
		moduleClosure(t, path.Join(path.Dir(name), m[1]), seen)
	}
	return seen
}

// size adds up the uncompressed and gzip bytes of the modules in set that are not in except.
func size(set, except map[string]bool) (raw, gz int) {
	for name := range set {
		if except[name] {
			continue
		}
		a, _ := web.Lookup(name)
		raw += len(a.Body)
		if a.Gzip != nil {
			gz += len(a.Gzip)
		} else {
			gz += len(a.Body)
		}
	}
	return raw, gz
}

// TestScriptBudget keeps the first page load small: every page is loaded on first visit (import() in
// routes.js), never by the shell, and the shell, a first visit and each page stay within their budgets.
func TestScriptBudget(t *testing.T) {
	shell := moduleClosure(t, "app.js", map[string]bool{})
	for name := range shell {
		assert.NotRegexp(t, `^pages/`, name, "the shell imports a page statically: load it from routes.js with import()")
	}
	raw, gz := size(shell, nil)
	t.Logf("shell: %d modules, %d B (%d B gzip)", len(shell), raw, gz)
	assert.LessOrEqual(t, raw, shellBudget, "the shell's modules outgrow their budget")

	routes, _ := web.Lookup("routes.js")
	pages := map[string]bool{}
	for _, m := range routeImport.FindAllStringSubmatch(string(routes.Body), -1) {
		pages[path.Join(".", m[1])] = true
	}
	require.NotEmpty(t, pages, "no import('./pages/…') in routes.js")
	names := make([]string, 0, len(pages))
	for name := range pages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		own, ownGz := size(moduleClosure(t, name, map[string]bool{}), shell)
		t.Logf("%s: +%d B (%d B gzip)", name, own, ownGz)
		assert.LessOrEqual(t, own, pageBudget, "%s adds more than a page's budget to the shell", name)
	}

	for _, visit := range [][]string{{"pages/signin.js"}, {"pages/home.js", "pages/applications.js"}} {
		loaded := maps.Clone(shell)
		for _, name := range visit {
			require.True(t, pages[name], "%s is not a route of routes.js", name)
			moduleClosure(t, name, loaded)
		}
		raw, gz := size(loaded, nil)
		t.Logf("first visit to %v: %d B (%d B gzip)", visit, raw, gz)
		assert.LessOrEqual(t, raw, firstLoadBudget, "a first visit to %v outgrows its budget", visit)
	}
}
