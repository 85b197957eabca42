// Package replaytest replays workflow histories recorded from real runs against today's workflow code, for the
// replay tests of the workflow packages: a change that would break runs in flight fails there and must go
// behind workflow.GetVersion.
package replaytest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Workflow is one workflow function and the name it is registered under.
type Workflow struct {
	Fn   any
	Name string
}

// Run replays every testdata/replay_*.json of the calling package with the given workflows registered; a
// package without recorded histories fails, so a replay test cannot pass by finding nothing.
func Run(t *testing.T, workflows ...Workflow) {
	t.Helper()
	files, err := filepath.Glob("testdata/replay_*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			for _, w := range workflows {
				r.RegisterWorkflowWithOptions(w.Fn, workflow.RegisterOptions{Name: w.Name})
			}
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
