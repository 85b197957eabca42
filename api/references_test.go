package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// refusal is a request that must be refused with status and code, naming field, and change nothing.
type refusal struct {
	status      int
	code, field string
}

// refuses sends the request as c and checks the refusal and that the database is as it was.
func refuses(t *testing.T, env *apitest.Env, c *apitest.Client, want refusal, method, path string, body any) {
	t.Helper()
	ctx := context.Background()
	before, err := env.Store.DumpTables(ctx)
	require.NoError(t, err)
	r := c.Do(method, path, body)
	assert.Equal(t, want.status, r.Status, "%s %s: %s", method, path, r.Raw)
	assert.Equal(t, want.code, r.String("code"), "%s %s", method, path)
	if want.field != "" {
		assert.Contains(t, fieldsOf(r), want.field, "%s %s names the field: %s", method, path, r.Raw)
	}
	after, err := env.Store.DumpTables(ctx)
	require.NoError(t, err)
	assert.Equal(t, before, after, "%s %s changed nothing", method, path)
}

func fieldsOf(r *apitest.Response) []string {
	var out []string
	vs, _ := r.Body["validations"].([]any)
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m["field"].(string))
		}
	}
	return out
}

// foreignGroup is a device group of the outsider's own team, with a device of that team in it.
func (w *deviceWorld) foreignGroup(t *testing.T) (group, device string) {
	t.Helper()
	out := w.as["outsider"]
	team := out.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Theirs", "slug": "theirs"}).String("id")
	app := out.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "their plant"}).String("id")
	group = out.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "their group"}).String("id")
	device = out.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "their gw", "team": team}).String("id")
	out.Must(200, "PATCH", "/api/v1/devices/"+device, map[string]any{"applicationId": app, "deviceGroupId": group})
	return group, device
}

// TestDeviceGroupsHoldOnlyTheirTeamsAndApplicationsDevices: a device joins a group of its own team and
// application only, by PATCH or through a provisioning token; one of another team answers as one that does not
// exist, and nothing changes. (The attack: team A's device joins team B's group, and B's next rollout sends B's
// flows and credentials to A's device.)
func TestDeviceGroupsHoldOnlyTheirTeamsAndApplicationsDevices(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		owner, env := w.as["owner"], w.env
		d := w.register(t, "gw")
		w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
		theirs, theirDevice := w.foreignGroup(t)
		mine := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[0]+"/device-groups", map[string]any{"name": "line"}).String("id")
		office := owner.Must(201, "POST", "/api/v1/applications/"+w.appIDs[1]+"/device-groups", map[string]any{"name": "desk"}).String("id")
		device := "/api/v1/devices/" + d.id

		unknown := refusal{422, "unknown_reference", "deviceGroupId"}
		otherApp := refusal{422, "device_in_other_application", "deviceGroupId"}
		refuses(t, env, owner, unknown, "PATCH", device, map[string]any{"deviceGroupId": theirs})
		refuses(t, env, owner, unknown, "PATCH", device, map[string]any{"deviceGroupId": "no-such-group"})
		refuses(t, env, owner, otherApp, "PATCH", device, map[string]any{"deviceGroupId": office})
		refuses(t, env, owner, otherApp, "PATCH", device, map[string]any{"instanceId": w.inst.ID, "deviceGroupId": mine})

		members := "/api/v1/device-groups/" + mine + "/devices"
		refuses(t, env, owner, refusal{422, "unknown_device", "add[0]"}, "PUT", members, map[string]any{"add": []string{theirDevice}})
		refuses(t, env, owner, refusal{422, "unknown_device", "remove[0]"}, "PUT", members, map[string]any{"remove": []string{theirDevice}})

		// The team's own group of the device's application: the device joins it and takes the group's target.
		g, err := env.Store.GetDeviceGroup(context.Background(), mine)
		require.NoError(t, err)
		g.TargetSnapshotID = &w.snapID
		require.NoError(t, env.Store.UpdateDeviceGroup(context.Background(), g, "target_snapshot_id"))
		joined := owner.Must(200, "PATCH", device, map[string]any{"deviceGroupId": mine})
		assert.Equal(t, mine, joined.String("deviceGroupId"))
		assert.Equal(t, w.snapID, joined.String("targetSnapshotId"), "a device joining a group takes its target")
		moved := owner.Must(200, "PATCH", device, map[string]any{"applicationId": w.appIDs[1]})
		assert.Nil(t, moved.Body["deviceGroupId"], "a device moved to another application leaves its group")
		both := owner.Must(200, "PATCH", device, map[string]any{"applicationId": w.appIDs[0], "deviceGroupId": mine})
		assert.Equal(t, mine, both.String("deviceGroupId"), "moving and joining the new application's group at once")

		// Provisioning tokens pre-assign only the team's own group, of the token's application.
		tokens := "/api/v1/teams/" + w.teamID + "/provisioning-tokens"
		refuses(t, env, owner, unknown, "POST", tokens, map[string]any{"name": "p", "deviceGroupId": theirs})
		refuses(t, env, owner, otherApp, "POST", tokens, map[string]any{"name": "p", "applicationId": w.appIDs[0], "deviceGroupId": office})
		refuses(t, env, owner, otherApp, "POST", tokens, map[string]any{"name": "p", "instanceId": w.inst.ID, "deviceGroupId": mine})
		tok := owner.Must(201, "POST", tokens, map[string]any{"name": "p", "deviceGroupId": mine})
		assert.Equal(t, w.appIDs[0], tok.String("applicationId"), "the group's application comes with it")
		agent := env.Client(t)
		agent.Bearer = tok.String("token")
		register := map[string]any{"name": "auto", "type": "Auto Provisioned", "team": w.teamID}
		p := agent.Must(200, "POST", "/api/v1/devices", register)
		assert.Equal(t, mine, p.String("deviceGroupId"))
		assert.Equal(t, w.appIDs[0], p.String("applicationId"))
		assert.Equal(t, w.snapID, p.String("targetSnapshotId"))

		// A token whose group went since registers nothing: it is checked again when a device uses it.
		owner.Must(204, "DELETE", "/api/v1/device-groups/"+mine, nil)
		refuses(t, env, agent, unknown, "POST", "/api/v1/devices", register)
	})
}

// provisioningReport is an agent's one-time import of the flows it brings (docs/device-protocol.md §1.4), its
// credentials encrypted with its own secret.
func provisioningReport(t *testing.T, app string) map[string]any {
	t.Helper()
	creds, err := nodered.EncryptCredentials("agent-own-secret", map[string]any{"r1": map[string]any{"password": "pw"}})
	require.NoError(t, err)
	return map[string]any{"state": "provisioning", "ownerType": "application", "application": app, "snapshot": nil, "settings": nil,
		"agentVersion": "4.2.1", "provisioning": map[string]any{"name": "Existing Flows Imported", "credentialSecret": "agent-own-secret",
			"deviceConfig": map[string]any{"flows": []any{map[string]any{"id": "r1", "type": "http request", "url": "http://x"}}, "credentials": creds}}}
}

// TestDeviceImportsItsFlowsOnceAndKeepsAtMostTheSnapshotCap: a device's agent may repeat the provisioning
// import on live/state; only the first creates a snapshot, and no device holds more than the cap.
func TestDeviceImportsItsFlowsOnceAndKeepsAtMostTheSnapshotCap(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		ctx := context.Background()
		d := w.register(t, "gw")
		w.assign(t, d, map[string]any{"applicationId": w.appIDs[0]})
		live := "/api/v1/devices/" + d.id + "/live/state"
		first := d.agent.Do("POST", live, provisioningReport(t, w.appIDs[0]))
		require.Contains(t, []int{200, 409}, first.Status, "%s", first.Raw)
		n, err := w.env.Store.CountDeviceSnapshots(ctx, d.id)
		require.NoError(t, err)
		require.Equal(t, 1, n, "the first import is a snapshot")
		refuses(t, w.env, d.agent, refusal{409, "flows_already_imported", ""}, "POST", live, provisioningReport(t, w.appIDs[0]))

		full := w.register(t, "full")
		w.assign(t, full, map[string]any{"applicationId": w.appIDs[0]})
		for i := 0; i < devices.MaxDeviceSnapshots; i++ {
			snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: w.appIDs[0], TeamID: w.teamID, Name: "s", Flows: "[]", Credentials: "{}"}
			_, err := w.env.Store.InsertSnapshot(ctx, snap)
			require.NoError(t, err)
			require.NoError(t, w.env.Store.LinkDeviceSnapshot(ctx, snap.ID, full.id))
		}
		path := "/api/v1/devices/" + full.id + "/live/state"
		refuses(t, w.env, full.agent, refusal{409, "limit_device_snapshots", ""}, "POST", path, provisioningReport(t, w.appIDs[0]))
		r := full.agent.Do("POST", path, provisioningReport(t, w.appIDs[0]))
		assert.Contains(t, r.String("message"), "at most 100 snapshots", "the answer names the limit")
		refuses(t, w.env, w.as["owner"], refusal{409, "limit_device_snapshots", ""}, "POST", "/api/v1/devices/"+full.id+"/snapshots",
			map[string]any{"name": "one more"})
	})
}

// TestInstancesTakeOnlyActiveStacksOfTheirType: creating an instance or upgrading it to an inactive stack, or
// to one made for another instance type, is refused naming stackId, and changes nothing.
func TestInstancesTakeOnlyActiveStacksOfTheirType(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		admin, owner := w.as["admin"], w.as["owner"]
		in := w.mine(t, 0, "line", "secret")
		stack := func(name string, extra map[string]any) string {
			body := map[string]any{"name": name, "nodeRedVersion": "4.1.15", "memoryMB": 256, "cpuPercent": 50}
			for k, v := range extra {
				body[k] = v
			}
			return admin.Must(201, "POST", "/api/v1/stacks", body).String("id")
		}
		otherType := admin.Must(201, "POST", "/api/v1/instance-types", map[string]any{"name": "large"}).String("id")
		inactive := stack("retired", map[string]any{"active": false})
		foreign := stack("large-only", map[string]any{"instanceTypeId": otherType})
		same := stack("small-only", map[string]any{"instanceTypeId": in.InstanceTypeID})

		create := func(stackID string) map[string]any {
			return map[string]any{"name": "new-" + stackID[:6], "instanceTypeId": in.InstanceTypeID, "stackId": stackID, "templateId": in.TemplateID}
		}
		instances := "/api/v1/applications/" + w.appIDs[0] + "/instances"
		refuses(t, w.env, owner, refusal{422, "stack_inactive", "stackId"}, "POST", instances, create(inactive))
		refuses(t, w.env, owner, refusal{422, "stack_other_instance_type", "stackId"}, "POST", instances, create(foreign))
		upgrade := "/api/v1/instances/" + in.ID + "/upgrade"
		refuses(t, w.env, owner, refusal{422, "stack_inactive", "stackId"}, "POST", upgrade, map[string]any{"stackId": inactive})
		refuses(t, w.env, owner, refusal{422, "stack_other_instance_type", "stackId"}, "POST", upgrade, map[string]any{"stackId": foreign})
		assert.Zero(t, w.runner.count(), "nothing was started")

		owner.Must(202, "POST", upgrade, map[string]any{"stackId": same})
		owner.Must(202, "POST", instances, create(same))
	})
}
