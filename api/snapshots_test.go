package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// recordingRunner stands in for the workflow engine: it records the actions it is asked to start and answers
// err when set.
type recordingRunner struct {
	mu   sync.Mutex
	runs []instance.Params
	err  error
}

func (r *recordingRunner) Run(_ context.Context, p instance.Params) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", r.err
	}
	r.runs = append(r.runs, p)
	return "run-" + fmt.Sprint(len(r.runs)), nil
}

func (r *recordingRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// snapWorld is a running API with a sealer and a recording runner, a team with one user per role and two
// applications, and an outsider with a team, application and instance of their own.
type snapWorld struct {
	env     *apitest.Env
	sealer  *domain.Sealer
	runner  *recordingRunner
	as      map[string]*apitest.Client // admin, owner, member, viewer, dashboard, outsider, anonymous
	teamID  string
	appIDs  [2]string
	foreign *storage.Instance // the outsider's
}

func newSnapWorld(t *testing.T, dialect string, mutate ...func(*api.Deps)) *snapWorld {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	runner := &recordingRunner{}
	env := apitest.Start(t, dialect, append([]func(*api.Deps){func(d *api.Deps) { d.Sealer, d.Instances = sealer, runner }}, mutate...)...)
	w := &snapWorld{env: env, sealer: sealer, runner: runner, as: map[string]*apitest.Client{}}
	for _, name := range []string{"admin", "owner", "member", "viewer", "dashboard", "outsider"} {
		u, err := api.NewUser(name+"@example.com", name, testPassword, name == "admin")
		require.NoError(t, err)
		require.NoError(t, env.Store.InsertUser(context.Background(), u))
		c := env.Client(t)
		c.Login(name+"@example.com", testPassword)
		w.as[name] = c
	}
	w.as["anonymous"] = env.Client(t)
	owner := w.as["owner"]
	w.teamID = owner.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Snaps", "slug": "snaps"}).String("id")
	for _, role := range []string{"member", "viewer", "dashboard"} {
		w.as["admin"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/members", map[string]any{"email": role + "@example.com", "role": role})
	}
	for i := range w.appIDs {
		w.appIDs[i] = owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": fmt.Sprint("app", i)}).String("id")
	}
	outsiderTeam := w.as["outsider"].Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Other", "slug": "other"}).String("id")
	outsiderApp := w.as["outsider"].Must(201, "POST", "/api/v1/teams/"+outsiderTeam+"/applications", map[string]any{"name": "theirs"}).String("id")
	w.foreign = w.addInstance(t, outsiderTeam, outsiderApp, "foreign", "foreign-secret")
	return w
}

// addInstance inserts an instance row as provisioning would, with credential secret secret.
func (w *snapWorld) addInstance(t *testing.T, teamID, appID, name, secret string) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	st := w.env.Store
	in := newInstanceRow(t, st, teamID, appID, name)
	in.Env = []domain.EnvVar{{Name: "GREETING", Value: "hi"}}
	in.CredentialSecret, in.AdminToken, in.ReadToken, in.RuntimeToken = w.sealer.Seal(secret), w.sealer.Seal("a"), w.sealer.Seal("r"), w.sealer.Seal("t")
	require.NoError(t, st.InsertInstance(ctx, in))
	return in
}

// mine adds an instance of the team in application app.
func (w *snapWorld) mine(t *testing.T, app int, name, secret string) *storage.Instance {
	return w.addInstance(t, w.teamID, w.appIDs[app], name, secret)
}

// deploy stores flows and credentials as the storage plugin would.
func (w *snapWorld) deploy(t *testing.T, in *storage.Instance, secret, flows string, creds map[string]any) {
	t.Helper()
	blob, err := nodered.EncryptCredentials(secret, creds)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, w.env.Store.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, flows))
	require.NoError(t, w.env.Store.PutInstanceStorage(ctx, in.ID, storage.StorageCredentials, string(blob)))
}

func (w *snapWorld) snapshotCount(t *testing.T, in *storage.Instance) int {
	t.Helper()
	list, _, err := w.env.Store.ListSnapshots(context.Background(), in.ID, storage.Page{})
	require.NoError(t, err)
	return len(list)
}

func (w *snapWorld) audit(t *testing.T) string {
	t.Helper()
	return string(w.as["admin"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil).Raw)
}

const (
	apiFlowsV1 = `[{"id":"tab1","type":"tab","label":"v1"},{"id":"req1","type":"http request","z":"tab1","url":"http://x/<path>"}]`
	apiFlowsV2 = `[{"id":"tab1","type":"tab","label":"v2"}]`
)

var apiCreds = map[string]any{"req1": map[string]any{"user": "alice", "password": "s3cr3t-pw"}}

// TestSnapshotPermissionSplit calls every snapshot route as every role and checks FlowFuse's split: viewers
// see descriptions, members the content (never the credentials) and may capture, export and roll back,
// owners import, rename and delete; another team's member sees nothing; refused calls write nothing.
func TestSnapshotPermissionSplit(t *testing.T) {
	w := newSnapWorld(t, "sqlite")
	in := w.mine(t, 0, "perm", "perm-secret")
	w.deploy(t, in, "perm-secret", apiFlowsV1, apiCreds)
	base := w.as["owner"].Must(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": "base"}).String("id")
	exported := w.as["owner"].Must(200, "POST", "/api/v1/snapshots/"+base+"/export", map[string]any{"credentialSecret": "mine"})
	var doc map[string]any
	require.NoError(t, json.Unmarshal(exported.Raw, &doc))

	type route struct {
		method, path string
		body         any
		least        string // least team role
		success      int
	}
	fresh := func() string {
		return w.as["owner"].Must(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": "victim"}).String("id")
	}
	routes := []route{
		{"POST", "/api/v1/instances/{in}/snapshots", map[string]any{"name": "by {who}"}, "member", 201},
		{"GET", "/api/v1/instances/{in}/snapshots", nil, "viewer", 200},
		{"GET", "/api/v1/snapshots/{snap}", nil, "viewer", 200},
		{"GET", "/api/v1/snapshots/{snap}/full", nil, "member", 200},
		{"POST", "/api/v1/snapshots/{snap}/export", map[string]any{"credentialSecret": "s"}, "member", 200},
		{"PATCH", "/api/v1/snapshots/{snap}", map[string]any{"description": "renamed by {who}"}, "owner", 200},
		{"DELETE", "/api/v1/snapshots/{fresh}", nil, "owner", 204},
		{"POST", "/api/v1/instances/{in}/snapshots/import", map[string]any{"snapshot": doc, "credentialSecret": "mine"}, "owner", 201},
		{"POST", "/api/v1/instances/{in}/rollback", map[string]any{"snapshotId": "{snap}"}, "member", 202},
	}
	level := map[string]int{"dashboard": 5, "viewer": 10, "member": 30, "owner": 50}
	for _, r := range routes {
		for _, who := range []string{"owner", "member", "viewer", "dashboard", "outsider", "anonymous", "admin"} {
			t.Run(r.method+" "+r.path+" as "+who, func(t *testing.T) {
				path := strings.NewReplacer("{in}", in.ID, "{snap}", base).Replace(r.path)
				if strings.Contains(path, "{fresh}") {
					path = strings.ReplaceAll(path, "{fresh}", fresh())
				}
				var body any
				if r.body != nil {
					raw, _ := json.Marshal(r.body)
					body = strings.NewReplacer("{who}", who, "{snap}", base).Replace(string(raw))
				}
				want := 403
				switch {
				case who == "anonymous":
					want = 401
				case who == "outsider":
					want = 404
				case who == "admin" || level[who] >= level[r.least]:
					want = r.success
				}
				before, runs := w.audit(t), w.runner.count()
				got := w.as[who].Do(r.method, path, body)
				require.Equal(t, want, got.Status, string(got.Raw))
				if want >= 400 {
					assert.NotEmpty(t, got.String("code"), "refusals carry the envelope")
					assert.Equal(t, before, w.audit(t), "a refused call writes nothing")
					assert.Equal(t, runs, w.runner.count(), "a refused call starts nothing")
					return
				}
				assert.NotContains(t, string(got.Raw), "perm-secret", "the instance's secret never leaves the platform")
				assert.NotContains(t, string(got.Raw), "s3cr3t-pw", "credentials never leave in clear")
				switch {
				case strings.HasSuffix(path, "/full"):
					assert.Contains(t, string(got.Raw), `"flows":[`)
					assert.NotContains(t, string(got.Raw), `"credentials"`, "members read the content without credentials")
				case strings.HasSuffix(path, "/export"):
					creds, err := nodered.DecryptCredentials("s", json.RawMessage(mustRaw(t, got.Body["credentials"])))
					require.NoError(t, err)
					assert.Equal(t, apiCreds, creds)
				case r.method == "GET":
					assert.NotContains(t, string(got.Raw), `"flows"`, "descriptions carry no flows")
					assert.NotContains(t, string(got.Raw), "GREETING", "descriptions carry no env")
				}
			})
		}
	}
}

func mustRaw(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

func TestSnapshotCaptureContentAndBadInput(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		member := w.as["member"]
		in := w.mine(t, 0, "cap", "cap-secret")
		w.deploy(t, in, "cap-secret", apiFlowsV1, apiCreds)
		snap := member.Must(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": "v1", "description": "first"})
		assert.Equal(t, in.ID, snap.String("instanceId"))
		assert.Equal(t, storage.DefaultNodeRedVersion, snap.String("nodeRedVersion"))
		assert.Equal(t, w.userIDOf(t, "member"), snap.String("createdBy"))
		full := member.Must(200, "GET", "/api/v1/snapshots/"+snap.String("id")+"/full", nil)
		assert.JSONEq(t, apiFlowsV1, string(mustRaw(t, full.Body["flows"])), "flows as stored")
		assert.Equal(t, "hi", full.Body["env"].([]any)[0].(map[string]any)["value"])
		assert.Equal(t, "UTC", full.Body["settings"].(map[string]any)["timeZone"], "effective settings include the template's")
		list := member.Must(200, "GET", "/api/v1/instances/"+in.ID+"/snapshots", nil)
		assert.Len(t, list.Body["items"], 1)

		cases := []struct {
			name   string
			flows  string
			body   any
			status int
			code   string
		}{
			{"no name", apiFlowsV1, map[string]any{}, 400, "invalid_request"},
			{"unknown field", apiFlowsV1, map[string]any{"name": "x", "flows": []any{}}, 400, "invalid_request"},
			{"corrupt flows", `{"broken": `, map[string]any{"name": "x"}, 422, "corrupt_flows"},
			{"oversized flows", `[{"id":"c","type":"comment","info":"` + strings.Repeat("z", snapshots.MaxBytes) + `"}]`, map[string]any{"name": "x"}, 413, "snapshot_too_large"},
		}
		for _, tc := range cases {
			require.NoError(t, w.env.Store.PutInstanceStorage(context.Background(), in.ID, storage.StorageFlows, tc.flows))
			before := w.audit(t)
			r := member.Do("POST", "/api/v1/instances/"+in.ID+"/snapshots", tc.body)
			assert.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
			assert.Equal(t, tc.code, r.String("code"), tc.name)
			assert.NotEmpty(t, r.String("message"), tc.name)
			assert.Equal(t, 1, w.snapshotCount(t, in), "%s: nothing written", tc.name)
			assert.Equal(t, before, w.audit(t), tc.name)
		}
		assert.Equal(t, 404, member.Do("POST", "/api/v1/instances/nope/snapshots", map[string]any{"name": "x"}).Status)
		assert.Equal(t, 404, member.Do("GET", "/api/v1/snapshots/nope", nil).Status)
		foreignSnap := w.as["outsider"].Must(201, "POST", "/api/v1/instances/"+w.foreign.ID+"/snapshots", map[string]any{"name": "theirs"}).String("id")
		for _, path := range []string{"/api/v1/snapshots/" + foreignSnap, "/api/v1/snapshots/" + foreignSnap + "/full"} {
			r := member.Do("GET", path, nil)
			assert.Equal(t, 404, r.Status, "another team's snapshot looks like none")
			assert.NotContains(t, string(r.Raw), w.foreign.ID)
		}
	})
}

func (w *snapWorld) userIDOf(t *testing.T, role string) string {
	return w.as[role].Must(200, "GET", "/api/v1/user", nil).String("id")
}

func TestRollbackStartsTheWorkflowOrRefusesWithNothingStarted(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		member := w.as["member"]
		in := w.mine(t, 0, "rb", "rb-secret")
		sibling := w.mine(t, 0, "rb-sibling", "sibling-secret")
		elsewhere := w.mine(t, 1, "rb-elsewhere", "elsewhere-secret")
		snap := member.Must(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": "v1"}).String("id")
		siblingSnap := member.Must(201, "POST", "/api/v1/instances/"+sibling.ID+"/snapshots", map[string]any{"name": "sib"}).String("id")
		elsewhereSnap := member.Must(201, "POST", "/api/v1/instances/"+elsewhere.ID+"/snapshots", map[string]any{"name": "far"}).String("id")
		foreignSnap := w.as["outsider"].Must(201, "POST", "/api/v1/instances/"+w.foreign.ID+"/snapshots", map[string]any{"name": "theirs"}).String("id")

		bad := []struct {
			body   any
			status int
			code   string
		}{
			{map[string]any{}, 400, "invalid_request"},
			{map[string]any{"snapshotId": "nope"}, 422, "unknown_reference"},
			{map[string]any{"snapshotId": foreignSnap}, 422, "unknown_reference"},
			{map[string]any{"snapshotId": elsewhereSnap}, 422, "snapshot_other_application"},
		}
		for _, tc := range bad {
			before := w.audit(t)
			r := member.Do("POST", "/api/v1/instances/"+in.ID+"/rollback", tc.body)
			assert.Equal(t, tc.status, r.Status, "%v: %s", tc.body, r.Raw)
			assert.Equal(t, tc.code, r.String("code"))
			assert.NotContains(t, string(r.Raw), w.foreign.ID, "no leak of another team")
			assert.Equal(t, before, w.audit(t))
		}
		assert.Zero(t, w.runner.count(), "nothing started on bad input")
		ops := member.Must(200, "GET", "/api/v1/instances/"+in.ID+"/operations", nil)
		assert.Empty(t, ops.Body["items"], "no operation recorded on bad input")

		for i, id := range []string{snap, siblingSnap} {
			r := member.Must(202, "POST", "/api/v1/instances/"+in.ID+"/rollback", map[string]any{"snapshotId": id})
			op := r.Body["operation"].(map[string]any)
			assert.Equal(t, "rollback", op["kind"])
			assert.Equal(t, "/api/v1/operations/"+op["id"].(string), r.Header.Get("Location"))
			p := w.runner.runs[i]
			assert.Equal(t, instance.Params{InstanceID: in.ID, TeamID: w.teamID, OperationID: op["id"].(string), Action: instance.ActionRollback, SnapshotID: id}, p)
		}

		w.runner.err = domain.Conflict("instance_busy", "Another action is running on this instance; wait for it to finish.")
		r := member.Do("POST", "/api/v1/instances/"+in.ID+"/rollback", map[string]any{"snapshotId": snap})
		assert.Equal(t, 409, r.Status)
		assert.Equal(t, "instance_busy", r.String("code"))
		ops = member.Must(200, "GET", "/api/v1/instances/"+in.ID+"/operations", nil)
		items := ops.Body["items"].([]any)
		assert.Equal(t, "failed", items[len(items)-1].(map[string]any)["status"], "a refused start never leaves a pending operation")
	})
}

func TestExportImportAcrossInstancesAndBadImports(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		owner := w.as["owner"]
		src := w.mine(t, 0, "src", "src-secret")
		dst := w.mine(t, 1, "dst", "dst-secret")
		w.deploy(t, src, "src-secret", apiFlowsV1, apiCreds)
		id := owner.Must(201, "POST", "/api/v1/instances/"+src.ID+"/snapshots", map[string]any{"name": "to move"}).String("id")
		assert.Equal(t, 400, owner.Do("POST", "/api/v1/snapshots/"+id+"/export", map[string]any{}).Status, "export needs a secret")
		export := owner.Must(200, "POST", "/api/v1/snapshots/"+id+"/export", map[string]any{"credentialSecret": "transport"})
		var doc map[string]any
		require.NoError(t, json.Unmarshal(export.Raw, &doc))
		assert.NotContains(t, string(export.Raw), "src-secret")

		bad := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"wrong secret", map[string]any{"snapshot": doc, "credentialSecret": "not-transport"}, 422, "wrong_credential_secret"},
			{"no secret", map[string]any{"snapshot": doc}, 400, "invalid_request"},
			{"no snapshot", map[string]any{"credentialSecret": "transport"}, 400, "invalid_request"},
			{"corrupt flows", map[string]any{"snapshot": withField(doc, "flows", map[string]any{"not": "a list"}), "credentialSecret": "transport"}, 400, "invalid_request"},
			{"nodes without ids", map[string]any{"snapshot": withField(doc, "flows", []any{map[string]any{"type": "tab"}}), "credentialSecret": "transport"}, 400, "invalid_request"},
			{"unknown setting", map[string]any{"snapshot": withField(doc, "settings", map[string]any{"adminAuth": "x"}), "credentialSecret": "transport"}, 400, "invalid_request"},
			{"not json", `{"snapshot": {"flows": [}`, 400, "invalid_json"},
		}
		for _, tc := range bad {
			before := w.audit(t)
			r := owner.Do("POST", "/api/v1/instances/"+dst.ID+"/snapshots/import", tc.body)
			assert.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
			assert.Equal(t, tc.code, r.String("code"), tc.name)
			assert.Zero(t, w.snapshotCount(t, dst), "%s: nothing written", tc.name)
			assert.Equal(t, before, w.audit(t), tc.name)
		}

		imported := owner.Must(201, "POST", "/api/v1/instances/"+dst.ID+"/snapshots/import", map[string]any{"snapshot": doc, "credentialSecret": "transport"})
		assert.Equal(t, dst.ID, imported.String("instanceId"))
		assert.Equal(t, "to move", imported.String("name"))
		stored, err := w.env.Store.GetSnapshot(context.Background(), imported.String("id"))
		require.NoError(t, err)
		creds, err := nodered.DecryptCredentials("dst-secret", json.RawMessage(stored.Credentials))
		require.NoError(t, err)
		assert.Equal(t, apiCreds, creds, "re-encrypted to the target instance's secret")
		assert.JSONEq(t, apiFlowsV1, stored.Flows)
	})
}

func withField(doc map[string]any, key string, v any) map[string]any {
	out := map[string]any{}
	for k, val := range doc {
		out[k] = val
	}
	out[key] = v
	return out
}

func TestCreateInstanceFromSnapshot(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSnapWorld(t, dialect)
		owner := w.as["owner"]
		src := w.mine(t, 0, "original", "original-secret")
		w.deploy(t, src, "original-secret", apiFlowsV1, apiCreds)
		id := owner.Must(201, "POST", "/api/v1/instances/"+src.ID+"/snapshots", map[string]any{"name": "copy me"}).String("id")
		foreignSnap := w.as["outsider"].Must(201, "POST", "/api/v1/instances/"+w.foreign.ID+"/snapshots", map[string]any{"name": "theirs"}).String("id")
		body := func(name string, extra map[string]any) map[string]any {
			b := map[string]any{"name": name, "instanceTypeId": src.InstanceTypeID, "stackId": src.StackID, "templateId": src.TemplateID}
			for k, v := range extra {
				b[k] = v
			}
			return b
		}
		path := "/api/v1/applications/" + w.appIDs[1] + "/instances"
		r := owner.Do("POST", path, body("copy-bad", map[string]any{"snapshotId": foreignSnap}))
		assert.Equal(t, 422, r.Status, string(r.Raw))
		assert.Equal(t, "unknown_reference", r.String("code"))
		r = owner.Do("POST", path, body("copy-both", map[string]any{"snapshotId": id, "blueprintId": "x"}))
		assert.Equal(t, 400, r.Status, string(r.Raw))
		assert.Zero(t, w.runner.count())

		created := owner.Must(202, "POST", path, body("copy", map[string]any{"snapshotId": id}))
		newID := created.Body["instance"].(map[string]any)["id"].(string)
		ctx := context.Background()
		in, err := w.env.Store.GetInstance(ctx, newID)
		require.NoError(t, err)
		assert.Equal(t, []domain.EnvVar{{Name: "GREETING", Value: "hi"}}, in.Env, "env from the snapshot")
		flows, err := w.env.Store.GetInstanceStorage(ctx, newID, storage.StorageFlows)
		require.NoError(t, err)
		assert.JSONEq(t, apiFlowsV1, flows)
		secret, err := w.sealer.Open(in.CredentialSecret)
		require.NoError(t, err)
		assert.NotEqual(t, "original-secret", secret, "the copy has its own secret")
		blob, err := w.env.Store.GetInstanceStorage(ctx, newID, storage.StorageCredentials)
		require.NoError(t, err)
		creds, err := nodered.DecryptCredentials(secret, json.RawMessage(blob))
		require.NoError(t, err)
		assert.Equal(t, apiCreds, creds)
		assert.Equal(t, instance.ActionProvision, w.runner.runs[0].Action)
	})
}

func TestDeletingASnapshotDevicesTargetIsRefused(t *testing.T) {
	w := newSnapWorld(t, "sqlite")
	owner := w.as["owner"]
	in := w.mine(t, 0, "targeted", "s")
	id := owner.Must(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": "fleet"}).String("id")
	ctx := context.Background()
	for _, name := range []string{"pump-1", "pump-2"} {
		require.NoError(t, w.env.Store.InsertDevice(ctx, &storage.Device{ID: domain.NewID(), TeamID: w.teamID, Name: name,
			CredentialSecret: w.sealer.Seal("d"), Mode: "autonomous", SettingsHash: "h", TargetSnapshotID: &id}))
	}
	r := owner.Do("DELETE", "/api/v1/snapshots/"+id, nil)
	assert.Equal(t, 409, r.Status, string(r.Raw))
	assert.Equal(t, "snapshot_in_use", r.String("code"))
	assert.Contains(t, r.String("message"), "device pump-1, device pump-2")
	owner.Must(200, "GET", "/api/v1/snapshots/"+id, nil)
}
