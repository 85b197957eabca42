package platform_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/replaytest"
)

// waitMove waits until a stack move has finished and returns it.
func waitMove(t *testing.T, c *apitest.Client, moveID string) *apitest.Response {
	t.Helper()
	var m *apitest.Response
	waitFor(t, 5*time.Minute, "stack move "+moveID+" to finish", func() bool {
		m = c.Must(200, "GET", "/api/v1/stack-moves/"+moveID, nil)
		return m.String("status") != "running"
	})
	return m
}

// TestStackMoveEndToEnd moves every instance of a stack in `flowyard dev` (real Temporal, real Node-RED): a
// move to a Node-RED that cannot run here stops at its first failure, as its threshold says, and leaves every
// instance running on its stack; a move to a newer Node-RED that runs upgrades them all, each with an upgrade
// operation of its own team.
func TestStackMoveEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	objects := seededObjects(c)
	seeded := objects["stackId"].(string)
	older := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "node-red-4.1.14", "nodeRedVersion": "4.1.14", "memoryMB": 256, "cpuPercent": 100}).String("id")
	tooNew := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "node-red-5-on-node-20", "nodeRedVersion": "5.0.7", "memoryMB": 512, "cpuPercent": 100}).String("id")
	objects["stackId"] = older
	var ids, ops []string
	for i, name := range []string{"fleet-a", "fleet-b", "fleet-c"} {
		app := newApp(t, c, name) // three teams: a move crosses teams
		id, op := postInstance(t, c, app, name, objects)
		ids, ops = append(ids, id), append(ops, op)
		require.Equal(t, "succeeded", waitOperation(t, c, ops[i]).String("status"))
	}

	stopped := c.Must(202, "POST", "/api/v1/stacks/"+older+"/move", map[string]any{"toStackId": tooNew, "waves": []int{34, 100},
		"failureThreshold": 0, "concurrency": 1}).Body["move"].(map[string]any)["id"].(string)
	m := waitMove(t, c, stopped)
	replaytest.RecordAt(t, dev.TemporalAddress, "flowyard", "stack-move/"+stopped, "", "stackmove", "replay_move_stopped.json")
	assert.Equal(t, "failed", m.String("status"), string(m.Raw))
	assert.Contains(t, m.String("reason"), "1 of 1 instances failed")
	assert.Equal(t, []float64{0, 1, 2}, []float64{m.Body["moved"].(float64), m.Body["failed"].(float64), m.Body["pending"].(float64)})
	parts := c.Must(200, "GET", "/api/v1/stack-moves/"+stopped+"/instances", nil).Body["items"].([]any)
	require.Len(t, parts, 3)
	for _, id := range ids {
		got := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
		assert.Equal(t, older, got.String("stackId"), "every instance stays on its stack")
		assert.Equal(t, "running", got.String("state"), string(got.Raw))
		assert.Equal(t, "4.1.14", nodeRedVersion(t, c, id))
	}
	op := c.Must(200, "GET", "/api/v1/operations/"+c.Must(200, "GET", "/api/v1/stack-moves/"+stopped, nil).String("operationId"), nil)
	assert.Equal(t, "failed", op.String("status"))

	moved := c.Must(202, "POST", "/api/v1/stacks/"+older+"/move", map[string]any{"toStackId": seeded, "concurrency": 2}).Body["move"].(map[string]any)["id"].(string)
	m = waitMove(t, c, moved)
	replaytest.RecordAt(t, dev.TemporalAddress, "flowyard", "stack-move/"+moved, "", "stackmove", "replay_move.json")
	assert.Equal(t, "succeeded", m.String("status"), string(m.Raw))
	assert.Equal(t, 3.0, m.Body["moved"])
	for _, id := range ids {
		got := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
		assert.Equal(t, seeded, got.String("stackId"))
		assert.Equal(t, "running", got.String("state"))
		assert.Equal(t, "4.1.15", nodeRedVersion(t, c, id))
		latest := c.Must(200, "GET", "/api/v1/instances/"+id+"/operations?limit=100", nil).Body["items"].([]any)
		last := latest[len(latest)-1].(map[string]any)
		assert.Equal(t, "upgrade", last["kind"])
		assert.Equal(t, "succeeded", last["status"])
	}
}
