package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPipelineStagesAreValidatedAsAWhole(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		owner := w.as["owner"]
		app := w.appIDs[0]
		staging := w.mine(t, 0, "plant-staging", "staging-secret")
		elsewhere := w.mine(t, 1, "office-dev", "office-secret")
		d := w.register(t, "edge")
		w.assign(t, d, map[string]any{"applicationId": app})
		gid := owner.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line"}).String("id")

		assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/applications/"+app+"/pipelines", map[string]any{"name": "p"}).Status)
		p := owner.Must(201, "POST", "/api/v1/applications/"+app+"/pipelines", map[string]any{"name": "main"})
		pid := p.String("id")
		stages := "/api/v1/pipelines/" + pid + "/stages"
		assert.Equal(t, 409, owner.Do("POST", "/api/v1/applications/"+app+"/pipelines", map[string]any{"name": "main"}).Status)
		assert.Equal(t, 404, w.as["outsider"].Do("GET", "/api/v1/pipelines/"+pid, nil).Status)

		groupFirst := owner.Do("POST", stages, map[string]any{"name": "fleet", "target": map[string]any{"deviceGroupId": gid}, "action": "use_latest_snapshot"})
		assert.Equal(t, 422, groupFirst.Status)
		assert.Equal(t, "pipeline_validation_failed", groupFirst.String("code"))

		dev := owner.Must(201, "POST", stages, map[string]any{"name": "dev", "target": map[string]any{"instanceId": w.inst.ID}, "action": "create_snapshot"})
		assert.Equal(t, 0, int(dev.Body["position"].(float64)))
		again := owner.Do("POST", stages, map[string]any{"name": "dup", "target": map[string]any{"instanceId": w.inst.ID}, "action": "prompt"})
		assert.Equal(t, 422, again.Status, "an instance is in at most one stage")
		foreign := owner.Do("POST", stages, map[string]any{"name": "x", "target": map[string]any{"instanceId": elsewhere.ID}})
		assert.Equal(t, 422, foreign.Status)
		assert.Equal(t, "target_other_application", foreign.String("code"))
		twoKinds := owner.Do("POST", stages, map[string]any{"name": "x", "target": map[string]any{"instanceId": staging.ID, "deviceId": d.id}})
		assert.Equal(t, 400, twoKinds.Status)
		badAction := owner.Do("POST", stages, map[string]any{"name": "x", "target": map[string]any{"instanceId": staging.ID}, "action": "teleport"})
		assert.Equal(t, 422, badAction.Status)

		stg := owner.Must(201, "POST", stages, map[string]any{"name": "staging", "targets": []map[string]any{{"instanceId": staging.ID}},
			"action": "use_latest_snapshot", "requiresApproval": true, "forbidSelfApproval": true})
		owner.Must(201, "POST", stages, map[string]any{"name": "edge", "target": map[string]any{"deviceId": d.id}, "action": "use_active_snapshot"})
		fleet := owner.Must(201, "POST", stages, map[string]any{"name": "fleet", "target": map[string]any{"deviceGroupId": gid}})
		afterGroup := owner.Do("POST", stages, map[string]any{"name": "late", "target": map[string]any{"instanceId": elsewhere.ID}})
		assert.Equal(t, 422, afterGroup.Status)
		moveGroupFirst := owner.Do("PATCH", stages+"/"+fleet.String("id"), map[string]any{"position": 0})
		assert.Equal(t, 422, moveGroupFirst.Status, "reordering runs the same validator")

		moved := owner.Must(200, "PATCH", stages+"/"+stg.String("id"), map[string]any{"position": 0, "name": "staging-1"})
		assert.Equal(t, "staging-1", moved.String("name"))
		got := w.as["member"].Must(200, "GET", "/api/v1/pipelines/"+pid, nil)
		list := got.Body["stages"].([]any)
		require.Len(t, list, 4)
		assert.Equal(t, "staging-1", list[0].(map[string]any)["name"])
		assert.Equal(t, "dev", list[1].(map[string]any)["name"])
		assert.Nil(t, list[0].(map[string]any)["current"], "nothing was promoted yet")

		assert.Equal(t, 403, w.as["member"].Do("DELETE", stages+"/"+dev.String("id"), nil).Status)
		owner.Must(204, "DELETE", stages+"/"+dev.String("id"), nil)
		assert.Len(t, owner.Must(200, "GET", "/api/v1/pipelines/"+pid, nil).Body["stages"], 3)
		require.NoError(t, w.env.Store.DeleteInstance(context.Background(), staging.ID))
		owner.Must(200, "PATCH", stages+"/"+fleet.String("id"), map[string]any{"name": "fleet-1"}) // a target deleted since blocks nothing
		assert.Equal(t, "renamed", owner.Must(200, "PATCH", "/api/v1/pipelines/"+pid, map[string]any{"name": "renamed"}).String("name"))
		assert.Len(t, owner.Must(200, "GET", "/api/v1/applications/"+app+"/pipelines", nil).Body["items"], 1)
		owner.Must(204, "DELETE", "/api/v1/pipelines/"+pid, nil)
		assert.Equal(t, 404, owner.Do("GET", "/api/v1/pipelines/"+pid, nil).Status)
	})
}
