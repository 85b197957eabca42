package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// routeCase is one route with the least team role that may call it, written out here (independently of the
// permission table in domain) from FlowFuse's matrix, so a change to the table shows up as a failing test.
type routeCase struct {
	method, path string // path may hold {team}, {app}, {user:<role>}
	body         any
	minRole      string // owner, member, viewer, dashboard; "any" = any signed-in user; "admin" = platform admins
	success      int
	self         string // the role whose holder acts on themself here (leaving a team needs no owner)
}

var routeCases = []routeCase{
	{"GET", "/api/v1/teams/{team}", nil, "dashboard", 200, ""},
	{"PATCH", "/api/v1/teams/{team}", map[string]any{"name": "Renamed"}, "owner", 200, ""},
	{"GET", "/api/v1/teams/{team}/audit-log", nil, "owner", 200, ""},
	{"GET", "/api/v1/teams/{team}/members", nil, "viewer", 200, ""},
	{"POST", "/api/v1/teams/{team}/members", map[string]any{"email": "outsider@example.com", "role": "viewer"}, "owner", 201, ""},
	{"GET", "/api/v1/teams/{team}/invitations", nil, "owner", 200, ""},
	{"POST", "/api/v1/teams/{team}/invitations", map[string]any{"email": "invitee@example.com", "role": "viewer"}, "owner", 201, ""},
	{"PATCH", "/api/v1/teams/{team}/members/{user:dashboard}", map[string]any{"role": "viewer"}, "owner", 200, ""},
	{"DELETE", "/api/v1/teams/{team}/members/{user:dashboard}", nil, "owner", 204, "dashboard"},
	{"GET", "/api/v1/teams/{team}/applications", nil, "viewer", 200, ""},
	{"POST", "/api/v1/teams/{team}/applications", map[string]any{"name": "new-app"}, "owner", 201, ""},
	{"GET", "/api/v1/applications/{app}", nil, "viewer", 200, ""},
	{"PATCH", "/api/v1/applications/{app}", map[string]any{"description": "d"}, "owner", 200, ""},
	{"DELETE", "/api/v1/applications/{app}", nil, "owner", 204, ""},
	{"DELETE", "/api/v1/teams/{team}", nil, "owner", 204, ""},
	{"GET", "/api/v1/teams", nil, "any", 200, ""},
	{"POST", "/api/v1/teams", map[string]any{"name": "Mine {n}"}, "any", 201, ""},
	{"GET", "/api/v1/stacks", nil, "any", 200, ""},
	{"GET", "/api/v1/templates", nil, "any", 200, ""},
	{"GET", "/api/v1/team-types", nil, "any", 200, ""},
	{"GET", "/api/v1/instance-types", nil, "any", 200, ""},
	{"GET", "/api/v1/blueprints", nil, "any", 200, ""},
	{"POST", "/api/v1/blueprints", map[string]any{"name": "bp", "flows": []any{}}, "admin", 201, ""},
	{"POST", "/api/v1/users", map[string]any{"email": "new@example.com", "password": "long enough pw"}, "admin", 201, ""},
	{"GET", "/api/v1/users", nil, "admin", 200, ""},
	{"GET", "/api/v1/users/{user:dashboard}", nil, "admin", 200, ""},
	{"PATCH", "/api/v1/users/{user:dashboard}", map[string]any{"name": "dashboard"}, "admin", 200, ""},
	{"PATCH", "/api/v1/settings", map[string]any{"signUp": false}, "admin", 200, ""},
	{"GET", "/api/v1/teams/{team}/events", nil, "dashboard", 200, ""},
	{"GET", "/api/v1/instances/{instance}/logs/stream", nil, "viewer", 200, ""},
}

var roleLevel = map[string]int{"dashboard": 5, "viewer": 10, "member": 30, "owner": 50}

// expected is the status a caller should get.
func (rc routeCase) expected(who string) int {
	teamScoped := strings.Contains(rc.path, "{team}") || strings.Contains(rc.path, "{app}") || strings.Contains(rc.path, "{instance}")
	switch {
	case who == "anonymous":
		return 401
	case who == "admin", who == rc.self:
		return rc.success
	case rc.method == "POST" && strings.HasSuffix(rc.path, "/members") && roleLevel[who] >= roleLevel[rc.minRole]:
		return 202 // a team owner's "add" invites the address (a platform admin adds the account at once)
	case rc.minRole == "any":
		return rc.success
	case who == "outsider" && teamScoped:
		return 404 // not yours looks like not found, even where only platform admins may act
	case rc.minRole == "admin":
		return 403
	case roleLevel[who] >= roleLevel[rc.minRole]:
		return rc.success
	}
	return 403
}

// TestPermissionMatrix calls every team-scoped route as every role, a member of another team, a platform admin
// and no one, each on a fresh team, and checks the status and that refused calls wrote nothing. An event
// stream's answer is its status (apitest does not read a stream's endless body).
func TestPermissionMatrix(t *testing.T) {
	w := newWorld(t, "sqlite")
	callers := []string{"owner", "member", "viewer", "dashboard", "outsider", "anonymous", "admin"}
	n := 0
	for _, rc := range routeCases {
		for _, who := range callers {
			n++
			name := fmt.Sprintf("%s %s as %s", rc.method, rc.path, who)
			t.Run(name, func(t *testing.T) {
				teamID := w.newTeam(t, fmt.Sprintf("perm-%d", n))
				appID := w.owner().Must(201, "POST", "/api/v1/teams/"+teamID+"/applications", map[string]any{"name": "app"}).String("id")
				path := strings.NewReplacer("{team}", teamID, "{app}", appID).Replace(rc.path)
				if strings.Contains(path, "{instance}") {
					path = strings.ReplaceAll(path, "{instance}", storeInstance(t, w.env.Store, teamID, appID, fmt.Sprint("inst-", n)).ID)
				}
				for role, id := range w.userIDs {
					path = strings.ReplaceAll(path, "{user:"+role+"}", id)
				}
				auditBefore := w.admin.Must(200, "GET", "/api/v1/teams/"+teamID+"/audit-log?limit=500", nil).Raw
				r := w.byRole[who].Do(rc.method, path, numbered(rc.body, n))
				want := rc.expected(who)
				assert.Equal(t, want, r.Status, string(r.Raw))
				if want >= 400 {
					assert.NotEmpty(t, r.String("code"), "refusals carry the envelope")
					auditAfter := w.admin.Do("GET", "/api/v1/teams/"+teamID+"/audit-log?limit=500", nil).Raw
					assert.Equal(t, string(auditBefore), string(auditAfter), "a refused call writes nothing")
				}
				if want == 404 {
					assert.NotContains(t, string(r.Raw), teamID, "a 404 leaks nothing of the other team")
				}
			})
		}
	}
}

// numbered replaces {n} in a body's strings, so bodies that create named things stay unique.
func numbered(body any, n int) any {
	if body == nil {
		return nil
	}
	b, _ := json.Marshal(body)
	return strings.ReplaceAll(string(b), "{n}", fmt.Sprint(n))
}
