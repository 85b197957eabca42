package instance

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStatesListsEveryState: every State constant declared in this package is in States, so whatever ranges over
// States (the instances metric) sees an instance in any state. The metric once missed instances mid rollback.
func TestStatesListsEveryState(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if strings.HasPrefix(name.Name, "State") && i < len(spec.Values) {
					if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						declared = append(declared, strings.Trim(lit.Value, `"`))
					}
				}
			}
			return true
		})
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d state constants: %v", len(declared), declared)
	}
	for _, state := range declared {
		if !slices.Contains(States, state) {
			t.Errorf("state %q is declared but not in States", state)
		}
	}
}
