package platform_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage"
)

// BenchmarkSnapshots measures, on `flowyard dev` with real Temporal and real Node-RED, for flows of about
// 1 MB and 10 MB: capturing a snapshot (the HTTP call), rolling back to it (the operation, from its creation
// to its end: automatic snapshot, stop, write, start, flows running) and, to compare, a plain restart of the
// instance (the operation). Both also report Node-RED's own start within them (from spawning the process to
// "Started flows", read from the runtime log), which dominates. Each reports the median of its runs in ms; run 10 of each with
//
//	go test ./platform -run '^$' -bench BenchmarkSnapshots -benchtime 10x -timeout 60m
func BenchmarkSnapshots(b *testing.B) {
	c, _ := runDev(b)
	// Flows of 10 MB need more than the default stack's 256 MB; Node-RED refuses admin API bodies over 5 MB
	// unless told otherwise.
	stack := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "bench", "nodeRedVersion": storage.DefaultNodeRedVersion,
		"memoryMB": 1024, "cpuPercent": 100}).String("id")
	create := map[string]any{"stackId": stack, "settings": map[string]any{"apiMaxLength": "32mb"}}
	for _, size := range []int{1 << 20, 10 << 20} {
		label := fmt.Sprintf("%dMB", size>>20)
		f := newRunningInstance(b, c, "bench-"+strings.ToLower(label), create)
		flows := sizedFlows(size)
		raw, err := json.Marshal(flows)
		require.NoError(b, err)
		f.deploy(f.id, flows)
		base := "/api/v1/instances/" + f.id
		snapID := c.Must(201, "POST", base+"/snapshots", map[string]any{"name": "bench"}).String("id")
		b.Logf("%s: flows of %d bytes, %d nodes", label, len(raw), len(flows))

		b.Run("capture/"+label, func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				c.Must(201, "POST", base+"/snapshots", map[string]any{"name": fmt.Sprint("capture ", i)})
				took = append(took, time.Since(start))
			}
			reportMedian(b, took)
		})
		b.Run("rollback/"+label, func(b *testing.B) {
			var took, nodeRED []time.Duration
			for i := 0; i < b.N; i++ {
				since := time.Now().UTC()
				took = append(took, f.operationTime(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": snapID})))
				nodeRED = append(nodeRED, nodeRedStart(b, c, f.id, since))
			}
			reportMedian(b, took)
			b.ReportMetric(float64(median(nodeRED).Microseconds())/1000, "node-red-start-ms")
		})
		b.Run("restart/"+label, func(b *testing.B) {
			var took, nodeRED []time.Duration
			for i := 0; i < b.N; i++ {
				since := time.Now().UTC()
				took = append(took, f.operationTime(c.Must(202, "POST", base+"/actions/restart", nil)))
				nodeRED = append(nodeRED, nodeRedStart(b, c, f.id, since))
			}
			reportMedian(b, took)
			b.ReportMetric(float64(median(nodeRED).Microseconds())/1000, "node-red-start-ms")
		})
	}
}

// operationTime waits for the operation of a 202 answer to succeed and returns how long it took, by the
// platform's own clock (created to finished).
func (f *snapshotFixture) operationTime(r *apitest.Response) time.Duration {
	f.t.Helper()
	op := f.mustSucceed(r)
	created, err := time.Parse(time.RFC3339Nano, op.String("createdAt"))
	require.NoError(f.t, err)
	finished, err := time.Parse(time.RFC3339Nano, op.String("finishedAt"))
	require.NoError(f.t, err)
	return finished.Sub(created)
}

// nodeRedStart reads from the runtime log how long the last start took: from the driver's "starting
// node-red" line to Node-RED's "Started flows".
func nodeRedStart(b *testing.B, c *apitest.Client, id string, since time.Time) time.Duration {
	b.Helper()
	logs := c.Must(200, "GET", "/api/v1/instances/"+id+"/logs?limit=1000&since="+since.Format(time.RFC3339Nano), nil)
	var spawned, started time.Time
	for _, item := range logs.Body["items"].([]any) {
		line := item.(map[string]any)
		at, err := time.Parse(time.RFC3339Nano, line["time"].(string))
		require.NoError(b, err)
		msg := line["msg"].(string)
		switch {
		case strings.HasPrefix(msg, "starting node-red"):
			spawned = at
		case msg == "Started flows" && !spawned.IsZero():
			started = at
		}
	}
	require.False(b, spawned.IsZero() || started.IsZero(), "start lines not found in %s", logs.Raw)
	return started.Sub(spawned)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// reportMedian reports the median and the spread (min, max) of the runs in ms; make bench reads all three.
func reportMedian(b *testing.B, took []time.Duration) {
	b.ReportMetric(float64(median(took).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(slices.Min(took).Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(slices.Max(took).Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op") // the wall time per op includes polling; the median above is the figure
}

// sizedFlows builds a tab of realistic nodes (inject → function → change → debug chains, comments) whose
// JSON is about size bytes.
func sizedFlows(size int) []any {
	flows := []any{map[string]any{"id": "benchtab", "type": "tab", "label": "Bench"}}
	code := strings.Repeat("// a line of function code that does little but take room\n", 25) + "msg.payload = Date.now();\nreturn msg;"
	total := 60
	for i := 0; total < size; i++ {
		id := func(kind string) string { return fmt.Sprintf("%s%06d", kind, i) }
		chain := []any{
			map[string]any{"id": id("in"), "type": "inject", "z": "benchtab", "name": "tick", "repeat": "", "once": false,
				"topic": "", "payload": "", "payloadType": "date", "x": 100, "y": 40 * i, "wires": []any{[]any{id("fn")}}},
			map[string]any{"id": id("fn"), "type": "function", "z": "benchtab", "name": "work", "func": code, "outputs": 1,
				"x": 300, "y": 40 * i, "wires": []any{[]any{id("ch")}}},
			map[string]any{"id": id("ch"), "type": "change", "z": "benchtab", "name": "", "rules": []any{
				map[string]any{"t": "set", "p": "topic", "pt": "msg", "to": "bench", "tot": "str"}}, "x": 500, "y": 40 * i,
				"wires": []any{[]any{id("db")}}},
			map[string]any{"id": id("db"), "type": "debug", "z": "benchtab", "name": "", "active": false, "complete": "false",
				"x": 700, "y": 40 * i, "wires": []any{}},
			map[string]any{"id": id("cm"), "type": "comment", "z": "benchtab", "name": "note", "info": strings.Repeat("documentation ", 100),
				"x": 900, "y": 40 * i, "wires": []any{}},
		}
		raw, _ := json.Marshal(chain)
		total += len(raw)
		flows = append(flows, chain...)
	}
	return flows
}
