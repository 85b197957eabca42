package web_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/rollout"
)

var quoted = regexp.MustCompile(`'([a-z_]+)'`)

// words returns the quoted words of the first match of pattern's group 1 in a static file.
func words(t *testing.T, file, pattern string) []string {
	t.Helper()
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	m := regexp.MustCompile(pattern).FindSubmatch(src)
	require.NotNil(t, m, "%s: nothing matches %s", file, pattern)
	var out []string
	for _, w := range quoted.FindAllSubmatch(m[1], -1) {
		out = append(out, string(w[1]))
	}
	require.NotEmpty(t, out, "%s: no words in %s", file, m[0])
	return out
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func terminal[T interface {
	~string
	Terminal() bool
}](all []T) []string {
	var out []string
	for _, s := range all {
		if s.Terminal() {
			out = append(out, string(s))
		}
	}
	return out
}

// TestDashboardVocabularyMatchesDomain checks the dashboard's copies of the states and statuses (which
// lifecycle actions an instance state offers, which operator actions a rollout status offers, when a rollout,
// an operation or a promotion has finished) against domain's vocabulary and the workflows that decide.
func TestDashboardVocabularyMatchesDomain(t *testing.T) {
	t.Run("instance lifecycle", func(t *testing.T) {
		src, err := os.ReadFile("static/pages/instance.js")
		require.NoError(t, err)
		lifecycle := regexp.MustCompile(`\{ name: '(\w+)', label: '[^']*', when: \[([^\]]*)\]`).FindAllSubmatch(src, -1)
		require.NotEmpty(t, lifecycle)
		for _, a := range lifecycle {
			_, isAction := instance.UserActions[string(a[1])]
			assert.True(t, isAction, "instance.js offers %s, which is not a user action", a[1])
			for _, w := range quoted.FindAllSubmatch(a[2], -1) {
				assert.Contains(t, strs(domain.InstanceStates()), string(w[1]), "instance.js offers %s in an unknown state", a[1])
			}
		}
		for _, w := range regexp.MustCompile(`inst\.state [!=]== '(\w+)'`).FindAllSubmatch(src, -1) {
			assert.Contains(t, strs(domain.InstanceStates()), string(w[1]))
		}
	})
	t.Run("rollout controls", func(t *testing.T) {
		src, err := os.ReadFile("static/pages/group.js")
		require.NoError(t, err)
		block := regexp.MustCompile(`(?s)const controls = \{(.*?)\n\};`).FindSubmatch(src)
		require.NotNil(t, block, "group.js: no controls table")
		offered := map[string][]string{}
		for _, row := range regexp.MustCompile(`(\w+): \[([^\]]*)\]`).FindAllSubmatch(block[1], -1) {
			for _, w := range quoted.FindAllSubmatch(row[2], -1) {
				offered[string(w[1])] = append(offered[string(w[1])], string(row[1]))
			}
		}
		require.NotEmpty(t, offered)
		for action, allowed := range rollout.UpdateAllowedIn {
			got := offered[action]
			slices.Sort(got)
			want := strs(allowed)
			slices.Sort(want)
			assert.Equal(t, want, got, "group.js offers %s in other statuses than the workflow accepts it", action)
		}
		for action := range offered {
			_, ok := rollout.UpdateAllowedIn[action]
			assert.True(t, ok, "group.js offers %s, which the rollout workflow does not take", action)
		}
		assert.ElementsMatch(t, terminal(domain.RolloutStatuses()), words(t, "static/pages/group.js", `const finished = \[([^\]]*)\]`))
	})
	t.Run("finished operations", func(t *testing.T) {
		assert.ElementsMatch(t, terminal(domain.OperationStatuses()),
			words(t, "static/operation.js", `current\?\.status !== op\.status && \[([^\]]*)\]\.includes`))
	})
	t.Run("open promotions", func(t *testing.T) {
		var open []string
		for _, s := range domain.PromotionStatuses() {
			if s.Active() {
				open = append(open, string(s))
			}
		}
		assert.ElementsMatch(t, open, words(t, "static/pages/pipeline-promotions.js", `const open = \[([^\]]*)\]`))
		for _, w := range regexp.MustCompile(`r\.status === '(\w+)'`).FindAllStringSubmatch(read(t, "static/pages/pipeline-promotions.js"), -1) {
			assert.Contains(t, strs(domain.PromotionStatuses()), w[1])
		}
	})
	t.Run("badges", func(t *testing.T) {
		// The badge colours name states and statuses of every kind, and a device's; each must exist somewhere.
		known := strs(domain.InstanceStates())
		known = append(known, strs(domain.RolloutStatuses())...)
		known = append(known, strs(domain.OperationStatuses())...)
		known = append(known, "online", "offline", "active") // a device's connection, a subscription
		for _, list := range []string{"goodStates", "badStates"} {
			for _, w := range words(t, "static/ui.js", `const `+list+` = \[([^\]]*)\]`) {
				assert.Contains(t, known, w, "ui.js %s", list)
			}
		}
	})
}

func read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}
