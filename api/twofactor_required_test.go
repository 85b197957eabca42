package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// assertHeldToTwoFactor checks that a client is held to enrolling on a route.
func assertHeldToTwoFactor(t *testing.T, c *apitest.Client, method, path string, body any) {
	t.Helper()
	r := c.Do(method, path, body)
	assert.Equal(t, 403, r.Status, method+" "+path)
	assert.Equal(t, "two_factor_required", r.String("code"), method+" "+path)
}

// TestRequireTwoFactorHoldsSessionsUntilEnrolled: off by default; only a platform admin turns it on, and only one
// with two-factor sign-in on (else they would hold themselves). While on, a signed-in user without it reaches
// only enrolment, who they are, the settings, the password change and sign-out (403 two_factor_required
// elsewhere), and is let through once enrolled; personal access tokens keep working; turning it off frees everyone.
func TestRequireTwoFactorHoldsSessionsUntilEnrolled(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newTwoFactorWorld(t, dialect)
		member, viewer := w.byRole["member"], w.byRole["viewer"]
		members := "/api/v1/teams/" + w.teamID + "/members"
		assert.Equal(t, false, w.admin.Must(200, "GET", "/api/v1/settings", nil).Body["requireTwoFactor"], "off by default")
		member.Must(200, "GET", members, nil)
		token := member.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")

		on := map[string]any{"requireTwoFactor": true}
		r := w.byRole["owner"].Do("PATCH", "/api/v1/settings", on)
		assert.Equal(t, 403, r.Status, "only platform admins change settings")
		r = w.admin.Do("PATCH", "/api/v1/settings", on)
		assert.Equal(t, 409, r.Status)
		assert.Equal(t, "two_factor_off", r.String("code"), "an admin without two-factor sign-in would hold themselves")
		assert.Equal(t, false, w.admin.Must(200, "GET", "/api/v1/settings", nil).Body["requireTwoFactor"], "nothing changed")
		w.enrol(t, w.admin)
		assert.Equal(t, true, w.admin.Must(200, "PATCH", "/api/v1/settings", on).Body["requireTwoFactor"])

		w.admin.Must(200, "GET", members, nil) // enrolled: not held
		for _, route := range [][2]string{{"GET", members}, {"GET", "/api/v1/teams"}, {"POST", "/api/v1/user/tokens"},
			{"GET", "/api/v1/teams/" + w.teamID}, {"PATCH", "/api/v1/settings"}} {
			assertHeldToTwoFactor(t, member, route[0], route[1], map[string]any{"name": "x"})
		}
		assert.Equal(t, "member@example.com", member.Must(200, "GET", "/api/v1/user", nil).String("email"))
		assert.Equal(t, true, member.Must(200, "GET", "/api/v1/settings", nil).Body["requireTwoFactor"])
		assert.Equal(t, false, member.Must(200, "GET", "/api/v1/user/two-factor", nil).Body["enabled"])
		bearer := w.env.Client(t)
		bearer.Bearer = token
		bearer.Must(200, "GET", members, nil) // a personal access token is not held

		viewer.Must(204, "POST", "/api/v1/user/password", change(testPassword, newPassword)) // reachable while held
		w.enrol(t, member)
		member.Must(200, "GET", members, nil)
		member.Must(200, "GET", "/api/v1/teams", nil)

		assertHeldToTwoFactor(t, w.byRole["dashboard"], "GET", members, nil)
		w.byRole["dashboard"].Must(204, "POST", "/api/v1/auth/logout", nil)
		w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"requireTwoFactor": false})
		w.byRole["owner"].Must(200, "GET", members, nil)
	})
}

// TestRequireTwoFactorExemptsSingleSignOnUsers: a user of a single sign-on domain is not held (the provider decides
// how its users prove who they are), while a user of another domain is.
func TestRequireTwoFactorExemptsSingleSignOnUsers(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newSSOWorld(t, dialect)
		require.NoError(t, w.env.Store.PutPlatformSetting(context.Background(), "requireTwoFactor", "true"))
		alice := w.env.Client(t)
		require.Equal(t, 303, w.ssoSignIn(t, alice, "alice@corp.example", nil).StatusCode)
		alice.Must(200, "GET", "/api/v1/teams", nil)
		assertHeldToTwoFactor(t, w.byRole["member"], "GET", "/api/v1/teams", nil)
	})
}
