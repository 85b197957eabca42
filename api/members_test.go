package api_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A team owner can neither learn who has an account nor add anyone without their consent: an unregistered
// address, a user of no team, the platform admin and a current member all get the same answer, byte for byte,
// and nothing changes. A platform admin adds an existing account directly.
func TestAddingAMemberAnswersAlikeForEveryAddress(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		path := "/api/v1/teams/" + w.teamID + "/members"
		members := owner.Must(200, "GET", path+"?limit=500", nil).Raw
		auditLog := owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil).Raw

		unregistered := owner.Do("POST", path, map[string]any{"email": "nobody@example.com", "role": "member"})
		assert.Equal(t, 403, unregistered.Status, "%s", unregistered.Raw)
		assert.Equal(t, "invitations_unavailable", unregistered.String("code"))
		for _, email := range []string{"outsider@example.com", "admin@example.com", "member@example.com", "Outsider@Example.com"} {
			r := owner.Do("POST", path, map[string]any{"email": email, "role": "member"})
			assert.Equal(t, unregistered.Status, r.Status, email)
			assert.Equal(t, string(unregistered.Raw), string(r.Raw), email)
			assert.Equal(t, unregistered.Header.Get("Content-Type"), r.Header.Get("Content-Type"), email)
		}
		assert.Equal(t, string(members), string(owner.Must(200, "GET", path+"?limit=500", nil).Raw), "nobody joined")
		assert.Equal(t, string(auditLog), string(owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil).Raw), "nothing was recorded")
		assert.Equal(t, 404, w.byRole["outsider"].Do("GET", "/api/v1/teams/"+w.teamID, nil).Status, "the outsider is still outside")

		w.admin.Must(201, "POST", path, map[string]any{"email": "outsider@example.com", "role": "viewer"})
		w.byRole["outsider"].Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
	})
}
