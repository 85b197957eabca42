package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/snapshotschedule"
)

// The cross-tenant security matrix: team A holds one object of every kind; team B's users, no one, team A's
// expired and revoked credentials, and team B's device, provisioning and runtime tokens call every operation of
// the OpenAPI document (so a new route is covered without a change here) with team A's IDs in the path and a
// plausible body. None may succeed, fail inside (5xx), show anything of team A, write anything, or reach team
// A's Node-RED through its editor origin.

// publicRoutes answer without a caller by design; each has its own protection.
var publicRoutes = map[string]string{
	"GET /healthz":                                        "liveness probe: answers ok, nothing of any team",
	"GET /readyz":                                         "readiness probe: names dependencies, nothing of any team",
	"GET /api/v1/openapi.json":                            "the API's description, fetched by this very test",
	"POST /api/v1/auth/login":                             "sign-in: e-mail and password are its credentials (login tests and the rate limiter cover it)",
	"POST /api/v1/auth/logout":                            "ends the caller's own session, which would sign the intruder out mid-test",
	"POST /api/v1/billing/stripe-webhook":                 "Stripe's webhook: its own signature, verified before anything is read (billing tests)",
	"POST /api/v1/invitations/{token}/accept":             "the invitation link's token is its credential (invitations tests: forged, used, revoked, expired links)",
	"POST /api/v1/invitations/{token}/decline":            "likewise",
	"POST /api/v1/auth/password-reset":                    "answers alike for every address and mails only the address's holder (passwords tests)",
	"POST /api/v1/auth/password-reset/{token}":            "the reset link's token is its credential (passwords tests: forged, used, expired links)",
	"POST /api/v1/auth/signup":                            "off unless an admin turns it on; answers alike for every address and mails only the address (signup tests)",
	"POST /api/v1/auth/signup/resend":                     "answers alike for every address and mails only an unconfirmed account's address (signup tests)",
	"POST /api/v1/auth/verify-email/{token}":              "the confirmation link's token and the sign-up's password are its credentials (signup tests: forged, used, expired links)",
	"GET /api/v1/settings":                                "the platform settings the sign-in page needs, nothing of any team",
	"GET /api/v1/auth/sso/lookup":                         "tells whether an address's domain signs in through single sign-on, nothing of any team",
	"GET /api/v1/auth/sso/start":                          "sends the browser to its domain's provider; nothing of any team",
	"GET /api/v1/auth/sso/callback":                       "the sealed cookie and the provider's signed ID token are its credentials (sso tests: forged state, nonce, audience, issuer, expiry)",
	"POST /api/v1/auth/login/second-factor":               "the pending sign-in's cookie and the code are its credentials (two-factor tests: replayed, foreign, expired)",
	"GET /api/v1/devices/{deviceId}/editor/token":         "the device's editor token is its credential, answered 401 to any other (deviceeditor tests)",
	"GET /api/v1/devices/{deviceId}/editor/comms/{token}": "the agent's tunnel: the device's editor token is its credential, closed 4001/4004 otherwise (deviceeditor tests)",
}

// ownAccountRoutes are open to every signed-in user and act on the caller's own account or on the platform's
// shared catalogue: they may succeed for team B's users, and may add rows (the caller's own team or token),
// but still must not show or change anything of team A.
var ownAccountRoutes = map[string]string{
	"GET /api/v1/user":                            "the caller's own profile",
	"GET /api/v1/user/tokens":                     "the caller's own tokens",
	"POST /api/v1/user/password":                  "changes the caller's own password (needs the current one)",
	"POST /api/v1/user/tokens":                    "creates a token for the caller",
	"GET /api/v1/user/two-factor":                 "the caller's own two-factor sign-in",
	"POST /api/v1/user/two-factor":                "enrols an authenticator for the caller",
	"POST /api/v1/user/two-factor/confirm":        "confirms the caller's own enrolment",
	"POST /api/v1/user/two-factor/recovery-codes": "renews the caller's own recovery codes (needs a proof)",
	"POST /api/v1/user/two-factor/disable":        "turns the caller's own two-factor sign-in off (needs a proof)",
	"GET /api/v1/teams":                           "the caller's own teams",
	"POST /api/v1/teams":                          "creates a team owned by the caller",
	"GET /api/v1/stacks":                          "platform catalogue, readable by every signed-in user",
	"GET /api/v1/templates":                       "platform catalogue",
	"GET /api/v1/team-types":                      "platform catalogue",
	"GET /api/v1/instance-types":                  "platform catalogue",
	"GET /api/v1/blueprints":                      "platform catalogue",
	"GET /api/v1/stacks/{stackId}":                "platform catalogue item",
	"GET /api/v1/templates/{templateId}":          "platform catalogue item",
	"GET /api/v1/team-types/{teamTypeId}":         "platform catalogue item",
	"GET /api/v1/instance-types/{instanceTypeId}": "platform catalogue item",
	"GET /api/v1/blueprints/{blueprintId}":        "platform catalogue item",
}

// intruder is one caller that must get nothing of team A.
type intruder struct {
	name     string
	b        *browser
	headers  map[string]string
	signedIn bool // a valid user of team B: own-account routes may answer it
}

// tenant is a team's world as the test built it.
type tenant struct {
	params  map[string]string // path parameter -> team A's object
	secrets map[string]string // what must never appear in an answer to an intruder: IDs, names, secrets
	teamID  string
}

type crossWorld struct {
	env        *instanceWorld
	backend    *recordingBackend // team A's Node-RED
	backendB   *recordingBackend // team B's
	runs       *recordingRunner
	rollouts   *startedRollouts
	promotions *startedPromotions
	schedules  *recordingScheduler
	users      map[string]*browser // "a-owner", "b-viewer", …
	userIDs    map[string]string
	a, b       tenant // the victim, and the intruders' own team
	intruders  []intruder
	readOnly   map[string]*browser // team A's callers that may not write
}

var tenantRoles = []string{"owner", "member", "viewer", "dashboard"}

func TestCrossTenantSecurityMatrix(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := newCrossWorld(t, dialect)
		doc := w.users["a-owner"].mustJSON(200, "GET", "/api/v1/openapi.json", nil)
		ops := operations(t, doc)
		require.Greater(t, len(ops), 50, "the document lists the API")
		calls := 0
		for _, op := range ops {
			key := op.method + " " + op.path
			if _, public := publicRoutes[key]; public {
				continue
			}
			path := w.resolve(t, op.path, w.a)
			body := w.bodyFor(op)
			before := w.dump(t)
			runsBefore := w.workflowCalls()
			for _, in := range w.intruders {
				calls++
				a := in.b.do(op.method, path, body, in.headers)
				w.checkAnswer(t, key, in, a)
			}
			_, own := ownAccountRoutes[key]
			w.checkNoWrite(t, key, own, before, w.dump(t))
			assert.Equal(t, runsBefore, w.workflowCalls(), "%s: no workflow was started or signalled", key)
		}
		t.Logf("%d operations, %d intruders, %d calls", len(ops), len(w.intruders), calls)
		start := time.Now()
		t.Logf("%d calls naming team A's objects in bodies on team B's, one field at a time (%s)", w.sweepBodyReferences(t, ops), time.Since(start).Round(time.Millisecond))
		t.Logf("%d writes tried by team A's read-only callers", w.sweepReadOnlyRoles(t, ops))
		assert.Zero(t, w.backend.count(), "no request reached team A's Node-RED through its editor origin")
		w.checkEditorWebsocket(t)
		w.checkEditorTraversal(t)
		w.checkDeviceClaims(t)
		t.Logf("%d of team B's own views read", w.checkOwnViews(t, ops))
		w.checkTeamAStillWorks(t)
		t.Logf("%d forged requests from other origins", w.sweepForgedRequests(t, ops))
	})
}

// ---- the world ----

func newCrossWorld(t *testing.T, dialect string) *crossWorld {
	t.Helper()
	w := &crossWorld{backend: newRecordingBackend(t), runs: &recordingRunner{}, rollouts: &startedRollouts{},
		promotions: &startedPromotions{}, schedules: &recordingScheduler{specs: map[string]snapshotschedule.Spec{}},
		users: map[string]*browser{}, userIDs: map[string]string{}}
	w.env = newBareInstanceWorld(t, dialect, func(d *api.Deps) {
		d.Instances, d.Rollouts, d.Pipelines, d.SnapshotSchedules = w.runs, w.rollouts, w.promotions, w.schedules
		d.Config.BrokerURL, d.Config.PublicURL = "mqtt://127.0.0.1:1884", "http://forge.test"
	})
	// The platform admin only adds the teams' members (a team owner cannot add an account without consent).
	admin, err := api.NewUser("platform-admin@example.com", "platform admin", testPassword, true)
	require.NoError(t, err)
	require.NoError(t, w.env.env.Store.InsertUser(context.Background(), admin))
	platformAdmin := newBrowser(t, w.env.env.URL)
	platformAdmin.login(admin.Email, testPassword)
	teams := map[string]string{}
	for _, team := range []string{"a", "b"} {
		for _, role := range tenantRoles {
			name := team + "-" + role
			u, err := api.NewUser(name+"@example.com", "user "+name+" xq", testPassword, false)
			require.NoError(t, err)
			require.NoError(t, w.env.env.Store.InsertUser(context.Background(), u))
			w.userIDs[name] = u.ID
			w.users[name] = newBrowser(t, w.env.env.URL)
			w.users[name].login(name+"@example.com", testPassword)
		}
		owner := w.users[team+"-owner"]
		teams[team] = owner.mustJSON(201, "POST", "/api/v1/teams", map[string]any{"name": "Team " + team + " xq", "slug": "team-" + team + "-xq"})["id"].(string)
		for _, role := range tenantRoles[1:] {
			platformAdmin.mustJSON(201, "POST", "/api/v1/teams/"+teams[team]+"/members", map[string]any{"email": team + "-" + role + "@example.com", "role": role})
		}
	}
	w.a = w.buildTenant(t, "a", teams["a"], w.backend.srv.URL)
	w.backendB = newRecordingBackend(t)
	w.b = w.buildTenant(t, "b", teams["b"], w.backendB.srv.URL)
	w.buildIntruders(t)
	readToken := w.users["a-owner"].mustJSON(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "read", "scopes": []string{"read"}})["token"].(string)
	w.readOnly = map[string]*browser{"viewer": w.users["a-viewer"], "dashboard": w.users["a-dashboard"], "owner's read-only token": bearerBrowser(t, w, readToken)}
	return w
}

// newBareInstanceWorld is an instanceWorld without its team and users: a running API with a sealer.
func newBareInstanceWorld(t *testing.T, dialect string, mutate func(*api.Deps)) *instanceWorld {
	t.Helper()
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	require.NoError(t, err)
	env := apitest.Start(t, dialect, func(d *api.Deps) { d.Sealer = sealer; mutate(d) })
	return &instanceWorld{env: env, sealer: sealer, browsers: map[string]*browser{}, emails: map[string]string{}}
}

// buildTenant creates one object of every kind in team ("a" or "b") and records its IDs, names and secrets.
// The instance's Node-RED is at runtimeURL.
func (w *crossWorld) buildTenant(t *testing.T, team, teamID, runtimeURL string) tenant {
	t.Helper()
	owner := w.users[team+"-owner"]
	word := map[string]string{"a": "alpha", "b": "bravo"}[team]
	name := func(what string) string { return word + "-" + what + "-xq" }
	a := tenant{teamID: teamID, params: map[string]string{"teamId": teamID}, secrets: map[string]string{"team id": teamID, "team name": "Team " + team + " xq", "team slug": "team-" + team + "-xq"}}
	for _, role := range tenantRoles {
		a.secrets["user id "+role] = w.userIDs[team+"-"+role]
		a.secrets["user email "+role] = team + "-" + role + "@example.com"
	}
	a.params["userId"] = w.userIDs[team+"-member"]
	id := func(r map[string]any) string { return r["id"].(string) }

	app := id(owner.mustJSON(201, "POST", "/api/v1/teams/"+teamID+"/applications", map[string]any{"name": name("plant")}))
	a.params["applicationId"], a.secrets["application id"], a.secrets["application name"] = app, app, name("plant")

	w.env.teamID, w.env.appID = teamID, app
	in, sec := w.env.addInstance(t, name("line"), runtimeURL)
	a.params["instanceId"], a.secrets["instance id"], a.secrets["instance name"] = in.ID, in.ID, in.Name
	a.params["moveId"] = stackMoveOf(t, w.env.env.Store, in)
	a.secrets["runtime token"], a.secrets["admin token"], a.secrets["read token"], a.secrets["instance credential secret"] = sec.runtime, sec.admin, sec.read, sec.credentialSecret
	(&snapWorld{env: w.env.env}).deploy(t, in, sec.credentialSecret, apiFlowsV1, apiCreds)
	a.secrets["node credential"] = "s3cr3t-pw"

	snap := id(owner.mustJSON(201, "POST", "/api/v1/instances/"+in.ID+"/snapshots", map[string]any{"name": name("snap")}))
	a.params["snapshotId"], a.secrets["snapshot id"], a.secrets["snapshot name"] = snap, snap, name("snap")
	owner.mustJSON(200, "PUT", "/api/v1/instances/"+in.ID+"/snapshot-schedule", map[string]any{"every": "2h"})
	op := owner.mustJSON(202, "POST", "/api/v1/instances/"+in.ID+"/actions/restart", nil)
	a.params["operationId"] = operationID(t, op)
	a.secrets["operation id"] = a.params["operationId"]

	dev := owner.mustJSON(200, "POST", "/api/v1/devices", map[string]any{"name": name("gw"), "type": "gateway", "team": teamID})
	a.params["deviceId"], a.secrets["device id"], a.secrets["device name"] = id(dev), id(dev), name("gw")
	creds := dev["credentials"].(map[string]any)
	a.secrets["device token"], a.secrets["device credential secret"] = creds["token"].(string), creds["credentialSecret"].(string)
	a.secrets["broker password"] = creds["broker"].(map[string]any)["password"].(string)
	owner.mustJSON(200, "PATCH", "/api/v1/devices/"+id(dev), map[string]any{"applicationId": app})

	group := id(owner.mustJSON(201, "POST", "/api/v1/applications/"+app+"/device-groups", map[string]any{"name": name("group")}))
	owner.mustJSON(200, "PUT", "/api/v1/device-groups/"+group+"/devices", map[string]any{"add": []string{id(dev)}})
	a.params["groupId"], a.secrets["group id"], a.secrets["group name"] = group, group, name("group")
	rollout := id(owner.mustJSON(202, "POST", "/api/v1/device-groups/"+group+"/rollouts", map[string]any{"snapshotId": snap})["rollout"].(map[string]any))
	a.params["rolloutId"], a.secrets["rollout id"] = rollout, rollout

	pipe := id(owner.mustJSON(201, "POST", "/api/v1/applications/"+app+"/pipelines", map[string]any{"name": name("pipe")}))
	stages := "/api/v1/pipelines/" + pipe + "/stages"
	stage := id(owner.mustJSON(201, "POST", stages, map[string]any{"name": name("dev"), "target": map[string]any{"instanceId": in.ID}, "action": "create_snapshot"}))
	fleet := id(owner.mustJSON(201, "POST", stages, map[string]any{"name": name("fleet"), "target": map[string]any{"deviceGroupId": group}}))
	a.params["fleetStageId"], a.secrets["fleet stage id"] = fleet, fleet
	promotion := id(owner.mustJSON(202, "POST", stages+"/"+stage+"/promote", nil)["promotion"].(map[string]any))
	a.params["pipelineId"], a.params["stageId"], a.params["promotionId"] = pipe, stage, promotion
	a.secrets["pipeline id"], a.secrets["pipeline name"], a.secrets["stage id"], a.secrets["promotion id"] = pipe, name("pipe"), stage, promotion

	prov := owner.mustJSON(201, "POST", "/api/v1/teams/"+teamID+"/provisioning-tokens", map[string]any{"name": name("prov")})
	a.params["provisioningTokenId"], a.secrets["provisioning token id"], a.secrets["provisioning token"] = id(prov), id(prov), prov["token"].(string)
	inv := owner.mustJSON(201, "POST", "/api/v1/teams/"+teamID+"/invitations", map[string]any{"email": name("invitee") + "@example.com", "role": "member"})
	a.params["invitationId"], a.secrets["invitation id"], a.secrets["invited address"] = id(inv), id(inv), name("invitee")+"@example.com"
	a.secrets["invitation link"] = inv["link"].(string)
	hook := owner.mustJSON(201, "POST", "/api/v1/teams/"+teamID+"/webhooks", map[string]any{"name": name("hook"), "url": "https://203.0.113.10/" + name("hook")})
	a.params["webhookId"], a.secrets["webhook id"], a.secrets["webhook secret"], a.secrets["webhook url"] = id(hook), id(hook), hook["secret"].(string), hook["url"].(string)
	rule := owner.mustJSON(201, "POST", "/api/v1/teams/"+teamID+"/alert-rules", map[string]any{"name": name("rule"), "kinds": []string{"instance_crashed"}, "webhookId": id(hook)})
	a.params["ruleId"], a.secrets["alert rule id"], a.secrets["alert rule name"] = id(rule), id(rule), name("rule")
	pat := owner.mustJSON(201, "POST", "/api/v1/user/tokens", map[string]any{"name": name("pat")})
	a.params["userTokenId"], a.secrets["personal token id"], a.secrets["personal token"] = id(pat), id(pat), pat["token"].(string)
	ept := owner.mustJSON(201, "POST", "/api/v1/instances/"+in.ID+"/endpoint-tokens", map[string]any{"name": name("endpoint")})
	a.params["endpointTokenId"], a.secrets["endpoint token id"], a.secrets["endpoint token"] = id(ept), id(ept), ept["token"].(string)
	a.params["ssoConfigurationId"] = domain.NewID() // platform-wide and admin-only: no team owns one, and none is needed to be refused
	return a
}

// operationID finds the operation an instance action answered.
func operationID(t *testing.T, r map[string]any) string {
	t.Helper()
	if op, ok := r["operation"].(map[string]any); ok {
		return op["id"].(string)
	}
	id, ok := r["operationId"].(string)
	require.True(t, ok, "an instance action answers its operation: %v", r)
	return id
}

// buildIntruders makes every caller that must get nothing of team A: team B's users and tokens, no one, and
// team A's owner's credentials once they expired or were revoked.
func (w *crossWorld) buildIntruders(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st := w.env.env.Store
	for _, role := range tenantRoles {
		w.intruders = append(w.intruders, intruder{name: "team B " + role, b: w.users["b-"+role], signedIn: true})
	}
	w.intruders = append(w.intruders, intruder{name: "team B owner's token", b: bearerBrowser(t, w, w.b.secrets["personal token"]), signedIn: true})
	w.intruders = append(w.intruders, intruder{name: "no one", b: newBrowser(t, w.env.env.URL)})

	aOwner := w.userIDs["a-owner"]
	session, hash := domain.NewToken(domain.TokenPrefixSession)
	require.NoError(t, st.InsertSession(ctx, &storage.Session{TokenHash: hash, UserID: aOwner, ExpiresAt: time.Now().Add(-time.Minute)}))
	w.intruders = append(w.intruders, intruder{name: "team A owner's expired session", b: newBrowser(t, w.env.env.URL), headers: map[string]string{"Cookie": "flowyard_session=" + session}})
	expired, hash := domain.NewToken(domain.TokenPrefixUser)
	past := time.Now().Add(-time.Minute)
	require.NoError(t, st.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: "user", Name: "expired", OwnerType: "user", OwnerID: aOwner, ExpiresAt: &past}))
	w.intruders = append(w.intruders, intruder{name: "team A owner's expired token", b: bearerBrowser(t, w, expired)})
	revoked := w.users["a-owner"].mustJSON(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "revoked"})
	require.Equal(t, 204, w.users["a-owner"].do("DELETE", "/api/v1/user/tokens/"+revoked["id"].(string), nil, nil).status)
	w.intruders = append(w.intruders, intruder{name: "team A owner's revoked token", b: bearerBrowser(t, w, revoked["token"].(string))})

	w.intruders = append(w.intruders, intruder{name: "team A's expired provisioning token", b: bearerBrowser(t, w, w.expiredProvisioningToken(t))})
	revokedProv := w.users["a-owner"].mustJSON(201, "POST", "/api/v1/teams/"+w.a.teamID+"/provisioning-tokens", map[string]any{"name": "revoked"})
	require.Equal(t, 204, w.users["a-owner"].do("DELETE", "/api/v1/teams/"+w.a.teamID+"/provisioning-tokens/"+revokedProv["id"].(string), nil, nil).status)
	w.intruders = append(w.intruders, intruder{name: "team A's revoked provisioning token", b: bearerBrowser(t, w, revokedProv["token"].(string))})

	for _, secret := range []string{"device token", "broker password", "provisioning token", "runtime token"} {
		w.intruders = append(w.intruders, intruder{name: "team B " + secret, b: bearerBrowser(t, w, w.b.secrets[secret])})
	}
}

// expiredProvisioningToken stores a provisioning token of team A that expired a minute ago.
func (w *crossWorld) expiredProvisioningToken(t *testing.T) string {
	t.Helper()
	token, hash := domain.NewToken(domain.TokenPrefixProvisioning)
	past := time.Now().Add(-time.Minute)
	require.NoError(t, w.env.env.Store.InsertToken(context.Background(), &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: "provisioning",
		Name: "expired", OwnerType: "team", OwnerID: w.a.teamID, TeamID: &w.a.teamID, ExpiresAt: &past}))
	return token
}

func bearerBrowser(t *testing.T, w *crossWorld, token string) *browser {
	b := newBrowser(t, w.env.env.URL)
	b.bearer = token
	return b
}

// ---- the operations of the document ----

type operation struct {
	method, path string
	schema       map[string]any // request body schema, nil without one
	stream       bool           // answers Server-Sent Events
}

func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	var ops []operation
	for path, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			op := operation{method: strings.ToUpper(method), path: path}
			for _, r := range o.(map[string]any)["responses"].(map[string]any) {
				content, _ := r.(map[string]any)["content"].(map[string]any)
				_, sse := content["text/event-stream"]
				op.stream = op.stream || sse
			}
			if rb, ok := o.(map[string]any)["requestBody"].(map[string]any); ok {
				op.schema = rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// resolve puts a team's objects into a path's parameters.
func (w *crossWorld) resolve(t *testing.T, path string, tn tenant) string {
	t.Helper()
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok && seg != "*" {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		segs[i] = w.paramValue(t, path, name, tn)
	}
	return strings.Join(segs, "/")
}

func (w *crossWorld) paramValue(t *testing.T, path, name string, tn tenant) string {
	t.Helper()
	switch {
	case name == "type":
		return "flows" // the runtime library's rest of the path
	case name == "action" && (strings.Contains(path, "/instances/") || strings.Contains(path, "/devices/")):
		return "restart"
	case name == "action" && strings.Contains(path, "/rollouts/"):
		return "pause"
	case name == "action" && strings.Contains(path, "/promotions/"):
		return "approve"
	case name == "tokenId" && strings.Contains(path, "provisioning-tokens"):
		return tn.params["provisioningTokenId"]
	case name == "tokenId" && strings.Contains(path, "endpoint-tokens"):
		return tn.params["endpointTokenId"]
	case name == "tokenId" && strings.Contains(path, "/user/tokens"):
		return tn.params["userTokenId"]
	}
	if v, ok := tn.params[name]; ok {
		return v
	}
	// A platform catalogue item: the first of its collection.
	collection := path[:strings.Index(path, "{"+name+"}")]
	list := w.users["a-owner"].do("GET", strings.TrimSuffix(collection, "/"), nil, nil)
	var items []map[string]any
	if json.Unmarshal([]byte(list.body), &items) != nil {
		var page struct{ Items []map[string]any }
		_ = json.Unmarshal([]byte(list.body), &page)
		items = page.Items
	}
	require.Equal(t, 200, list.status, "no value for path parameter %s of %s: give team A an object for it", name, path)
	if len(items) == 0 {
		t.Logf("%s: the collection is empty, so {%s} is an ID that does not exist", path, name)
		return domain.NewID()
	}
	return items[0]["id"].(string)
}

// bodyFor builds a plausible body from the operation's schema, every field that names an object (fieldObjects)
// naming team A's: what an intruder sends with team A's IDs in the path.
func (w *crossWorld) bodyFor(op operation) any {
	if op.schema == nil {
		if op.method == "GET" || op.method == "DELETE" {
			return nil
		}
		return map[string]any{}
	}
	return w.fill(op.schema, "")
}

func (w *crossWorld) fill(schema map[string]any, field string) any {
	switch schema["type"] {
	case "object":
		props, _ := schema["properties"].(map[string]any)
		out := map[string]any{}
		for name, p := range props {
			if v := w.fill(p.(map[string]any), name); v != nil {
				out[name] = v
			}
		}
		return out
	case "array":
		if v := w.fill(schema["items"].(map[string]any), field); v != nil {
			return []any{v}
		}
		return []any{}
	case "string":
		return w.stringFor(field)
	case "boolean":
		return true
	}
	return nil // numbers are left to their defaults
}

func (w *crossWorld) stringFor(field string) any {
	if p, ok := fieldObjects[field]; ok {
		return w.a.params[p]
	}
	switch field {
	case "name":
		return "intruder"
	case "email":
		return "b-viewer@example.com"
	case "role":
		return "owner"
	case "every":
		return "1h"
	}
	return nil
}

// sweepReadOnlyRoles has team A's viewer and dashboard user, and its owner's read-only token, call every
// operation that writes (not GET) on team A's objects: neither the permission table nor the token's scope lets
// them write, so each is refused and writes nothing. The editor link is left out: a viewer gets one, for the
// read-only editor, whose requests go to Node-RED with its read-only token, which refuses writes itself
// (editor_test.go, editororigin_test.go). So is the link into a protected instance's address: every member of
// the team may use its endpoints, the dashboard role first (apporigin_test.go).
func (w *crossWorld) sweepReadOnlyRoles(t *testing.T, ops []operation) int {
	t.Helper()
	calls := 0
	for _, op := range ops {
		key := op.method + " " + op.path
		_, public := publicRoutes[key]
		_, own := ownAccountRoutes[key]
		if public || own || op.method == "GET" || strings.HasSuffix(op.path, "/editor-link") ||
			strings.HasSuffix(op.path, "/endpoints-link") {
			continue
		}
		path, body := w.resolve(t, op.path, w.a), w.bodyFor(op)
		for _, role := range []string{"viewer", "dashboard", "owner's read-only token"} {
			calls++
			before, runs := w.dump(t), w.workflowCalls()
			a := w.readOnly[role].do(op.method, path, body, nil)
			what := fmt.Sprintf("%s as team A's %s", key, role)
			assert.Contains(t, []int{401, 403, 404, 429}, a.status, "%s: %s", what, a.body)
			w.checkNoWrite(t, what, false, before, w.dump(t))
			assert.Equal(t, runs, w.workflowCalls(), "%s: no workflow was started or signalled", what)
		}
	}
	return calls
}

// forgedOrigins are the headers a browser adds when a page of another origin sends a request: team B's
// Node-RED serves its flows' pages on the platform's host at another port (the same site, so the SameSite=Lax
// session cookie goes along), or any other site; an older browser sends Origin alone, an opaque origin "null".
var forgedOrigins = []map[string]string{
	{"Origin": "http://127.0.0.1:1880", "Sec-Fetch-Site": "same-site"},
	{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
	{"Origin": "http://127.0.0.1:1880"},
	{"Origin": "null"}, // a sandboxed frame or a data: page
}

// sweepForgedRequests has such a page drive the browser of team A's owner into every write: without a
// pre-flight a page may send a body-less or form POST, and the browser adds the owner's session cookie. Each is
// refused and writes nothing. (Other methods need a pre-flight, which the API never grants; they are sent too.)
func (w *crossWorld) sweepForgedRequests(t *testing.T, ops []operation) int {
	t.Helper()
	calls := 0
	for _, op := range ops {
		key := op.method + " " + op.path
		if _, public := publicRoutes[key]; public || op.method == "GET" {
			continue
		}
		path := w.resolve(t, op.path, w.a)
		for _, origin := range forgedOrigins {
			calls++
			headers := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			maps.Copy(headers, origin)
			before, runs := w.dump(t), w.workflowCalls()
			a := w.users["a-owner"].do(op.method, path, nil, headers)
			what := fmt.Sprintf("%s from %s", key, origin["Origin"])
			assert.Contains(t, []int{400, 401, 403, 404}, a.status, "%s: %s", what, a.body)
			w.checkNoWrite(t, what, false, before, w.dump(t))
			assert.Equal(t, runs, w.workflowCalls(), "%s: no workflow was started or signalled", what)
		}
	}
	// The platform's own pages still may: the origin the request came to, or the configured public URL.
	for i, origin := range []string{w.env.env.URL, "http://forge.test"} {
		headers := map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"}
		a := w.users["a-owner"].do("POST", "/api/v1/user/tokens", map[string]any{"name": fmt.Sprint("own page ", i)}, headers)
		assert.Equal(t, 201, a.status, "a change from %s: %s", origin, a.body)
	}
	return calls
}

// ---- the checks ----

func (w *crossWorld) checkAnswer(t *testing.T, key string, in intruder, a answer) {
	t.Helper()
	_, ownAccount := ownAccountRoutes[key]
	switch {
	case a.status == 401 || a.status == 403 || a.status == 404:
	case a.status == 429: // an abuse limit (provisioning attempts per address) refuses before anything else
	case ownAccount && in.signedIn && a.status < 500: // the caller's own business (a taken slug answers 409)
	default:
		t.Errorf("%s as %s: status %d, want 401, 403 or 404: %s", key, in.name, a.status, a.body)
	}
	for what, s := range w.a.secrets {
		if strings.Contains(a.body, s) {
			t.Errorf("%s as %s: the answer shows team A's %s: %s", key, in.name, what, a.body)
		}
	}
}

// dump renders every table's rows.
func (w *crossWorld) dump(t *testing.T) map[string][]string {
	t.Helper()
	d, err := w.env.env.Store.DumpTables(context.Background())
	require.NoError(t, err)
	return d
}

// checkNoWrite compares the database before and after a route's calls. Refused calls write nothing; where a
// caller may act on its own (own), rows may change, but no row naming team A.
func (w *crossWorld) checkNoWrite(t *testing.T, what string, own bool, before, after map[string][]string) {
	t.Helper()
	for table, rows := range after {
		changed := append(missing(before[table], rows), missing(rows, before[table])...)
		for _, row := range changed {
			if !own {
				t.Errorf("%s: a row of %s was written: %s", what, table, row)
			} else if secret, ok := w.namesTenantA(row); ok {
				t.Errorf("%s: a row of %s naming team A's %s was written: %s", what, table, secret, row)
			}
		}
	}
	for table := range before {
		if _, ok := after[table]; !ok {
			t.Errorf("%s: table %s went", what, table)
		}
	}
}

// namesTenantA tells which of team A's IDs, names or secrets a text holds.
func (w *crossWorld) namesTenantA(text string) (string, bool) {
	for what, s := range w.a.secrets {
		if strings.Contains(text, s) {
			return what, true
		}
	}
	return "", false
}

// missing returns the rows of a that b does not hold.
func missing(a, b []string) []string {
	var out []string
	for _, r := range a {
		if !slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	return out
}

func (w *crossWorld) workflowCalls() string {
	w.schedules.mu.Lock()
	calls := w.schedules.calls
	w.schedules.mu.Unlock()
	return fmt.Sprint(w.runs.count(), len(w.rollouts.params), len(w.promotions.params), len(w.promotions.decisions), calls)
}

// checkEditorWebsocket opens team A's editor websocket as each intruder, with whatever cookie or token it holds,
// and with team B's owner's own editor session: refused, and nothing reaches Node-RED.
func (w *crossWorld) checkEditorWebsocket(t *testing.T) {
	t.Helper()
	addr := hostOf(t, w.env.env.URL)
	editorA := w.editorOrigin(t, w.a.params["instanceId"])
	ownB := openEditor(t, w.users["b-owner"], w.b.params["instanceId"])
	callers := map[string]http.Header{"team B owner's editor session for team B": {"Cookie": {ownB.cookieHeader()}}}
	for _, in := range w.intruders {
		h := http.Header{}
		for k, v := range in.headers {
			h.Set(k, v)
		}
		if c := in.b.cookieHeader(); c != "" {
			h.Set("Cookie", c)
		}
		if in.b.bearer != "" {
			h.Set("Authorization", "Bearer "+in.b.bearer)
		}
		callers[in.name] = h
	}
	for name, h := range callers {
		h.Set("Origin", editorA)
		_, res, err := dialEditorComms(t, addr, wsURL(editorA)+"/comms", h)
		require.Error(t, err, name)
		require.NotNil(t, res, name)
		assert.Equal(t, 401, res.StatusCode, "editor websocket as %s", name)
		got := newEditorBrowser(t, editorA, addr).do("GET", "/flows", nil, map[string]string{"Cookie": h.Get("Cookie"), "Authorization": h.Get("Authorization")})
		assert.Equal(t, 401, got.status, "team A's editor as %s", name)
	}
	assert.Zero(t, w.backend.count(), "nothing reached team A's Node-RED")
}

// editorOrigin is the editor origin of an instance, as the links name it (the public URL, http://forge.test, has
// no port).
func (w *crossWorld) editorOrigin(t *testing.T, instanceID string) string {
	t.Helper()
	return "http://" + instanceID + ".editor.localhost"
}

// checkEditorTraversal has team B's owner, who may open team B's editor, climb from it into team A's: with paths
// (which reach team B's Node-RED, inside its admin root, or nothing), and with team B's editor cookie sent to
// team A's editor host. Nothing reaches team A's Node-RED.
func (w *crossWorld) checkEditorTraversal(t *testing.T) {
	t.Helper()
	a, b := w.a.params["instanceId"], w.b.params["instanceId"]
	editorB := openEditor(t, w.users["b-owner"], b)
	for _, p := range []string{"/../" + a + "/flows", "/%2e%2e/" + a + "/flows", "/..%2f" + a + "/flows", "/..%2f..%2feditor%2f" + a + "%2fflows",
		"/../../editor/" + a + "/flows", "//" + a + ".editor.localhost/flows"} {
		got := editorB.do("GET", p, nil, nil)
		assert.NotContains(t, got.body, "path=/admin/"+a, p)
		if last := w.backendB.last(); got.status == 200 && last != nil {
			assert.True(t, strings.HasPrefix(last.URL.Path, "/admin/"), "%s reached %s", p, last.URL.Path)
		}
	}
	hostA := strings.TrimPrefix(w.editorOrigin(t, a), "http://")
	for _, host := range []string{hostA, strings.ToUpper(hostA), hostA + ".", b + "." + hostA} {
		got := editorB.do("GET", "/flows", nil, map[string]string{"Host": host, "Cookie": editorB.cookieHeader()})
		assert.Contains(t, []int{401, 404}, got.status, "team B's editor cookie on %s", host)
	}
	assert.Zero(t, w.backend.count(), "no traversal reached team A's Node-RED")
	require.Equal(t, 200, editorB.do("GET", "/flows", nil, nil).status, "team B's owner reaches its own editor")
	assert.Equal(t, "/admin/flows", w.backendB.last().URL.Path)
	assert.Zero(t, w.backend.count())
}

// checkDeviceClaims has team B's device report that it runs team A's application, instance and snapshot: the
// platform records none of them (a device's active snapshot feeds pipelines' use_active_snapshot stages).
func (w *crossWorld) checkDeviceClaims(t *testing.T) {
	t.Helper()
	agent := bearerBrowser(t, w, w.b.secrets["device token"])
	report := map[string]any{"state": "running", "ownerType": "application", "application": w.a.params["applicationId"],
		"project": w.a.params["instanceId"], "snapshot": w.a.params["snapshotId"], "settings": nil, "agentVersion": "4.2.1"}
	before := w.dump(t)
	got := agent.do("POST", "/api/v1/devices/"+w.b.params["deviceId"]+"/live/state", report, nil)
	assert.Contains(t, []int{200, 409}, got.status, got.body)
	w.checkNoWrite(t, "team B's device claiming team A's objects", true, before, w.dump(t))
	dev := w.users["b-owner"].mustJSON(200, "GET", "/api/v1/devices/"+w.b.params["deviceId"], nil)
	assert.Equal(t, "running", dev["state"], "the report was recorded")
	raw, _ := json.Marshal(dev)
	if secret, ok := w.namesTenantA(string(raw)); ok {
		t.Errorf("team B's device shows team A's %s: %s", secret, raw)
	}
}

// checkOwnViews has team B's owner read every GET operation on team B's own objects (its lists, audit log,
// devices, catalogue…): none shows anything of team A, and none writes. Event streams are left to the live events' tests, which
// check each event's permission.
func (w *crossWorld) checkOwnViews(t *testing.T, ops []operation) int {
	t.Helper()
	n := 0
	for _, op := range ops {
		key := op.method + " " + op.path
		if _, public := publicRoutes[key]; public || op.method != "GET" || op.stream {
			continue
		}
		n++
		before := w.dump(t)
		got := w.users["b-owner"].do("GET", w.resolve(t, op.path, w.b), nil, nil)
		assert.Less(t, got.status, 500, "%s: %s", key, got.body)
		// A read writes nothing: any page could make the browser send it, with the cookie (an image, a link).
		w.checkNoWrite(t, key+" as team B's owner", false, before, w.dump(t))
		if secret, ok := w.namesTenantA(got.body); ok {
			t.Errorf("%s on team B's objects shows team A's %s: %s", key, secret, got.body)
		}
	}
	return n
}

// checkTeamAStillWorks shows the sweep was not vacuous: team A's owner reaches what the intruders could not,
// the editor included.
func (w *crossWorld) checkTeamAStillWorks(t *testing.T) {
	t.Helper()
	owner := w.users["a-owner"]
	for _, p := range []string{"/api/v1/teams/{teamId}", "/api/v1/instances/{instanceId}", "/api/v1/devices/{deviceId}",
		"/api/v1/pipelines/{pipelineId}", "/api/v1/rollouts/{rolloutId}", "/api/v1/promotions/{promotionId}", "/api/v1/snapshots/{snapshotId}"} {
		assert.Equal(t, 200, owner.do("GET", w.resolve(t, p, w.a), nil, nil).status, p)
	}
	assert.Equal(t, 200, openEditor(t, owner, w.a.params["instanceId"]).do("GET", "/flows", nil, nil).status)
	assert.Equal(t, 1, w.backend.count(), "team A's owner reaches its editor")
}
