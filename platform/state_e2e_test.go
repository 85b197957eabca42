package platform_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/replaytest"
	"github.com/flowyard/flowyard/storage"
)

// countingFlows answer GET /count with "<persistent>,<memory>": a counter kept in the "persistent" context
// store (flow scope) and one kept in memory, each incremented per call.
func countingFlows() []any {
	return []any{
		map[string]any{"id": "tab1", "type": "tab", "label": "Counting"},
		map[string]any{"id": "in1", "type": "http in", "z": "tab1", "url": "/count", "method": "get", "wires": []any{[]any{"fn1"}}},
		map[string]any{"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}}, "func": `
const kept = (flow.get("calls", "persistent") || 0) + 1;
flow.set("calls", kept, "persistent");
const volatile = (flow.get("calls") || 0) + 1;
flow.set("calls", volatile);
msg.payload = kept + "," + volatile;
return msg;`},
		map[string]any{"id": "out1", "type": "http response", "z": "tab1"},
	}
}

// keptCalls reads the persistent counter the instance's context plugin last wrote to the store.
func keptCalls(t *testing.T, st *storage.Store, instanceID string) string {
	t.Helper()
	scopes, err := st.GetInstanceContext(context.Background(), instanceID)
	require.NoError(t, err)
	return scopes["tab1"]
}

// nodeRedVersion asks the instance's Node-RED for its version, through the editor proxy.
func nodeRedVersion(t *testing.T, c *apitest.Client, id string) string {
	t.Helper()
	return c.OpenEditor(id).Must(200, "GET", "/settings", nil).String("version")
}

// TestPersistentContextAndUpgradesEndToEnd runs an instance in `flowyard dev` (real Temporal, real Node-RED)
// whose flows count calls in the persistent context store and in memory, and checks that the persistent
// count survives what the platform does to the instance while the memory one starts again: a restart; a
// rollback to a snapshot taken without the context (the context stays) and to one taken with it (the context
// comes back); a pipeline promotion into it; an upgrade to another Node-RED version, and a failed upgrade to
// one that does not run on this Node.js, after which the instance runs its previous stack again; and a start
// on an empty user directory, as on another host.
func TestPersistentContextAndUpgradesEndToEnd(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	st, err := storage.Open(context.Background(), filepath.Join(dev.DataDir, "flowyard.db"))
	require.NoError(t, err)
	defer st.Close()
	seeded := firstID(c.Must(200, "GET", "/api/v1/stacks", nil))
	older := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "node-red-4.1.14", "nodeRedVersion": "4.1.14", "memoryMB": 256, "cpuPercent": 100}).String("id")
	// Node-RED 5 needs Node.js 22; this stack names none, so it runs on the machine's Node.js 20 and refuses.
	tooNew := c.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "node-red-5-on-node-20", "nodeRedVersion": "5.0.7", "memoryMB": 512, "cpuPercent": 100}).String("id")

	f := newRunningInstance(t, c, "ctx-e2e", map[string]any{"stackId": older})
	base := "/api/v1/instances/" + f.id
	f.deploy(f.id, countingFlows())
	require.Equal(t, "1,1", f.call(f.id, "count"))
	require.Equal(t, "2,2", f.call(f.id, "count"))
	assert.Equal(t, "4.1.14", nodeRedVersion(t, c, f.id))

	f.mustSucceed(c.Must(202, "POST", base+"/actions/restart", nil))
	assert.Equal(t, "3,1", f.call(f.id, "count"), "a restart keeps the persistent count; memory starts again")
	waitFor(t, time.Minute, "the context plugin to write 3", func() bool { return keptCalls(t, st, f.id) == `{"calls":3}` })
	withContext := c.Must(201, "POST", base+"/snapshots", map[string]any{"name": "at three", "includeContext": true})
	assert.Equal(t, true, withContext.Body["hasContext"])
	plain := c.Must(201, "POST", base+"/snapshots", map[string]any{"name": "flows only"})
	assert.Equal(t, false, plain.Body["hasContext"])
	require.Equal(t, "4,2", f.call(f.id, "count"))
	waitFor(t, time.Minute, "the context plugin to write 4", func() bool { return keptCalls(t, st, f.id) == `{"calls":4}` })

	f.mustSucceed(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": plain.String("id")}))
	assert.Equal(t, "5,1", f.call(f.id, "count"), "a rollback to a snapshot without context keeps the instance's")
	f.mustSucceed(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": withContext.String("id")}))
	assert.Equal(t, "4,1", f.call(f.id, "count"), "a rollback to a snapshot with context restores it (3, then this call)")

	source := f.create("ctx-e2e-source", nil)
	f.deploy(source, countingFlows())
	require.Equal(t, "1,1", f.call(source, "count"))
	promote(t, c, f.app, source, f.id)
	assert.Equal(t, "5,1", f.call(f.id, "count"), "a promotion brings the source's flows, not its context")

	upgraded := f.mustSucceed(c.Must(202, "POST", base+"/upgrade", map[string]any{"stackId": seeded}))
	replaytest.RecordAt(t, dev.TemporalAddress, "flowyard", "instance/"+f.id, upgraded.String("runId"), "instance", "replay_upgrade.json")
	assert.Equal(t, seeded, c.Must(200, "GET", base, nil).String("stackId"))
	assert.Equal(t, "4.1.15", nodeRedVersion(t, c, f.id))
	assert.Equal(t, "6,1", f.call(f.id, "count"), "an upgrade keeps the persistent count")
	names := snapshotNames(t, c, f.id)
	assert.Contains(t, names, "Auto snapshot before upgrade")

	failed := f.wait(c.Must(202, "POST", base+"/upgrade", map[string]any{"stackId": tooNew}))
	replaytest.RecordAt(t, dev.TemporalAddress, "flowyard", "instance/"+f.id, failed.String("runId"), "instance", "replay_upgrade_restored.json")
	assert.Equal(t, "failed", failed.String("status"), string(failed.Raw))
	assert.Contains(t, strings.ToLower(failed.String("error")), "node.js", "the operation says why the new version did not run")
	got := c.Must(200, "GET", base, nil)
	assert.Equal(t, "running", got.String("state"), string(got.Raw))
	assert.Equal(t, seeded, got.String("stackId"), "back on its previous stack")
	assert.Contains(t, got.String("stateReason"), "runs its previous stack and flows again")
	assert.Equal(t, "4.1.15", nodeRedVersion(t, c, f.id))
	assert.Equal(t, "7,1", f.call(f.id, "count"))

	// Another host: the instance starts with nothing of its old user directory.
	f.mustSucceed(c.Must(202, "POST", base+"/actions/stop", nil))
	require.NoError(t, os.RemoveAll(filepath.Join(dev.DataDir, "instances", f.id)))
	f.mustSucceed(c.Must(202, "POST", base+"/actions/start", nil))
	assert.Equal(t, "8,1", f.call(f.id, "count"), "the persistent count lives in the platform, not on the host")
}

// promote runs a two-stage pipeline from source to target and waits for it to succeed.
func promote(t *testing.T, c *apitest.Client, app, source, target string) {
	t.Helper()
	pid := c.Must(201, "POST", "/api/v1/applications/"+app+"/pipelines", map[string]any{"name": "ctx-pipeline"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	from := c.Must(201, "POST", stages, map[string]any{"name": "source", "target": map[string]any{"instanceId": source}, "action": "create_snapshot"}).String("id")
	c.Must(201, "POST", stages, map[string]any{"name": "target", "target": map[string]any{"instanceId": target}})
	r := c.Must(202, "POST", stages+"/"+from+"/promote", nil)
	done := waitPromotion(t, c, r.Body["promotion"].(map[string]any)["id"].(string), "succeeded", "failed")
	require.Equal(t, "succeeded", done.String("status"), string(done.Raw))
}

func snapshotNames(t *testing.T, c *apitest.Client, id string) []string {
	t.Helper()
	var out []string
	for _, s := range c.Must(200, "GET", "/api/v1/instances/"+id+"/snapshots?limit=100", nil).Body["items"].([]any) {
		out = append(out, strings.TrimSpace(s.(map[string]any)["name"].(string)))
	}
	return out
}
