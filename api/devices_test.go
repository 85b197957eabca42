package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// deviceWorld is snapWorld with a broker URL handed to devices, an instance in application 0 and a snapshot
// of it (flows with credentials encrypted with the instance's secret).
type deviceWorld struct {
	*snapWorld
	inst   *storage.Instance
	snapID string
}

func newDeviceWorld(t *testing.T, dialect string) *deviceWorld {
	return newDeviceWorldWith(t, dialect, nil)
}

// newDeviceWorldWith also hands the API a rollout runner, and applies more changes to its dependencies.
func newDeviceWorldWith(t *testing.T, dialect string, rollouts api.RolloutRunner, more ...func(*api.Deps)) *deviceWorld {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, dialect, append([]func(*api.Deps){func(d *api.Deps) {
		d.Config.InternalURL = d.Config.PublicURL // where other replicas reach it: its own address
		d.Sealer, d.Instances, d.Config.BrokerURL, d.Config.PublicURL = sealer, &recordingRunner{}, "mqtt://127.0.0.1:1884", "http://forge.test"
		d.Rollouts = rollouts
	}}, more...)...)
	w := &snapWorld{env: env, sealer: sealer, as: map[string]*apitest.Client{}}
	for _, name := range []string{"admin", "owner", "member", "viewer", "outsider"} {
		u, err := api.NewUser(name+"@example.com", name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		c := env.Client(t)
		c.Login(name+"@example.com", testPassword)
		w.as[name] = c
	}
	w.as["anonymous"] = env.Client(t)
	owner := w.as["owner"]
	w.teamID = owner.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Devices", "slug": "devices"}).String("id")
	for _, role := range []string{"member", "viewer"} {
		w.as["admin"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": role + "@example.com", "role": role})
	}
	for i, name := range []string{"plant", "office"} {
		w.appIDs[i] = owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": name}).String("id")
	}
	dw := &deviceWorld{snapWorld: w, inst: w.mine(t, 0, "plant-line", "instance-secret")}
	w.deploy(t, dw.inst, "instance-secret", apiFlowsV1, apiCreds)
	dw.snapID = owner.Must(201, "POST", "/api/v1/instances/"+dw.inst.ID+"/snapshots", map[string]any{"name": "v1"}).String("id")
	return dw
}

// registered is a device as registration answered it.
type registered struct {
	id, token, secret string
	agent             *apitest.Client // authenticated with the device token
	raw               *apitest.Response
}

func (w *deviceWorld) register(t *testing.T, name string) registered {
	t.Helper()
	r := w.as["owner"].Must(200, "POST", "/api/v1/devices", map[string]any{"name": name, "type": "gateway", "team": w.teamID})
	creds := r.Body["credentials"].(map[string]any)
	a := w.env.Client(t)
	a.Bearer = creds["token"].(string)
	return registered{id: r.String("id"), token: a.Bearer, secret: creds["credentialSecret"].(string), agent: a, raw: r}
}

func (w *deviceWorld) assign(t *testing.T, d registered, body map[string]any) *apitest.Response {
	t.Helper()
	return w.as["owner"].Must(200, "PATCH", "/api/v1/devices/"+d.id, body)
}

// state is a FlowFuse agent state object (docs/device-protocol.md §2.1) for an application-owned device.
func state(app, snapshot, settings any) map[string]any {
	return map[string]any{"ownerType": "application", "project": nil, "application": app, "snapshot": snapshot, "settings": settings,
		"state": "running", "mode": "autonomous", "targetState": "running", "health": map[string]any{"uptime": 1, "snapshotRestartCount": 0},
		"agentVersion": "4.2.1", "licensed": false, "nodejsVersion": "v20.20.2", "nodeRedVersion": "4.1.15"}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) { fn(t, dialect) })
	}
}

func TestDeviceRegistrationAndProvisioning(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		d := w.register(t, "Gateway 1")
		assert.True(t, strings.HasPrefix(d.token, "fyd_"))
		assert.Regexp(t, `^[0-9a-f]{64}$`, d.secret)
		broker := d.raw.Body["credentials"].(map[string]any)["broker"].(map[string]any)
		assert.Equal(t, "mqtt://127.0.0.1:1884", broker["url"])
		assert.Equal(t, "device:"+w.teamID+":"+d.id, broker["username"])
		assert.True(t, strings.HasPrefix(broker["password"].(string), "fyb_"))
		assert.Equal(t, "http://forge.test", d.raw.String("forgeURL"))
		assert.Equal(t, w.teamID, d.raw.Body["team"].(map[string]any)["id"])
		got := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+d.id, nil)
		assert.Equal(t, "never", got.String("status"))
		assert.Nil(t, got.Body["credentials"], "credentials are shown once")
		assert.NotContains(t, string(got.Raw), d.token)

		body := map[string]any{"name": "x", "type": "t", "team": w.teamID}
		assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/devices", body).Status, "only owners register devices")
		assert.Equal(t, 404, w.as["outsider"].Do("POST", "/api/v1/devices", body).Status)
		assert.Equal(t, 401, w.as["anonymous"].Do("POST", "/api/v1/devices", body).Status)
		assert.Equal(t, 400, w.as["owner"].Do("POST", "/api/v1/devices", map[string]any{"name": "", "team": w.teamID}).Status)

		// Provisioning tokens: owners only; the FlowFuse flow registers a device into the token's application.
		assert.Equal(t, 403, w.as["member"].Do("POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "p"}).Status)
		assert.Equal(t, 422, w.as["owner"].Do("POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "p", "applicationId": "nope"}).Status)
		tok := w.as["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", map[string]any{"name": "line", "applicationId": w.appIDs[0]})
		prov := w.env.Client(t)
		prov.Bearer = tok.String("token")
		assert.True(t, strings.HasPrefix(prov.Bearer, "fyp_"))
		req := map[string]any{"name": "host (aa:bb)", "type": "Auto Provisioned", "team": w.teamID}
		p := prov.Must(200, "POST", "/api/v1/devices", req)
		assert.Equal(t, w.appIDs[0], p.String("applicationId"))
		assert.Equal(t, "application", p.String("ownerType"))
		assert.NotEmpty(t, p.Body["credentials"].(map[string]any)["token"])
		assert.Equal(t, "2.33.2", p.Body["meta"].(map[string]any)["ffVersion"])
		assert.Equal(t, 401, prov.Do("POST", "/api/v1/devices", map[string]any{"name": "x", "type": "t", "team": "other"}).Status, "the token's own team only")
		assert.Equal(t, 401, prov.Do("GET", "/api/v1/teams/"+w.teamID+"/devices", nil).Status, "a provisioning token reads nothing")
		list := w.as["owner"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/provisioning-tokens", nil)
		assert.NotContains(t, string(list.Raw), prov.Bearer)
		w.as["owner"].Must(204, "DELETE", "/api/v1/teams/"+w.teamID+"/provisioning-tokens/"+tok.String("id"), nil)
		assert.Equal(t, 401, prov.Do("POST", "/api/v1/devices", req).Status, "a revoked token")

		expired, hash := domain.NewToken(domain.TokenPrefixProvisioning)
		past := time.Now().Add(-time.Minute)
		require.NoError(t, w.env.Store.InsertToken(context.Background(), &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: "provisioning",
			Name: "old", OwnerType: "team", OwnerID: w.teamID, TeamID: &w.teamID, ExpiresAt: &past}))
		prov.Bearer = expired
		assert.Equal(t, 401, prov.Do("POST", "/api/v1/devices", req).Status, "an expired token")
		assert.Len(t, w.as["owner"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/devices", nil).Body["items"], 2)
	})
}

// TestLiveStateDecisionOrder checks POST live/state against docs/device-protocol.md §2.2, step by step and in order.
func TestLiveStateDecisionOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		d := w.register(t, "Gateway")
		app := w.appIDs[0]
		w.assign(t, d, map[string]any{"applicationId": app})
		dev := w.as["member"].Must(200, "PATCH", "/api/v1/devices/"+d.id, map[string]any{"targetSnapshotId": w.snapID})
		assert.True(t, dev.Body["isDeploying"].(bool))
		path := "/api/v1/devices/" + d.id + "/live/state"

		// The settings hash comes from the first 409.
		r := d.agent.Must(409, "POST", path, state(app, nil, nil))
		assert.Equal(t, "incorrect-snapshot", r.String("error"))
		assert.Equal(t, w.snapID, r.String("snapshot"))
		assert.Equal(t, app, r.String("application"))
		hash := r.String("settings")
		require.NotEmpty(t, hash)
		assert.NotContains(t, r.Body, "project", "owner key of the other type is left out")

		old := state(app, w.snapID, hash)
		old["agentVersion"] = "1.10.3"
		r = d.agent.Must(409, "POST", path, old)
		assert.Equal(t, "incorrect-agent-version", r.String("error"))
		assert.Equal(t, "autonomous", r.String("mode"))
		for _, k := range []string{"project", "snapshot", "settings"} {
			assert.Contains(t, r.Body, k)
			assert.Nil(t, r.Body[k])
		}

		both := state(app, "other-snapshot", "other-settings")
		both["project"] = "some-instance"
		r = d.agent.Must(409, "POST", path, both)
		assert.Equal(t, "incorrect-project", r.String("error"), "the project check comes before the snapshot check")
		assert.Contains(t, r.Body, "project")
		assert.Nil(t, r.Body["project"])

		r = d.agent.Must(409, "POST", path, state("other-app", "other-snapshot", hash))
		assert.Equal(t, "incorrect-application", r.String("error"))
		assert.Equal(t, app, r.String("application"))

		r = d.agent.Must(409, "POST", path, state(app, "0", hash))
		assert.Equal(t, "incorrect-snapshot", r.String("error"), "the starter snapshot is no snapshot")

		r = d.agent.Must(409, "POST", path, state(app, w.snapID, "stale"))
		assert.Equal(t, "incorrect-settings", r.String("error"))
		assert.Equal(t, hash, r.String("settings"))
		assert.Equal(t, w.snapID, r.String("snapshot"))

		r = d.agent.Must(200, "POST", path, state(app, w.snapID, hash))
		assert.Equal(t, "{}", string(r.Raw))
		noSettings := state(app, w.snapID, nil)
		delete(noSettings, "settings")
		d.agent.Must(200, "POST", path, noSettings)

		got := w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+d.id, nil)
		assert.Equal(t, "running", got.String("state"))
		assert.Equal(t, w.snapID, got.String("activeSnapshotId"))
		assert.Equal(t, "online", got.String("status"))
		assert.Equal(t, false, got.Body["isDeploying"])
		assert.Equal(t, "4.2.1", got.String("agentVersion"))

		live := d.agent.Must(200, "GET", path, nil)
		assert.Equal(t, app, live.String("application"))
		assert.Equal(t, w.snapID, live.String("snapshot"))
		assert.Equal(t, hash, live.String("settings"))

		// A new target is a new settings hash (FF_SNAPSHOT_* live in the settings env) and a 409 again.
		w.as["member"].Must(200, "PATCH", "/api/v1/devices/"+d.id, map[string]any{"targetSnapshotId": nil})
		r = d.agent.Must(409, "POST", path, state(app, w.snapID, hash))
		assert.Equal(t, "incorrect-snapshot", r.String("error"))
		assert.Nil(t, r.Body["snapshot"], "no target: run nothing")
		assert.NotEqual(t, hash, r.String("settings"))

		failed := state(app, nil, r.String("settings"))
		failed["state"], failed["stateDetail"] = "error", "npm install: ETARGET"
		d.agent.Must(200, "POST", path, failed)
		got = w.as["viewer"].Must(200, "GET", "/api/v1/devices/"+d.id, nil)
		assert.Equal(t, "error", got.String("state"))
		assert.Equal(t, "npm install: ETARGET", got.String("stateDetail"))
	})
}

func TestLiveSnapshotAndSettings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newDeviceWorld(t, dialect)
		d := w.register(t, "Gateway")
		assert.Equal(t, "{}", string(d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/snapshot", nil).Raw), "no target, nothing to run")
		assert.Equal(t, 400, w.as["owner"].Do("PATCH", "/api/v1/devices/"+d.id, map[string]any{"env": []map[string]any{{"name": "FF_DEVICE_ID", "value": "forged"}}}).Status,
			"the platform's variables are its own")
		w.assign(t, d, map[string]any{"applicationId": w.appIDs[0], "env": []map[string]any{{"name": "LINE", "value": "3"}}})
		w.assign(t, d, map[string]any{"targetSnapshotId": w.snapID})

		snap := d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/snapshot", nil)
		assert.Equal(t, w.snapID, snap.String("id"))
		assert.Equal(t, "v1", snap.String("name"))
		env := snap.Body["env"].(map[string]any)
		assert.Equal(t, d.id, env["FF_DEVICE_ID"])
		assert.Equal(t, "Gateway", env["FF_DEVICE_NAME"])
		assert.Equal(t, "gateway", env["FF_DEVICE_TYPE"])
		assert.Equal(t, w.appIDs[0], env["FF_APPLICATION_ID"])
		assert.Equal(t, "plant", env["FF_APPLICATION_NAME"])
		assert.Equal(t, w.snapID, env["FF_SNAPSHOT_ID"])
		assert.Equal(t, "hi", env["GREETING"], "the snapshot's own env")
		assert.Contains(t, snap.Body["modules"], "node-red")
		var flows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustMarshal(snap.Body["flows"])), &flows))
		assert.Equal(t, "tab1", flows[0]["id"])

		// docs/device-protocol.md §5: the credentials arrive encrypted with this device's secret, not the instance's.
		blob := json.RawMessage(mustMarshal(snap.Body["credentials"]))
		creds, err := nodered.DecryptCredentials(d.secret, blob)
		require.NoError(t, err)
		assert.Equal(t, "s3cr3t-pw", creds["req1"].(map[string]any)["password"])
		_, err = nodered.DecryptCredentials("instance-secret", blob)
		assert.Error(t, err)

		settings := d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil)
		senv := settings.Body["env"].(map[string]any)
		assert.Equal(t, "3", senv["LINE"])
		assert.Equal(t, d.id, senv["FF_DEVICE_ID"])
		assert.Equal(t, false, settings.Body["features"].(map[string]any)["tables"])
		assert.Equal(t, false, settings.Body["assistant"].(map[string]any)["enabled"])
		hash := settings.String("hash")
		w.as["member"].Must(200, "PATCH", "/api/v1/devices/"+d.id, map[string]any{"env": []map[string]any{{"name": "LINE", "value": "4"}}})
		assert.NotEqual(t, hash, d.agent.Must(200, "GET", "/api/v1/devices/"+d.id+"/live/settings", nil).String("hash"), "a change of env is a new hash")
	})
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDeviceEndpointsRefuseBadInput: bad tokens, another device's id, malformed reports and events are refused
// and change nothing.
func TestDeviceEndpointsRefuseBadInput(t *testing.T) {
	w := newDeviceWorld(t, "sqlite")
	a, b := w.register(t, "A"), w.register(t, "B")
	path := func(d registered, p string) string { return "/api/v1/devices/" + d.id + p }
	assert.Equal(t, 404, a.agent.Do("GET", path(b, "/live/snapshot"), nil).Status, "A's token for B")
	assert.Equal(t, 404, a.agent.Do("POST", path(b, "/live/state"), state(nil, nil, nil)).Status)
	assert.Equal(t, 404, a.agent.Do("POST", "/logging/device/"+b.id+"/audit", map[string]any{"event": "x"}).Status)
	assert.Equal(t, 404, a.agent.Do("GET", "/api/v1/devices/unknown/live/settings", nil).Status)
	anon := w.env.Client(t)
	assert.Equal(t, 401, anon.Do("GET", path(a, "/live/snapshot"), nil).Status)
	anon.Bearer = "fyd_not-a-token"
	assert.Equal(t, 401, anon.Do("GET", path(a, "/live/snapshot"), nil).Status)
	pat := w.as["owner"].Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "pat"}).String("token")
	anon.Bearer = pat
	assert.Equal(t, 401, anon.Do("GET", path(a, "/live/snapshot"), nil).Status, "a user's token is not a device's")
	assert.Equal(t, 401, a.agent.Do("GET", path(a, ""), nil).Status, "a device token reads no user route")

	for _, bad := range []any{"not json", map[string]any{"state": "flying"}, map[string]any{"snapshot": 5}, []any{1},
		map[string]any{"agentVersion": strings.Repeat("x", 2000)}} {
		r := a.agent.Do("POST", path(a, "/live/state"), bad)
		assert.Equal(t, 400, r.Status, "%v: %s", bad, r.Raw)
	}
	assert.Equal(t, 413, a.agent.Do("POST", path(a, "/live/state"), map[string]any{"state": "running", "pad": strings.Repeat("x", 70<<10)}).Status)
	got := w.as["owner"].Must(200, "GET", "/api/v1/devices/"+a.id, nil)
	assert.Equal(t, "never", got.String("status"), "nothing was recorded")
	assert.Equal(t, "", got.String("state"))
	assert.Equal(t, 400, a.agent.Do("POST", "/logging/device/"+a.id+"/audit", map[string]any{"no": "event"}).Status)

	a.agent.Must(200, "POST", "/logging/device/"+a.id+"/audit", map[string]any{"timestamp": 1, "event": "crashed", "info": map[string]any{"code": "loop_detected", "info": "boom"}})
	got = w.as["owner"].Must(200, "GET", "/api/v1/devices/"+a.id, nil)
	assert.Equal(t, "crashed", got.String("state"))
	assert.Equal(t, "loop_detected: boom", got.String("stateDetail"))

	// PATCH rules.
	owner := w.as["owner"]
	assert.Equal(t, 400, owner.Do("PATCH", path(a, ""), map[string]any{"applicationId": w.appIDs[0], "instanceId": w.inst.ID}).Status, "owner exclusive")
	assert.Equal(t, 409, owner.Do("PATCH", path(a, ""), map[string]any{"targetSnapshotId": w.snapID}).Status, "an unassigned device runs nothing")
	owner.Must(200, "PATCH", path(a, ""), map[string]any{"applicationId": w.appIDs[1]})
	assert.Equal(t, 422, owner.Do("PATCH", path(a, ""), map[string]any{"targetSnapshotId": w.snapID}).Status, "another application's snapshot")
	assert.Equal(t, 422, owner.Do("PATCH", path(a, ""), map[string]any{"applicationId": "nope"}).Status)
	assert.Equal(t, 400, owner.Do("PATCH", path(a, ""), map[string]any{"mode": "turbo"}).Status)
	assert.Equal(t, 403, w.as["member"].Do("PATCH", path(a, ""), map[string]any{"name": "x"}).Status, "members do not rename")
	assert.Equal(t, 403, w.as["viewer"].Do("PATCH", path(a, ""), map[string]any{"targetSnapshotId": nil}).Status)
	inst := owner.Must(200, "PATCH", path(a, ""), map[string]any{"instanceId": w.inst.ID})
	assert.Equal(t, "instance", inst.String("ownerType"))
	assert.Nil(t, inst.Body["applicationId"])
	owner.Must(200, "PATCH", path(a, ""), map[string]any{"targetSnapshotId": w.snapID})
	r := a.agent.Must(409, "POST", path(a, "/live/state"), map[string]any{"project": w.inst.ID, "snapshot": nil, "state": "stopped"})
	assert.Equal(t, w.inst.ID, r.String("project"))
	assert.NotContains(t, r.Body, "application")

	// Delete: the device's token stops working at once.
	assert.Equal(t, 403, w.as["member"].Do("DELETE", path(b, ""), nil).Status)
	owner.Must(204, "DELETE", path(b, ""), nil)
	assert.Equal(t, 401, b.agent.Do("POST", path(b, "/live/state"), state(nil, nil, nil)).Status)
	assert.Equal(t, 404, owner.Do("GET", path(b, ""), nil).Status)
}
