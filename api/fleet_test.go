package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestFleetSettingsReachTheAgents: a group's and a device's fleet settings (Node-RED version, palette, local
// editor login) in the settings document the agent downloads, the device's winning field by field; each change
// moves the settings hash and sends `update` to a connected FlowFuse agent; the secrets are never shown again
// nor stored in clear; bad input changes nothing.
func TestFleetSettingsReachTheAgents(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		owner, app := w.as["owner"], w.appIDs[0]
		d := w.register(t, "Line 3")
		w.assign(t, d, map[string]any{"applicationId": app, "targetSnapshotId": w.snapID})
		gid := owner.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "line"}).String("id")
		owner.Must(200, "PUT", "/api/v1/device-groups/"+gid+"/devices", map[string]any{"add": []string{d.id}})
		settings := func() map[string]any {
			return d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil).Body
		}
		before := settings()
		a := connectFFAgent(t, broker, d)

		npmrc := "registry=https://npm.example.com/\n//npm.example.com/:_authToken=npm-secret-token\n"
		group := map[string]any{"nodeRedVersion": "4.1.14", "palette": map[string]any{"npmrc": npmrc,
			"catalogues": []string{"https://catalogue.example.com/catalogue.json"}},
			"localAuth": map[string]any{"enabled": true, "user": "operator", "password": "a local password"}}
		assert.Equal(t, 403, w.as["member"].Do("PATCH", "/api/v1/device-groups/"+gid, map[string]any{"settings": group}).Status)
		g := owner.Must(200, "PATCH", "/api/v1/device-groups/"+gid, map[string]any{"settings": group})
		assert.NotContains(t, string(g.Raw), "npm-secret-token", "the npmrc is write-only")
		assert.NotContains(t, string(g.Raw), "a local password")
		assert.Equal(t, true, g.Body["settings"].(map[string]any)["palette"].(map[string]any)["npmrcSet"])
		upd := a.Next(t, "update")
		got := settings()
		assert.NotEqual(t, before["hash"], got["hash"])
		assert.Equal(t, got["hash"], upd["settings"], "the update names the new hash")
		assert.Equal(t, "4.1.14", got["editor"].(map[string]any)["nodeRedVersion"])
		palette := got["palette"].(map[string]any)
		assert.Equal(t, npmrc, palette["npmrc"])
		assert.Equal(t, []any{"https://catalogue.example.com/catalogue.json"}, palette["catalogues"])
		local := got["security"].(map[string]any)["localAuth"].(map[string]any)
		assert.Equal(t, "operator", local["user"])
		assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(local["pass"].(string)), []byte("a local password")), "a bcrypt hash, as Node-RED wants")
		snap := d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/snapshot", nil)
		assert.Equal(t, "4.1.14", snap.Body["modules"].(map[string]any)["node-red"], "the version the agent installs")

		// The device's own settings win field by field; the group's secrets stay where the device sets none.
		owner.Must(200, "PATCH", "/api/v1/devices/"+d.id, map[string]any{"settings": map[string]any{"nodeRedVersion": "4.1.15",
			"localAuth": map[string]any{"enabled": false, "user": "operator"}}})
		a.Next(t, "update")
		got = settings()
		assert.Equal(t, "4.1.15", got["editor"].(map[string]any)["nodeRedVersion"])
		assert.Equal(t, npmrc, got["palette"].(map[string]any)["npmrc"])
		assert.Equal(t, false, got["security"].(map[string]any)["localAuth"].(map[string]any)["enabled"])

		// Keeping a write-only secret: a change that leaves out npmrc and password keeps them.
		owner.Must(200, "PATCH", "/api/v1/device-groups/"+gid, map[string]any{"settings": map[string]any{"nodeRedVersion": "4.1.14",
			"palette": map[string]any{"catalogues": []string{}}, "localAuth": map[string]any{"enabled": true, "user": "operator"}}})
		assert.Equal(t, npmrc, settings()["palette"].(map[string]any)["npmrc"])

		// Bad input: a clear error naming the field, nothing changed.
		hash := settings()["hash"]
		for _, bad := range []map[string]any{
			{"nodeRedVersion": "file:../evil"},
			{"palette": map[string]any{"catalogues": []string{"javascript:alert(1)"}}},
			{"localAuth": map[string]any{"enabled": true, "user": ""}},
			{"localAuth": map[string]any{"enabled": true, "user": "x", "password": "short"}},
		} {
			r := owner.Do("PATCH", "/api/v1/devices/"+d.id, map[string]any{"settings": bad})
			assert.Equal(t, 400, r.Status, "%v: %s", bad, r.Raw)
			assert.NotEmpty(t, r.Body["validations"], "%v", bad)
		}
		assert.Equal(t, 400, owner.Do("PATCH", "/api/v1/device-groups/"+gid, map[string]any{"settings": map[string]any{"nodeRedVersion": "git+https://x"}}).Status)
		assert.Equal(t, hash, settings()["hash"], "nothing changed")
		assert.Equal(t, 403, w.as["member"].Do("PATCH", "/api/v1/devices/"+d.id, map[string]any{"settings": map[string]any{}}).Status)

		tables, err := w.env.Store.DumpTables(context.Background())
		require.NoError(t, err)
		dump := strings.Join(append(tables["device_groups"], tables["devices"]...), "\n")
		assert.NotContains(t, dump, "npm-secret-token", "sealed at rest")
		assert.NotContains(t, dump, "a local password")

		// Deleting the group drops its settings and env from its devices' settings, with a new hash and an update.
		other := w.register(t, "other")
		w.assign(t, other, map[string]any{"applicationId": app})
		doomed := owner.Must(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": "doomed"}).String("id")
		owner.Must(200, "PUT", "/api/v1/device-groups/"+doomed+"/devices", map[string]any{"add": []string{other.id}})
		owner.Must(200, "PATCH", "/api/v1/device-groups/"+doomed, map[string]any{"env": []map[string]any{{"name": "LINE", "value": "7"}},
			"settings": map[string]any{"nodeRedVersion": "4.1.14"}})
		inGroup := other.agent.Must(200, "GET", "/api/v1/devices/"+other.id+"/live/settings", nil).Body
		assert.Equal(t, "7", inGroup["env"].(map[string]any)["LINE"])
		owner.Must(204, "DELETE", "/api/v1/device-groups/"+doomed, nil)
		alone := other.agent.Must(200, "GET", "/api/v1/devices/"+other.id+"/live/settings", nil).Body
		assert.NotContains(t, alone["env"], "LINE")
		assert.Empty(t, alone["editor"])
		assert.NotEqual(t, inGroup["hash"], alone["hash"], "the agent learns its settings changed")

		// Leaving the group drops the group's settings.
		owner.Must(200, "PATCH", "/api/v1/devices/"+d.id, map[string]any{"deviceGroupId": nil, "settings": nil})
		got = settings()
		assert.Empty(t, got["editor"])
		assert.Empty(t, got["palette"])
		assert.NotContains(t, got, "security")
	})
}

// TestInstanceDeviceTarget: a snapshot of an instance marked as its devices' target reaches every device of the
// instance at once and every device assigned later (by a change, or by a provisioning token of the instance);
// only the instance's own snapshots qualify; clearing it leaves the devices as they are.
func TestInstanceDeviceTarget(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w, broker := newBrokerWorld(t, dialect)
		owner, member := w.as["owner"], w.as["member"]
		path := "/api/v1/instances/" + w.inst.ID + "/device-target"
		first := w.register(t, "first")
		w.assign(t, first, map[string]any{"instanceId": w.inst.ID})
		a := connectFFAgent(t, broker, first)

		assert.Equal(t, 403, w.as["viewer"].Do("PUT", path, map[string]any{"snapshotId": w.snapID}).Status)
		in := member.Must(200, "PUT", path, map[string]any{"snapshotId": w.snapID})
		assert.Equal(t, w.snapID, in.String("deviceTargetSnapshotId"))
		upd := a.Next(t, "update")
		assert.Equal(t, w.snapID, upd["snapshot"])
		assert.Equal(t, w.inst.ID, upd["project"])
		assert.Equal(t, w.snapID, w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+first.id, nil).String("targetSnapshotId"))
		assert.Equal(t, w.snapID, w.as["viewer"].Must(200, "GET", "/api/v1/instances/"+w.inst.ID, nil).String("deviceTargetSnapshotId"))

		later := w.register(t, "later")
		assert.Equal(t, w.snapID, w.assign(t, later, map[string]any{"instanceId": w.inst.ID}).String("targetSnapshotId"), "assigned later, it takes the target")
		tok := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "inst", "instanceId": w.inst.ID})
		prov := w.env.Client(t)
		prov.Bearer = tok.String("token")
		p := prov.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "provisioned", "type": "t", "team": w.teamID})
		assert.Equal(t, w.snapID, p.String("targetSnapshotId"), "provisioned into the instance, it takes the target")

		// Only a snapshot of the instance itself.
		other := w.mine(t, 0, "other-line", "other-secret")
		w.deploy(t, other, "other-secret", apiFlowsV1, apiCreds)
		otherSnap := owner.Must(201, "POST", "/api/v1/instances/"+other.ID+"/snapshots", map[string]any{"name": "o"}).String("id")
		r := member.Do("PUT", path, map[string]any{"snapshotId": otherSnap})
		assert.Equal(t, 422, r.Status)
		assert.Equal(t, "snapshot_other_instance", r.String("code"))
		r = member.Do("PUT", path, map[string]any{"snapshotId": "nope"})
		assert.Equal(t, 422, r.Status)
		assert.Equal(t, "unknown_reference", r.String("code"))
		assert.Equal(t, 400, member.Do("PUT", path, map[string]any{}).Status)
		assert.Equal(t, w.snapID, w.as["viewer"].Must(200, "GET", "/api/v1/instances/"+w.inst.ID, nil).String("deviceTargetSnapshotId"), "nothing changed")

		cleared := member.Must(200, "DELETE", path, nil)
		assert.Nil(t, cleared.Body["deviceTargetSnapshotId"])
		assert.Equal(t, w.snapID, w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+first.id, nil).String("targetSnapshotId"), "devices keep what they run")
		last := w.register(t, "last")
		assert.Nil(t, w.assign(t, last, map[string]any{"instanceId": w.inst.ID}).Body["targetSnapshotId"])
	})
}
