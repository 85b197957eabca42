package platform_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// storedContent is an instance's content as the store holds it: what a rollback must move as one.
type storedContent struct {
	flows, credentials, env string
}

func readContent(t *testing.T, st *storage.Store, id string) storedContent {
	t.Helper()
	ctx := context.Background()
	flows, err := st.GetInstanceStorage(ctx, id, storage.StorageFlows)
	require.NoError(t, err)
	creds, err := st.GetInstanceStorage(ctx, id, storage.StorageCredentials)
	require.NoError(t, err)
	in, err := st.GetInstance(ctx, id)
	require.NoError(t, err)
	env, err := json.Marshal(in.Env)
	require.NoError(t, err)
	return storedContent{flows: flows, credentials: creds, env: string(env)}
}

// flowsLabel is the label of the tab of stored flows ("Main <version>").
func flowsLabel(t *testing.T, flows string) string {
	t.Helper()
	var nodes []map[string]any
	require.NoError(t, json.Unmarshal([]byte(flows), &nodes), "the stored flows are whole JSON")
	for _, n := range nodes {
		if n["type"] == "tab" {
			label, _ := n["label"].(string)
			return label
		}
	}
	return "no tab"
}

// bulk is a comment node of 10 MB: content far larger than one deploy to Node-RED takes, to be moved whole.
func bulk(version string) map[string]any {
	return map[string]any{"id": "bulk1", "type": "comment", "z": "tab1", "name": "bulk", "info": strings.Repeat(version, (10<<20)/len(version))}
}

// bulkySnapshot deploys flows of the version (password "<version>-pw") to the instance, snapshots them, and
// imports that snapshot again with 10 MB of comment added (more than Node-RED accepts in one deploy), returning
// the imported snapshot's ID: the instance then holds two snapshots.
func bulkySnapshot(f *snapshotFixture, instanceID, version string) string {
	f.t.Helper()
	c, base := f.c, "/api/v1/instances/"+instanceID
	f.deploy(instanceID, credentialFlows(version, version+"-pw"))
	require.Equal(f.t, version, f.call(instanceID, "version"))
	small := c.Must(201, "POST", base+"/snapshots", map[string]any{"name": version}).String("id")
	export := c.Must(200, "POST", "/api/v1/snapshots/"+small+"/export", map[string]any{"credentialSecret": "transport"}).Body
	export["name"], export["flows"] = version+" with bulk", append(credentialFlows(version, version+"-pw"), bulk(version))
	return c.Must(201, "POST", base+"/snapshots/import", map[string]any{"snapshot": export, "credentialSecret": "transport"}).String("id")
}

// killInWrite SIGKILLs the platform once a write of an instance's content waits at the gate (its transaction
// open), opens the gate, and checks that the operation was not finished and that the store holds the instance's
// content from before, whole. It returns what the store held.
func killInWrite(t *testing.T, d *devProcess, gate *storagetest.InstanceWriteGate, st *storage.Store, opID, instanceID string, before storedContent) storedContent {
	t.Helper()
	gate.WaitForWriter(instanceID)
	d.kill(syscall.SIGKILL)
	gate.Release()
	op, err := st.GetOperation(context.Background(), opID)
	require.NoError(t, err)
	require.Nil(t, op.FinishedAt, "the platform died in the middle of the operation (%s %s)", op.Kind, op.Status)
	killed := readContent(t, st, instanceID)
	assert.Equal(t, "Main old", flowsLabel(t, killed.flows), "the write in progress never committed")
	assert.Equal(t, before, killed, "right after the kill: the old content, whole (flows, credentials, env)")
	return killed
}

// TestCrashDuringRollback SIGKILLs `flowyard dev` (on Postgres, real Node-RED) while the rollback's write
// transaction is open (held at a lock): right after the kill the store holds the old content whole (flows,
// credentials and env together), and after a restart the rollback finishes with the new content whole, running in Node-RED with its
// password, with one automatic snapshot, one Node-RED process, and every operation final.
func TestCrashDuringRollback(t *testing.T) {
	dbURL := storagetest.NewDatabase(t, "postgres")
	d := newDevProcess(t, "--database-url", dbURL, "--body-limit-mb", "64")
	d.start()
	c := d.client()
	f := newRunningInstance(t, c, "crash-rollback", map[string]any{"env": []map[string]any{{"name": "VERSION", "value": "new"}}})
	base := "/api/v1/instances/" + f.id

	// The snapshot to roll back to: new flows with their password and 10 MB of comment, env VERSION=new.
	target := bulkySnapshot(f, f.id, "new")

	// What runs before the rollback: old flows, old password, env VERSION=old.
	c.Must(200, "PATCH", base, map[string]any{"env": []map[string]any{{"name": "VERSION", "value": "old"}}})
	f.deploy(f.id, credentialFlows("old", "old-pw"))
	require.Equal(t, "old", f.call(f.id, "version"))
	st, err := storage.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	before := readContent(t, st, f.id)

	gate := storagetest.HoldInstanceWrites(t, dbURL)
	r := c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": target})
	killInWrite(t, d, gate, st, r.Body["operation"].(map[string]any)["id"].(string), f.id, before)

	d.start()
	f.c = d.client()
	done := waitOperation(t, f.c, r.Body["operation"].(map[string]any)["id"].(string))
	require.Equal(t, "succeeded", done.String("status"), "%s\n%s", done.Raw, d.out.String())
	got := f.c.Must(200, "GET", base, nil)
	assert.Equal(t, "running", got.String("state"), string(got.Raw))
	assert.Contains(t, string(got.Raw), `"value":"new"`, "the snapshot's env")
	assert.Equal(t, "new", f.call(f.id, "version"), "the new flows run")
	assert.Equal(t, basicAuth("alice", "new-pw"), f.call(f.id, "probe"), "with the new password")
	after := readContent(t, st, f.id)
	assert.Equal(t, "Main new", flowsLabel(t, after.flows))
	assert.True(t, strings.Contains(after.flows, bulk("new")["info"].(string)), "the 10 MB comment came whole")
	assert.Len(t, nodeRedProcesses(t, filepath.Join(d.dataDir, "instances", f.id)), 1, "exactly one Node-RED for the instance")
	assertSnapshotsOnce(t, f, 3)
	assertOperationsFinal(t, f)
}

// assertSnapshotsOnce checks that the instance holds n snapshots, of which exactly one automatic: a retried
// rollback does not take a second.
func assertSnapshotsOnce(t *testing.T, f *snapshotFixture, n int) {
	t.Helper()
	list := f.c.Must(200, "GET", "/api/v1/instances/"+f.id+"/snapshots", nil).Body["items"].([]any)
	auto := 0
	for _, it := range list {
		if it.(map[string]any)["auto"] == true {
			auto++
		}
	}
	assert.Len(t, list, n, "snapshots of the instance")
	assert.Equal(t, 1, auto, "exactly one automatic snapshot")
}

// assertOperationsFinal checks that no operation of the instance is left pending or running.
func assertOperationsFinal(t *testing.T, f *snapshotFixture) {
	t.Helper()
	ops := f.c.Must(200, "GET", "/api/v1/instances/"+f.id+"/operations?limit=500", nil).Body["items"].([]any)
	for _, o := range ops {
		op := o.(map[string]any)
		assert.Contains(t, []string{"succeeded", "failed", "canceled"}, op["status"], "operation %s (%s) is final", op["id"], op["kind"])
	}
}
