package worker_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/worker"
)

// TestEveryRegisteredWorkflowReplaysItsRecordedHistories replays the whole corpus (workflows/*/testdata) against
// the workflows the workers register, and fails for a registered workflow without a recorded history and for
// a history no worker would run. Record a missing one from a test on the dev server with replaytest.Record.
func TestEveryRegisteredWorkflowReplaysItsRecordedHistories(t *testing.T) {
	corpus := replaytest.Corpus(t)
	var registered []string
	for _, r := range worker.Workflows() {
		registered = append(registered, r.Name)
		t.Run(r.Name, func(t *testing.T) {
			files := corpus[r.Name]
			if len(files) == 0 {
				t.Fatalf("%s is registered but has no recorded history in workflows/*/testdata", r.Name)
			}
			for _, f := range files {
				replaytest.Replay(t, f, replaytest.Workflow{Fn: r.Fn, Name: r.Name})
			}
		})
	}
	for name, files := range corpus {
		if !slices.Contains(registered, name) {
			t.Errorf("%v record %s, which no worker registers", files, name)
		}
	}
}

// undatedChangeIDs were in use before change IDs carried their date; histories in flight hold them, so they keep
// their names.
var undatedChangeIDs = []string{"deploy-to-devices"}

var datedChangeID = regexp.MustCompile(`^20\d\d-[01]\d-[0-3]\d-[a-z0-9-]+$`)

// TestWorkflowChangeIDsAreDated: every workflow.GetVersion names a change ID declared as a constant in its
// package, dated <yyyy-mm-dd>-<what> (the ones from before the rule excepted), so the IDs read as the
// workflow's history and two changes never share one.
func TestWorkflowChangeIDsAreDated(t *testing.T) {
	dirs, err := filepath.Glob("../workflows/*")
	require.NoError(t, err)
	calls := 0
	for _, dir := range dirs {
		fset := token.NewFileSet()
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		var files []*ast.File
		for _, name := range names {
			if !strings.HasSuffix(name, "_test.go") {
				f, err := parser.ParseFile(fset, name, nil, 0)
				require.NoError(t, err)
				files = append(files, f)
			}
		}
		consts := map[string]string{}
		var ids []*ast.CallExpr
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec:
					for i, name := range n.Names {
						if i < len(n.Values) {
							if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[name.Name] = strings.Trim(lit.Value, `"`)
							}
						}
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "GetVersion" && len(n.Args) == 4 {
						ids = append(ids, n)
					}
				}
				return true
			})
		}
		for _, call := range ids {
			calls++
			where := fset.Position(call.Pos())
			ident, ok := call.Args[1].(*ast.Ident)
			if !assert.True(t, ok, "%s: name the change ID with a constant", where) {
				continue
			}
			id, ok := consts[ident.Name]
			if assert.True(t, ok, "%s: %s is not a string constant of the package", where, ident.Name) {
				assert.True(t, datedChangeID.MatchString(id) || slices.Contains(undatedChangeIDs, id),
					"%s: change ID %q is not dated <yyyy-mm-dd>-<what>", where, id)
			}
		}
	}
	assert.NotZero(t, calls, "found no workflow.GetVersion at all")
}
