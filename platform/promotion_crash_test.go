package platform_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestCrashDuringPromotion SIGKILLs `flowyard dev` (on Postgres, real Node-RED) while a pipeline promotion
// writes 10 MB of the source's flows into the target (held at a lock): right after the kill the target holds its
// old content, whole; after a restart the promotion finishes once: the target runs the source's flows with their
// password and keeps its own env value, it took one automatic snapshot before the deploy, the source's deploy
// snapshot was captured once, one Node-RED serves the target, and every operation is final.
func TestCrashDuringPromotion(t *testing.T) {
	dbURL := storagetest.NewDatabase(t, "postgres")
	d := newDevProcess(t, "--database-url", dbURL, "--body-limit-mb", "64")
	d.start()
	c := d.client()
	versionEnv := func(v string) map[string]any {
		return map[string]any{"env": []map[string]any{{"name": "VERSION", "value": v}}}
	}
	src := newRunningInstance(t, c, "crash-promo-src", versionEnv("source"))
	tgt := &snapshotFixture{t: t, c: c, app: src.app}
	tgt.id = src.create("crash-promo-tgt", versionEnv("target"))

	// The source runs 10 MB of flows (more than one deploy to Node-RED takes): rolled back to a bulky snapshot.
	src.mustSucceed(c.Must(202, "POST", "/api/v1/instances/"+src.id+"/rollback", map[string]any{"snapshotId": bulkySnapshot(src, src.id, "new")}))
	require.Equal(t, "new", src.call(src.id, "version"))
	tgt.deploy(tgt.id, credentialFlows("old", "old-pw"))
	require.Equal(t, "old", tgt.call(tgt.id, "version"))

	pid := c.Must(201, "POST", "/api/v1/applications/"+src.app+"/pipelines", map[string]any{"name": "release"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	from := c.Must(201, "POST", stages, map[string]any{"name": "dev", "target": map[string]any{"instanceId": src.id}, "action": "create_snapshot"}).String("id")
	c.Must(201, "POST", stages, map[string]any{"name": "prod", "target": map[string]any{"instanceId": tgt.id}, "action": "create_snapshot"})
	st, err := storage.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	before := readContent(t, st, tgt.id)

	gate := storagetest.HoldInstanceWrites(t, dbURL)
	r := c.Must(202, "POST", stages+"/"+from+"/promote", nil)
	promotion := r.Body["promotion"].(map[string]any)["id"].(string)
	opID := r.Body["operation"].(map[string]any)["id"].(string)
	killInWrite(t, d, gate, st, opID, tgt.id, before)

	d.start()
	c = d.client()
	src.c, tgt.c = c, c
	done := waitPromotion(t, c, promotion, "succeeded", "failed", "canceled")
	require.Equal(t, "succeeded", done.String("status"), "%s\n%s", done.Raw, d.out.String())
	assert.Equal(t, "succeeded", waitOperation(t, c, opID).String("status"), "the promotion's operation is final")
	assert.Equal(t, "new", tgt.call(tgt.id, "version"), "the target runs the source's flows")
	assert.Equal(t, basicAuth("alice", "new-pw"), tgt.call(tgt.id, "probe"), "with the source's password")
	assert.True(t, strings.Contains(readContent(t, st, tgt.id).flows, bulk("new")["info"].(string)), "the 10 MB comment came whole")
	got := c.Must(200, "GET", "/api/v1/instances/"+tgt.id, nil)
	assert.Equal(t, "running", got.String("state"), string(got.Raw))
	assert.Contains(t, string(got.Raw), `"value":"target"`, "the target keeps its own env value")
	assert.Len(t, nodeRedProcesses(t, filepath.Join(d.dataDir, "instances", tgt.id)), 1, "exactly one Node-RED for the target")
	assertSnapshotsOnce(t, tgt, 1)
	assertOperationsFinal(t, tgt)

	var deploySnapshots int
	for _, it := range c.Must(200, "GET", "/api/v1/instances/"+src.id+"/snapshots", nil).Body["items"].([]any) {
		if strings.HasPrefix(it.(map[string]any)["name"].(string), "Deploy Snapshot") {
			deploySnapshots++
		}
	}
	assert.Equal(t, 1, deploySnapshots, "the source's deploy snapshot was captured once")
}
