package domain

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// declared returns the values of the constants of a type declared in vocabulary.go.
func declared(t *testing.T, typ string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "vocabulary.go", nil, 0)
	require.NoError(t, err)
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := spec.Type.(*ast.Ident); ok && id.Name == typ {
			for _, v := range spec.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					out = append(out, lit.Value[1:len(lit.Value)-1])
				}
			}
		}
		return true
	})
	require.NotEmpty(t, out, "no %s constants", typ)
	return out
}

// TestListsNameEveryDeclaredValue: whatever ranges over a list (the instances metric over InstanceStates) sees
// every declared value. The metric once missed instances mid rollback.
func TestListsNameEveryDeclaredValue(t *testing.T) {
	states := declared(t, "InstanceState")
	states = slices.DeleteFunc(states, func(s string) bool { return s == string(InstanceDeleted) }) // no row is ever in it
	assert.ElementsMatch(t, states, strs(InstanceStates()))
	assert.ElementsMatch(t, declared(t, "OperationStatus"), strs(OperationStatuses()))
	assert.ElementsMatch(t, declared(t, "RolloutStatus"), strs(RolloutStatuses()))
	assert.ElementsMatch(t, declared(t, "PromotionStatus"), strs(PromotionStatuses()))
}

// TestStatusSetsAreConsistent: every status is either active or terminal, never both (a rollout's and a
// promotion's), and the lists name each status once.
func TestStatusSetsAreConsistent(t *testing.T) {
	for _, s := range RolloutStatuses() {
		assert.NotEqual(t, s.Active(), s.Terminal(), "rollout status %s", s)
	}
	for _, s := range PromotionStatuses() {
		assert.NotEqual(t, s.Active(), s.Terminal(), "promotion status %s", s)
	}
	for _, s := range ActiveRolloutStatuses() {
		assert.True(t, s.Active(), "%s", s)
	}
	for _, s := range ActivePromotionStatuses() {
		assert.True(t, s.Active(), "%s", s)
	}
	for _, list := range [][]string{strs(InstanceStates()), strs(OperationStatuses()), strs(RolloutStatuses()), strs(PromotionStatuses())} {
		sorted := slices.Clone(list)
		slices.Sort(sorted)
		assert.Equal(t, len(list), len(slices.Compact(sorted)), "%v", list)
	}
}
