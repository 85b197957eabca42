package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/workflows/rollout"
)

// startedRollouts records the rollouts the API asked to start, standing in for the workflow facade (the
// workflow itself is tested with the Temporal test suite, and end to end).
type startedRollouts struct{ params []rollout.Params }

func (s *startedRollouts) Start(_ context.Context, p rollout.Params) (string, error) {
	s.params = append(s.params, p)
	return "run-1", nil
}

func (s *startedRollouts) Act(context.Context, string, string, string) (rollout.Progress, error) {
	return rollout.Progress{}, nil
}

func TestDeviceGroupsMembershipAndRolloutValidation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		owner := w.as["owner"]
		app := w.appIDs[0]
		a, b, other := w.register(t, "a"), w.register(t, "b"), w.register(t, "other")
		w.assign(t, a, map[string]any{"applicationId": app})
		w.assign(t, b, map[string]any{"applicationId": app})
		w.assign(t, other, map[string]any{"applicationId": w.appIDs[1]})

		g := owner.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line-1"})
		gid := g.String("id")
		assert.Equal(t, 409, owner.Do("POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line-1"}).Status)
		assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "x"}).Status)
		assert.Equal(t, 404, w.as["outsider"].Do("GET", "/api/v1/device-groups/"+gid, nil).Status)
		w.as["member"].Must(200, "GET", "/api/v1/device-groups/"+gid, nil)

		empty := owner.Do("POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": w.snapID})
		assert.Equal(t, 422, empty.Status)
		assert.Equal(t, "group_empty", empty.String("code"))

		wrongApp := owner.Do("PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{a.id, other.id}})
		assert.Equal(t, 422, wrongApp.Status)
		assert.Equal(t, "device_in_other_application", wrongApp.String("code"))
		assert.EqualValues(t, 0, owner.Must(200, "GET", "/api/v1/device-groups/"+gid, nil).Body["deviceCount"], "nothing changed")

		joined := owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{a.id, b.id}})
		assert.EqualValues(t, 2, joined.Body["deviceCount"])

		badStrategy := owner.Do("POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": w.snapID,
			"strategy": map[string]any{"failureThreshold": 1.5, "waves": []int{50, 10}, "waveTimeout": "soon"}})
		assert.Equal(t, 400, badStrategy.Status)
		assert.Len(t, badStrategy.Body["validations"], 3)
		foreign := owner.Do("POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": "nope"})
		assert.Equal(t, 422, foreign.Status)
		assert.Equal(t, "snapshot_of_other_application", foreign.String("code"))
	})
}

func TestRolloutStartsOncePerGroup(t *testing.T) {
	runner := &startedRollouts{}
	w := newDeviceWorldWith(t, "sqlite", runner)
	owner := w.as["owner"]
	d := w.register(t, "a")
	w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
	gid := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", map[string]any{"name": "g"}).String("id")
	owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{d.id}})

	r := owner.Must(202, "POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": w.snapID,
		"strategy": map[string]any{"waves": []int{100}, "approval": "between-waves"}})
	ro := r.Body["rollout"].(map[string]any)
	assert.Equal(t, "running", ro["status"])
	assert.Equal(t, "/api/v1/operations/"+r.Body["operation"].(map[string]any)["id"].(string), r.Header.Get("Location"))
	require.Len(t, runner.params, 1)
	assert.Equal(t, []int{100}, runner.params[0].Strategy.Waves)
	assert.Equal(t, rollout.ApprovalBetweenWaves, runner.params[0].Strategy.Approval)

	second := owner.Do("POST", "/api/v1/device-groups/"+gid+"/rollouts", map[string]any{"snapshotId": w.snapID})
	assert.Equal(t, 409, second.Status)
	assert.Equal(t, "rollout_active", second.String("code"))
	assert.Equal(t, 409, owner.Do("DELETE", "/api/v1/device-groups/"+gid, nil).Status, "a group with a running rollout stays")
	assert.Equal(t, 404, w.as["outsider"].Do("GET", "/api/v1/rollouts/"+ro["id"].(string), nil).Status)
	w.as["member"].Must(200, "GET", "/api/v1/rollouts/"+ro["id"].(string), nil)
	assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/rollouts/"+ro["id"].(string)+"/actions/abort", nil).Status)
	assert.Equal(t, 400, owner.Do("POST", "/api/v1/rollouts/"+ro["id"].(string)+"/actions/explode", nil).Status)
}

func TestGroupListCountsDevices(t *testing.T) {
	w := newDeviceWorld(t, "sqlite")
	owner := w.as["owner"]
	d := w.register(t, "a")
	w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
	full := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", map[string]any{"name": "full"}).String("id")
	owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", map[string]any{"name": "empty"})
	owner.Must(200, "PUT", "/api/v1/device-groups/"+full+"/devices", map[string]any{"add": []string{d.id}})
	counts := map[string]float64{}
	for _, it := range w.as["member"].Must(200, "GET", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", nil).Body["items"].([]any) {
		g := it.(map[string]any)
		counts[g["name"].(string)] = g["deviceCount"].(float64)
	}
	assert.Equal(t, map[string]float64{"full": 1, "empty": 0}, counts)
}

// TestGroupEnvReachesDevices: a group's env is in its devices' settings between the snapshot's and the
// device's own, a change of it is a new settings hash, and a connected device is told at once.
func TestGroupEnvReachesDevices(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		owner := w.as["owner"]
		app := w.appIDs[0]
		d, outside := w.register(t, "in the group"), w.register(t, "outside")
		w.assign(t, d, map[string]any{"applicationId": app, "env": []map[string]any{{"name": "LINE", "value": "device"}}})
		w.assign(t, outside, map[string]any{"applicationId": app})
		w.assign(t, d, map[string]any{"targetSnapshotId": w.snapID})
		settings := func(r registered) *apitest.Response {
			return r.agent.Must(200, "GET", "/api/v1/devices/"+r.id+"/live/settings", nil)
		}
		before := settings(d).String("hash")
		gid := owner.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line-3",
			"env": []map[string]any{{"name": "LINE", "value": "group"}, {"name": "SITE", "value": "north"}, {"name": "GREETING", "value": "from the group"}}}).String("id")
		owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{d.id}})

		joined := settings(d)
		env := joined.Body["env"].(map[string]any)
		assert.Equal(t, "north", env["SITE"], "the group's env")
		assert.Equal(t, "device", env["LINE"], "the device's own env wins over the group's")
		assert.Equal(t, "from the group", env["GREETING"], "the group's env wins over the snapshot's")
		assert.Equal(t, d.id, env["FF_DEVICE_ID"])
		assert.NotEqual(t, before, joined.String("hash"), "joining a group is a new hash")
		assert.NotContains(t, settings(outside).Body["env"], "SITE", "a device outside the group")

		a := connectFFAgent(t, broker, d)
		owner.Must(200, "PATCH", "/api/v1/device-groups/"+gid, map[string]any{"env": []map[string]any{{"name": "SITE", "value": "south"}}})
		changed := settings(d)
		assert.Equal(t, "south", changed.Body["env"].(map[string]any)["SITE"])
		assert.NotEqual(t, joined.String("hash"), changed.String("hash"), "a change of the group's env is a new hash")
		upd := a.Next(t, "update")
		assert.Equal(t, changed.String("hash"), upd["settings"], "the connected device is told the new hash")
		assert.Equal(t, w.snapID, upd["snapshot"])

		// Checking in with the old hash is out of date.
		r := d.agent.Must(409, "POST", "/api/v1/devices/"+d.id+"/live/state", state(app, w.snapID, joined.String("hash")))
		assert.Equal(t, "incorrect-settings", r.String("error"))

		// Leaving the group loses its env: a new hash again, and the device is told.
		owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"remove": []string{d.id, outside.id}})
		left := settings(d)
		assert.NotContains(t, left.Body["env"], "SITE")
		assert.Equal(t, "hi", left.Body["env"].(map[string]any)["GREETING"], "the snapshot's env again")
		assert.Equal(t, left.String("hash"), a.Next(t, "update")["settings"])
	})
}
