// Package architecture checks the import rules of docs/ARCHITECTURE.md §2 with `go list`, so a wrong import fails the build's
// tests instead of waiting for a review.
package architecture_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/flowyard/flowyard"

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rule forbids packages matching from to import anything matching a forbidden prefix.
type rule struct {
	why       string
	applies   func(path string) bool
	forbidden func(imp string) bool
}

func ours(imp string) bool { return imp == module || strings.HasPrefix(imp, module+"/") }

func under(prefix string) func(string) bool {
	return func(p string) bool { return p == module+"/"+prefix || strings.HasPrefix(p, module+"/"+prefix+"/") }
}

func exactly(name string) func(string) bool {
	return func(p string) bool { return p == module+"/"+name }
}

func anyOf(preds ...func(string) bool) func(string) bool {
	return func(s string) bool {
		for _, p := range preds {
			if p(s) {
				return true
			}
		}
		return false
	}
}

func prefixed(prefixes ...string) func(string) bool {
	return func(s string) bool {
		for _, p := range prefixes {
			if s == p || strings.HasPrefix(s, p+"/") {
				return true
			}
		}
		return false
	}
}

var rules = []rule{
	{"domain imports no package of ours", exactly("domain"), ours},
	{"storage imports only domain", exactly("storage"), func(imp string) bool { return ours(imp) && imp != module+"/domain" }},
	{"workflows never touch storage, drivers, broker, bun, fiber, net/http or os", under("workflows"),
		anyOf(under("storage"), under("drivers"), under("broker"), prefixed("github.com/uptrace/bun", "github.com/gofiber/fiber", "net/http", "os"))},
	{"the API reaches Temporal only through workflow facades, and never activities or drivers", under("api"),
		anyOf(under("activities"), under("drivers"), prefixed("go.temporal.io"))},
	{"services hold the shared flows below the API: they never import the API, Fiber, activities or drivers", under("services"),
		anyOf(under("api"), under("activities"), under("drivers"), prefixed("github.com/gofiber/fiber", "net/http"))},
	{"activities never import the API or workflow code", under("activities"), anyOf(under("api"), prefixed("go.temporal.io/sdk/workflow"))},
	{"relay reaches devices only through the Connections interface a broker implements: it never imports broker", under("relay"), under("broker")},
	{"cmd holds wiring only: it imports config, platform and agent", under("cmd"),
		func(imp string) bool {
			return ours(imp) && !anyOf(exactly("config"), exactly("platform"), under("agent"))(imp)
		}},
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		for _, r := range rules {
			if !r.applies(p.ImportPath) {
				continue
			}
			for _, imp := range p.Imports {
				if r.forbidden(imp) {
					t.Errorf("%s imports %s: %s (docs/ARCHITECTURE.md §2)", p.ImportPath, imp, r.why)
				}
			}
		}
	}
}

// TestRulesCatchAViolation makes sure the rules are not vacuous: a made-up domain package importing storage fails.
func TestRulesCatchAViolation(t *testing.T) {
	bad := pkg{ImportPath: module + "/domain", Imports: []string{module + "/storage"}}
	caught := false
	for _, r := range rules {
		if r.applies(bad.ImportPath) && r.forbidden(bad.Imports[0]) {
			caught = true
		}
	}
	if !caught {
		t.Fatal("the rules did not catch domain importing storage")
	}
}
