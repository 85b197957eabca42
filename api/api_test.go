package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func eachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range storagetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestLoginLogoutAndTokens(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		anon := w.env.Client(t)
		bad := anon.Do("POST", "/api/v1/auth/login", map[string]string{"email": "owner@example.com", "password": "wrong-password"})
		unknown := anon.Do("POST", "/api/v1/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong-password"})
		assert.Equal(t, 401, bad.Status)
		assert.Equal(t, bad.Raw, unknown.Raw, "unknown e-mail and wrong password answer the same")

		owner := w.byRole["owner"]
		me := owner.Must(200, "GET", "/api/v1/user", nil)
		assert.Equal(t, "owner@example.com", me.String("email"))

		tok := owner.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"})
		token := tok.String("token")
		require.True(t, strings.HasPrefix(token, "fyu_"), token)
		bearer := w.env.Client(t)
		bearer.Bearer = token
		assert.Equal(t, "owner@example.com", bearer.Must(200, "GET", "/api/v1/user", nil).String("email"))
		list := owner.Must(200, "GET", "/api/v1/user/tokens", nil)
		assert.NotContains(t, string(list.Raw), token, "a token is shown only once")

		owner.Must(204, "DELETE", "/api/v1/user/tokens/"+tok.String("id"), nil)
		assert.Equal(t, 401, bearer.Do("GET", "/api/v1/user", nil).Status, "a revoked token stops working at once")

		readOnly := w.env.Client(t)
		readOnly.Bearer = owner.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ro", "scopes": []string{"read"}}).String("token")
		readOnly.Must(200, "GET", "/api/v1/teams", nil)
		assert.Equal(t, 403, readOnly.Do("POST", "/api/v1/teams", map[string]any{"name": "x"}).Status)

		owner.Must(204, "POST", "/api/v1/auth/logout", nil)
		assert.Equal(t, 401, owner.Do("GET", "/api/v1/user", nil).Status)
	})
}

func TestLoginIsRateLimited(t *testing.T) {
	w := newWorld(t, "sqlite", func(d *api.Deps) { d.Config.Limits.LoginDelay = time.Minute })
	c := w.env.Client(t)
	var last int
	for i := 0; i < 11; i++ {
		last = c.Do("POST", "/api/v1/auth/login", map[string]string{"email": "viewer@example.com", "password": fmt.Sprintf("guess-%d-x", i)}).Status
	}
	assert.Equal(t, 429, last)
	r := c.Do("POST", "/api/v1/auth/login", map[string]string{"email": "viewer@example.com", "password": testPassword})
	assert.Equal(t, 429, r.Status, "the right password does not bypass the account's delay while it runs")
	assert.Equal(t, "too_many_sign_ins", r.String("code"))
}

func TestBadInputGetsTheEnvelopeAndWritesNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		cases := []struct {
			name, method, path string
			body               any
			status             int
			code, field        string
		}{
			{"unknown field", "POST", "/api/v1/teams", `{"name":"x","sulg":"abc"}`, 400, "invalid_request", "sulg"},
			{"wrong type", "POST", "/api/v1/teams", `{"name":5}`, 400, "invalid_request", "name"},
			{"not json", "POST", "/api/v1/teams", `{"name":`, 400, "invalid_json", ""},
			{"two values", "POST", "/api/v1/teams", `{"name":"a"} {}`, 400, "invalid_json", ""},
			{"bad slug", "POST", "/api/v1/teams", map[string]any{"name": "x", "slug": "Bad Slug"}, 400, "invalid_request", "slug"},
			{"long name", "POST", "/api/v1/teams", map[string]any{"name": strings.Repeat("n", 101), "slug": "long-name"}, 400, "invalid_request", "name"},
			{"duplicate slug", "POST", "/api/v1/teams", map[string]any{"name": "dup", "slug": "team-a"}, 409, "slug_taken", ""},
			{"deep json", "POST", "/api/v1/teams", strings.Repeat("[", 40) + strings.Repeat("]", 40), 400, "json_too_deep", ""},
			{"bad email", "POST", "/api/v1/teams/" + w.teamID + "/members", map[string]any{"email": "not-an-email", "role": "member"}, 400, "invalid_request", "email"},
			{"bad role", "POST", "/api/v1/teams/" + w.teamID + "/members", map[string]any{"email": "outsider@example.com", "role": "god"}, 400, "invalid_request", "role"},
			{"bad limit", "GET", "/api/v1/teams?limit=9999", nil, 400, "invalid_request", "limit"},
			{"bad cursor", "GET", "/api/v1/teams?cursor=%%%", nil, 400, "invalid_request", "cursor"},
			{"unknown route", "GET", "/api/v1/nope", nil, 404, "route_not_found", ""},
			{"empty app name", "POST", "/api/v1/teams/" + w.teamID + "/applications", map[string]any{"name": " "}, 400, "invalid_request", "name"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := w.admin.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil)
				r := owner.Do(tc.method, tc.path, tc.body)
				assert.Equal(t, tc.status, r.Status, string(r.Raw))
				assert.Equal(t, tc.code, r.String("code"), string(r.Raw))
				assert.NotEmpty(t, r.String("message"))
				if tc.field != "" {
					require.NotEmpty(t, r.Body["validations"], string(r.Raw))
					assert.Equal(t, tc.field, r.Body["validations"].([]any)[0].(map[string]any)["field"])
				}
				after := w.admin.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil)
				assert.Equal(t, before.Raw, after.Raw, "nothing was written")
			})
		}
		teams := owner.Must(200, "GET", "/api/v1/teams", nil)
		assert.Len(t, teams.Body["items"], 1, "no bad request created a team")
	})
}

// TestBodyTooLarge sends only the headers of an oversized request: the server must refuse on the declared
// length, before reading the body.
func TestBodyTooLarge(t *testing.T) {
	env := apitest.Start(t, "sqlite")
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 2<<20)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 413, resp.StatusCode)
	assert.Contains(t, string(body), `"code":"body_too_large"`)
}

func TestLastOwnerCannotLeaveOrBeDemoted(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		base := "/api/v1/teams/" + w.teamID + "/members/"
		r := owner.Do("PATCH", base+w.userIDs["owner"], map[string]any{"role": "member"})
		assert.Equal(t, 409, r.Status)
		assert.Equal(t, "last_owner", r.String("code"))
		assert.Equal(t, 409, owner.Do("DELETE", base+w.userIDs["owner"], nil).Status)

		owner.Must(200, "PATCH", base+w.userIDs["member"], map[string]any{"role": "owner"})
		owner.Must(204, "DELETE", base+w.userIDs["owner"], nil)
		assert.Equal(t, 404, owner.Do("GET", "/api/v1/teams/"+w.teamID, nil).Status, "a former member no longer sees the team")

		viewer := w.byRole["viewer"]
		viewer.Must(204, "DELETE", base+w.userIDs["viewer"], nil)
	})
}

func TestMemberLimitNamesTheLimit(t *testing.T) {
	w := newWorld(t, "sqlite")
	tt := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Tiny", "selfService": true, "properties": map[string]any{"limits": map[string]any{"members": 2}}})
	team := w.byRole["outsider"].Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Tiny team", "teamTypeId": tt.String("id")})
	path := "/api/v1/teams/" + team.String("id") + "/members"
	w.admin.Must(201, "POST", path, map[string]any{"email": "viewer@example.com", "role": "viewer"})
	r := w.admin.Do("POST", path, map[string]any{"email": "member@example.com", "role": "member"})
	assert.Equal(t, 409, r.Status)
	assert.Equal(t, "limit_members", r.String("code"))
}

func TestPaginationWalksEveryItemOnce(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		for i := 0; i < 7; i++ {
			owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/applications", map[string]any{"name": fmt.Sprintf("app-%d", i)})
		}
		var names []string
		cursor := ""
		for pages := 0; pages < 10; pages++ {
			r := owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/applications?limit=3&cursor="+cursor, nil)
			for _, it := range r.Body["items"].([]any) {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			if cursor = r.String("next"); cursor == "" {
				break
			}
		}
		assert.Equal(t, []string{"app-0", "app-1", "app-2", "app-3", "app-4", "app-5", "app-6"}, names)
	})
}

func TestPlatformObjectsInUseCannotBeDeleted(t *testing.T) {
	w := newWorld(t, "sqlite")
	types := w.owner().Must(200, "GET", "/api/v1/team-types", nil)
	id := types.Body["items"].([]any)[0].(map[string]any)["id"].(string)
	r := w.admin.Do("DELETE", "/api/v1/team-types/"+id, nil)
	assert.Equal(t, 409, r.Status)
	assert.Equal(t, "in_use", r.String("code"))

	st := w.admin.Must(201, "POST", "/api/v1/stacks", map[string]any{"name": "nr5", "nodeRedVersion": "5.0.7", "nodeVersion": "22.23.3", "memoryMB": 512, "cpuPercent": 100})
	assert.Equal(t, "5.0.7", st.String("nodeRedVersion"))
	bad := w.admin.Do("POST", "/api/v1/stacks", map[string]any{"name": "bad", "nodeRedVersion": "latest; rm -rf /", "memoryMB": 1, "cpuPercent": 100})
	assert.Equal(t, 400, bad.Status)
	assert.Len(t, bad.Body["validations"], 2)
	w.admin.Must(204, "DELETE", "/api/v1/stacks/"+st.String("id"), nil)

	tpl := w.admin.Do("POST", "/api/v1/templates", map[string]any{"name": "t", "settings": map[string]any{"httpAdminRoot": "/x"}})
	assert.Equal(t, 400, tpl.Status, "templates hold only settings Flowyard manages")
}

func (w *world) owner() *apitest.Client { return w.byRole["owner"] }
