// Package replaytest keeps the replay corpus: workflow histories recorded from real runs on the Temporal dev
// server (Record, into workflows/<package>/testdata/replay_*.json) and replayed against today's workflow code
// (Run, in each workflow package's replay test; worker's test replays the whole corpus against what the workers
// register and fails for a registered workflow without a history). A change that would break runs in flight
// fails there and must go behind workflow.GetVersion.
package replaytest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
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
		t.Run(filepath.Base(f), func(t *testing.T) { Replay(t, f, workflows...) })
	}
}

// Replay replays one recorded history with the given workflows registered.
func Replay(t *testing.T, file string, workflows ...Workflow) {
	t.Helper()
	r := worker.NewWorkflowReplayer()
	for _, w := range workflows {
		r.RegisterWorkflowWithOptions(w.Fn, workflow.RegisterOptions{Name: w.Name})
	}
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
}

// Corpus returns every recorded history of the repository by the workflow type that started it.
func Corpus(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(), "workflows", "*", "testdata", "replay_*.json"))
	require.NoError(t, err)
	byType := map[string][]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var h historypb.History
		require.NoError(t, protojson.Unmarshal(data, &h), f)
		require.NotEmpty(t, h.Events, f)
		started := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
		require.NotNil(t, started, "%s does not begin with the workflow's start", f)
		byType[started.GetWorkflowType().GetName()] = append(byType[started.GetWorkflowType().GetName()], f)
	}
	return byType
}

// Recording reports whether tests record histories in this run (FLOWYARD_RECORD_HISTORIES=1, after a
// deliberate change to a workflow).
func Recording() bool { return os.Getenv("FLOWYARD_RECORD_HISTORIES") == "1" }

// Record writes the history of a workflow run (runID empty: the latest) into workflows/<pkg>/testdata/<file>
// for the replay tests, when Recording.
func Record(t testing.TB, c client.Client, workflowID, runID, pkg, file string) {
	t.Helper()
	if !Recording() {
		return
	}
	var events []*historypb.HistoryEvent
	iter := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		events = append(events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	require.NoError(t, err)
	dir := filepath.Join(repoRoot(), "workflows", pkg, "testdata")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, file), b, 0o644))
	t.Logf("recorded %s (%d events) into %s", workflowID, len(events), filepath.Join(dir, file))
}

// RecordScheduled waits for the latest run a Schedule started to end, and Records it.
func RecordScheduled(t testing.TB, c client.Client, scheduleID, pkg, file string) {
	t.Helper()
	if !Recording() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	desc, err := c.ScheduleClient().GetHandle(ctx, scheduleID).Describe(ctx)
	require.NoError(t, err)
	actions := desc.Info.RecentActions
	require.NotEmpty(t, actions, "the Schedule %s started nothing yet", scheduleID)
	run := actions[len(actions)-1].StartWorkflowResult
	require.NoError(t, c.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, nil))
	Record(t, c, run.WorkflowID, run.FirstExecutionRunID, pkg, file)
}

// RecordAt is Record through a client of its own, for tests that know only the server's address.
func RecordAt(t testing.TB, address, namespace, workflowID, runID, pkg, file string) {
	t.Helper()
	if !Recording() {
		return
	}
	c, err := client.Dial(client.Options{HostPort: address, Namespace: namespace})
	require.NoError(t, err)
	defer c.Close()
	Record(t, c, workflowID, runID, pkg, file)
}

// repoRoot is the repository's root, two levels above this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
