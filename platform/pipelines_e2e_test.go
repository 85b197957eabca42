package platform_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/replaytest"
)

// TestPipelineEndToEnd promotes through `flowyard dev` with real Temporal, real Node-RED and simulated agents:
// a dev instance, then (after another owner's approval) a staging instance, then a lone device, then, at a
// scheduled time a few seconds ahead, a production device group.
func TestPipelineEndToEnd(t *testing.T) {
	w := newFleetWorld(t)
	c := w.c
	objects := seededObjects(c)
	f := &snapshotFixture{t: t, c: c, app: w.app}
	devID, devOp := postInstance(t, c, w.app, "pipe-dev", objects)
	stgID, stgOp := postInstance(t, c, w.app, "pipe-staging", objects)
	require.Equal(t, "succeeded", waitOperation(t, c, devOp).String("status"))
	require.Equal(t, "succeeded", waitOperation(t, c, stgOp).String("status"))
	c.Must(200, "PATCH", "/api/v1/instances/"+devID, map[string]any{"env": []map[string]any{{"name": "API_URL", "value": "https://dev"}, {"name": "NEW_FLAG", "value": "on"}}})
	c.Must(200, "PATCH", "/api/v1/instances/"+stgID, map[string]any{"env": []map[string]any{{"name": "API_URL", "value": "https://staging"}}})
	f.deploy(devID, credentialFlows("v2", "dev-pw"))
	require.Equal(t, "v2", f.call(devID, "version"))
	group := w.fleet(t, "production", 5, 0)
	edgeGroup := w.fleet(t, "edge", 1, 0)
	edge := w.devicesOf(t, edgeGroup)[0]["id"].(string)
	c.Must(200, "PUT", "/api/v1/device-groups/"+edgeGroup+"/devices", map[string]any{"remove": []string{edge}}) // a lone device

	approver := secondOwner(t, w)
	pid := c.Must(201, "POST", "/api/v1/applications/"+w.app+"/pipelines", map[string]any{"name": "release"}).String("id")
	stages := "/api/v1/pipelines/" + pid + "/stages"
	sDev := c.Must(201, "POST", stages, map[string]any{"name": "dev", "target": map[string]any{"instanceId": devID}, "action": "create_snapshot"}).String("id")
	sStg := c.Must(201, "POST", stages, map[string]any{"name": "staging", "target": map[string]any{"instanceId": stgID}, "action": "create_snapshot",
		"requiresApproval": true, "forbidSelfApproval": true}).String("id")
	sEdge := c.Must(201, "POST", stages, map[string]any{"name": "edge", "target": map[string]any{"deviceId": edge}, "action": "use_active_snapshot"}).String("id")
	sProd := c.Must(201, "POST", stages, map[string]any{"name": "production", "target": map[string]any{"deviceGroupId": group}}).String("id")

	// dev → staging waits for an owner other than the requester.
	r := c.Must(202, "POST", stages+"/"+sDev+"/promote", nil)
	toStaging := r.Body["promotion"].(map[string]any)["id"].(string)
	waitPromotion(t, c, toStaging, "awaiting_approval")
	assert.Equal(t, 403, c.Do("POST", "/api/v1/promotions/"+toStaging+"/approve", nil).Status, "no approving one's own promotion here")
	approver.Must(200, "POST", "/api/v1/promotions/"+toStaging+"/approve", nil)
	done := waitPromotion(t, c, toStaging, "succeeded", "failed")
	require.Equal(t, "succeeded", done.String("status"), string(done.Raw))
	assert.Equal(t, "v2", f.call(stgID, "version"), "staging runs dev's flows")
	assert.Equal(t, basicAuth("alice", "dev-pw"), f.call(stgID, "probe"), "with dev's credentials re-encrypted to staging's secret")
	env := map[string]string{}
	for _, e := range c.Must(200, "GET", "/api/v1/instances/"+stgID, nil).Body["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = e.(map[string]any)["value"].(string)
	}
	assert.Equal(t, "https://staging", env["API_URL"], "staging keeps its own value")
	assert.Equal(t, "on", env["NEW_FLAG"], "a new key comes with dev's value")
	replaytest.RecordAt(t, w.dev.TemporalAddress, "flowyard", "promotion/"+toStaging, "", "pipeline", "replay_approved_into_instance.json")
	replaytest.RecordAt(t, w.dev.TemporalAddress, "flowyard", "instance/"+stgID, "", "instance", "replay_promote.json")
	op := c.Must(200, "GET", "/api/v1/operations/"+r.Body["operation"].(map[string]any)["id"].(string), nil)
	assert.Equal(t, "succeeded", op.String("status"))
	assert.Len(t, op.Body["progress"].(map[string]any)["targets"], 1)

	// staging → a lone device: it gets the snapshot as its target and runs it.
	toEdge := c.Must(202, "POST", stages+"/"+sStg+"/promote", nil).Body["promotion"].(map[string]any)["id"].(string)
	done = waitPromotion(t, c, toEdge, "succeeded", "failed")
	require.Equal(t, "succeeded", done.String("status"), string(done.Raw))
	waitFor(t, 2*time.Minute, "the edge device to run the promoted snapshot", func() bool {
		return c.Must(200, "GET", "/api/v1/devices/"+edge, nil).String("activeSnapshotId") == done.String("snapshotId")
	})

	// A promotion scheduled far ahead is cancelled; one scheduled a few seconds ahead runs then, taking what
	// the device runs.
	far := c.Must(202, "POST", stages+"/"+sEdge+"/promote", map[string]any{"at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	farID := far.Body["promotion"].(map[string]any)["id"].(string)
	waitPromotion(t, c, farID, "scheduled")
	c.Must(200, "POST", "/api/v1/promotions/"+farID+"/cancel", nil)
	assert.Equal(t, "canceled", waitPromotion(t, c, farID, "canceled").String("status"))
	replaytest.RecordAt(t, w.dev.TemporalAddress, "flowyard", "promotion/"+farID, "", "pipeline", "replay_canceled.json")

	at := time.Now().Add(5 * time.Second).UTC().Truncate(time.Second)
	edgeSnap := done.String("snapshotId")
	soon := c.Must(202, "POST", stages+"/"+sEdge+"/promote", map[string]any{"at": at.Format(time.RFC3339)})
	soonID := soon.Body["promotion"].(map[string]any)["id"].(string)
	done = waitPromotion(t, c, soonID, "succeeded", "failed")
	require.Equal(t, "succeeded", done.String("status"), string(done.Raw))
	snap := done.String("snapshotId")
	assert.Equal(t, edgeSnap, snap, "use_active_snapshot took the device's running snapshot")
	replaytest.RecordAt(t, w.dev.TemporalAddress, "flowyard", "promotion/"+soonID, "", "pipeline", "replay_scheduled_into_group.json")
	for _, d := range w.devicesOf(t, group) {
		assert.Equal(t, snap, d["targetSnapshotId"])
		assert.Equal(t, snap, d["activeSnapshotId"], "every device runs the promoted snapshot")
	}

	// Each stage says what it runs, who put it there and from where.
	p := c.Must(200, "GET", "/api/v1/pipelines/"+pid, nil)
	byID := map[string]map[string]any{}
	for _, s := range p.Body["stages"].([]any) {
		byID[s.(map[string]any)["id"].(string)] = s.(map[string]any)
	}
	prod := byID[sProd]["current"].(map[string]any)
	assert.Equal(t, snap, prod["snapshotId"])
	assert.Equal(t, sEdge, prod["fromStageId"])
	assert.Equal(t, sStg, byID[sEdge]["current"].(map[string]any)["fromStageId"])
	assert.NotNil(t, prod["promotedBy"])
	stg := byID[sStg]["current"].(map[string]any)
	assert.Equal(t, sDev, stg["fromStageId"])
	assert.Nil(t, byID[sDev]["current"])
}

// secondOwner adds another owner to the fleet's team and returns them signed in.
func secondOwner(t *testing.T, w *fleetWorld) *apitest.Client {
	t.Helper()
	w.c.Must(201, "POST", "/api/v1/users", map[string]any{"email": "approver@example.com", "name": "Approver", "password": "approver-password"})
	w.c.Must(201, "POST", "/api/v1/teams/"+w.team+"/members", map[string]any{"email": "approver@example.com", "role": "owner"})
	c := (&apitest.Env{URL: w.dev.URL}).Client(t)
	c.Login("approver@example.com", "approver-password")
	return c
}

// waitPromotion waits until the promotion is in one of the statuses and returns it.
func waitPromotion(t *testing.T, c *apitest.Client, id string, statuses ...string) *apitest.Response {
	t.Helper()
	var pr *apitest.Response
	waitFor(t, 3*time.Minute, "promotion "+id+" to be "+statuses[0], func() bool {
		pr = c.Must(200, "GET", "/api/v1/promotions/"+id, nil)
		for _, s := range statuses {
			if pr.String("status") == s {
				return true
			}
		}
		return false
	})
	return pr
}
