package platform_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/internal/replaytest"
)

// runDev runs `flowyard dev` in-process (see startDev) and returns a signed-in admin client and the Temporal
// frontend's address.
func runDev(t testing.TB) (*apitest.Client, string) {
	t.Helper()
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	return c, dev.TemporalAddress
}

// snapshotFixture is an instance running in `flowyard dev`, with helpers to drive it through the API.
type snapshotFixture struct {
	t   testing.TB
	c   *apitest.Client
	app string
	id  string
}

// newRunningInstance creates an instance (with the extra create fields) in a new team and application and
// waits until it runs.
func newRunningInstance(t testing.TB, c *apitest.Client, name string, extra map[string]any) *snapshotFixture {
	t.Helper()
	team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Team " + name}).String("id")
	app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
	f := &snapshotFixture{t: t, c: c, app: app}
	f.id = f.create(name, extra)
	return f
}

// create makes another instance of the fixture's application and waits until it runs.
func (f *snapshotFixture) create(name string, extra map[string]any) string {
	f.t.Helper()
	c := f.c
	body := map[string]any{"name": name,
		"instanceTypeId": firstID(c.Must(200, "GET", "/api/v1/instance-types", nil)),
		"stackId":        firstID(c.Must(200, "GET", "/api/v1/stacks", nil)),
		"templateId":     firstID(c.Must(200, "GET", "/api/v1/templates", nil))}
	for k, v := range extra {
		body[k] = v
	}
	created := c.Must(202, "POST", "/api/v1/applications/"+f.app+"/instances", body)
	id := created.Body["instance"].(map[string]any)["id"].(string)
	f.mustSucceed(created)
	got := c.Must(200, "GET", "/api/v1/instances/"+id, nil)
	require.Equal(f.t, "running", got.String("state"), string(got.Raw))
	return id
}

// mustSucceed waits for the operation of a 202 answer and fails unless it succeeded.
func (f *snapshotFixture) mustSucceed(r *apitest.Response) *apitest.Response {
	f.t.Helper()
	op := f.wait(r)
	require.Equal(f.t, "succeeded", op.String("status"), string(op.Raw))
	return op
}

func (f *snapshotFixture) wait(r *apitest.Response) *apitest.Response {
	f.t.Helper()
	opID := r.Body["operation"].(map[string]any)["id"].(string)
	var op *apitest.Response
	deadline := time.Now().Add(3 * time.Minute)
	for {
		op = f.c.Must(200, "GET", "/api/v1/operations/"+opID, nil)
		switch op.String("status") {
		case "succeeded", "failed", "canceled":
			return op
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("operation did not finish in 3 minutes: %s", op.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// credentialFlows is a flow whose GET /probe makes an http request node call GET /echo (on the same
// Node-RED, at its loopback address, whatever its port) with basic auth from its credentials; /echo answers
// with the Authorization header it got, so /probe shows the password Node-RED holds. GET /version answers the
// version label. With password empty, the credentials are left out.
func credentialFlows(version, password string) []any {
	request := map[string]any{"id": "req1", "type": "http request", "z": "tab1", "method": "GET", "ret": "txt",
		"url": "", "authType": "basic", "wires": []any{[]any{"resp1"}}}
	if password != "" {
		request["credentials"] = map[string]any{"user": "alice", "password": password}
	}
	return []any{
		map[string]any{"id": "tab1", "type": "tab", "label": "Main " + version},
		map[string]any{"id": "in1", "type": "http in", "z": "tab1", "url": "/probe", "method": "get", "wires": []any{[]any{"fn1"}}},
		map[string]any{"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"req1"}},
			"func": "msg.url = 'http://' + msg.req.socket.localAddress + ':' + msg.req.socket.localPort + '/echo';\ndelete msg.headers;\nreturn msg;"},
		request,
		map[string]any{"id": "resp1", "type": "http response", "z": "tab1"},
		map[string]any{"id": "in2", "type": "http in", "z": "tab1", "url": "/echo", "method": "get", "wires": []any{[]any{"fn2"}}},
		map[string]any{"id": "fn2", "type": "function", "z": "tab1", "func": "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;", "outputs": 1, "wires": []any{[]any{"resp2"}}},
		map[string]any{"id": "resp2", "type": "http response", "z": "tab1"},
		map[string]any{"id": "in3", "type": "http in", "z": "tab1", "url": "/version", "method": "get", "wires": []any{[]any{"fn3"}}},
		map[string]any{"id": "fn3", "type": "function", "z": "tab1", "func": "msg.payload = '" + version + "';\nreturn msg;", "outputs": 1, "wires": []any{[]any{"resp2"}}},
	}
}

// deploy posts flows to the instance's Node-RED on its editor origin, as the editor does; the storage plugin
// saves them (credentials encrypted) into the platform.
func (f *snapshotFixture) deploy(id string, flows []any) {
	f.t.Helper()
	r := f.c.OpenEditor(id).Do("POST", "/flows", flows)
	require.Contains(f.t, []int{200, 204}, r.Status, "deploy: %s", r.Raw)
}

// call GETs a path of an instance's http-in nodes, waiting while the flows start. The instance's URL is read
// each time: a restart may move it to another port.
func (f *snapshotFixture) call(id, path string) string {
	f.t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		url := f.c.Must(200, "GET", "/api/v1/instances/"+id, nil).String("url")
		resp, err := instanceClient.Get(url + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("GET %s%s: %s", url, path, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestSnapshotAndRollbackEndToEnd: deploy flows with a credentialed node, snapshot, change the flows and the
// password, roll back, and check through Node-RED itself that the old flows run with the old password. Then
// roll back to a snapshot whose flows cannot start: the operation fails with Node-RED's error and the
// instance runs the flows it ran before. Last, the automatic snapshot taken before the first rollback brings
// the changed flows back, and a copy of the instance made from a snapshot runs them with their password.
func TestSnapshotAndRollbackEndToEnd(t *testing.T) {
	c, temporalAddr := runDev(t)
	f := newRunningInstance(t, c, "snap-e2e", nil)
	base := "/api/v1/instances/" + f.id

	f.deploy(f.id, credentialFlows("v1", "old-pw"))
	require.Equal(t, "v1", f.call(f.id, "version"))
	require.Equal(t, basicAuth("alice", "old-pw"), f.call(f.id, "probe"))
	v1 := c.Must(201, "POST", base+"/snapshots", map[string]any{"name": "v1", "description": "before the change"})
	assert.NotContains(t, string(v1.Raw), "old-pw")

	f.deploy(f.id, credentialFlows("v2", "new-pw"))
	require.Equal(t, "v2", f.call(f.id, "version"))
	require.Equal(t, basicAuth("alice", "new-pw"), f.call(f.id, "probe"))

	rolledBack := f.mustSucceed(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": v1.String("id")}))
	replaytest.RecordAt(t, temporalAddr, "flowyard", "instance/"+f.id, rolledBack.String("runId"), "instance", "replay_rollback.json")
	got := c.Must(200, "GET", base, nil)
	assert.Equal(t, "running", got.String("state"), string(got.Raw))
	assert.Equal(t, "v1", f.call(f.id, "version"), "the old flows run")
	assert.Equal(t, basicAuth("alice", "old-pw"), f.call(f.id, "probe"), "the old password is back, as Node-RED decrypts it")
	creds := c.OpenEditor(f.id).Must(200, "GET", "/credentials/http-request/req1", nil)
	assert.Equal(t, "alice", creds.String("user"), "Node-RED's own credentials endpoint agrees")

	list := c.Must(200, "GET", base+"/snapshots", nil).Body["items"].([]any)
	require.Len(t, list, 2)
	auto := list[1].(map[string]any)
	assert.Equal(t, "Auto snapshot before rollback", auto["name"])
	assert.Equal(t, true, auto["auto"])

	// A snapshot whose flows need a node type Node-RED does not have: they never start.
	broken := c.Must(200, "POST", "/api/v1/snapshots/"+v1.String("id")+"/export", map[string]any{"credentialSecret": "transport"}).Body
	broken["name"] = "broken"
	broken["flows"] = append(credentialFlows("broken", ""), map[string]any{"id": "odd1", "type": "no-such-node-type", "z": "tab1"})
	brokenID := c.Must(201, "POST", base+"/snapshots/import", map[string]any{"snapshot": broken, "credentialSecret": "transport"}).String("id")
	op := f.wait(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": brokenID}))
	assert.Equal(t, "failed", op.String("status"), string(op.Raw))
	assert.Contains(t, op.String("error"), "missing node types", "the operation carries the runtime's error")
	replaytest.RecordAt(t, temporalAddr, "flowyard", "instance/"+f.id, op.String("runId"), "instance", "replay_rollback_restored.json")
	got = c.Must(200, "GET", base, nil)
	assert.Equal(t, "running", got.String("state"), "the instance is not left broken: %s", got.Raw)
	assert.Contains(t, got.String("stateReason"), "flows from before it run again")
	assert.Equal(t, "v1", f.call(f.id, "version"), "the pre-rollback flows run again")
	assert.Equal(t, basicAuth("alice", "old-pw"), f.call(f.id, "probe"))

	f.mustSucceed(c.Must(202, "POST", base+"/rollback", map[string]any{"snapshotId": auto["id"]}))
	assert.Equal(t, "v2", f.call(f.id, "version"), "the automatic snapshot holds the flows from before the first rollback")
	assert.Equal(t, basicAuth("alice", "new-pw"), f.call(f.id, "probe"))

	copyID := f.create("snap-e2e-copy", map[string]any{"snapshotId": v1.String("id")})
	assert.Equal(t, "v1", f.call(copyID, "version"), "the copy runs the snapshot's flows")
	assert.Equal(t, basicAuth("alice", "old-pw"), f.call(copyID, "probe"), "with the credentials re-encrypted to its own secret")
}
