package api_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

var resetLink = regexp.MustCompile(`/reset-password/(fyr_[0-9a-z]+)`)

func change(current, next string) map[string]any {
	return map[string]any{"currentPassword": current, "newPassword": next}
}

// TestChangingThePasswordEndsOtherSessionsOnly: a wrong current password, a short one and a common one are
// refused without change; a change keeps the session that made it and personal tokens, and ends the others.
func TestChangingThePasswordEndsOtherSessionsOnly(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		here := w.byRole["member"]
		elsewhere := w.env.Client(t)
		elsewhere.Login("member@example.com", testPassword)
		pat := here.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")

		before := dump(t, w.env.Store)
		wrong := here.Do("POST", "/api/v1/user/password", change("not-my-password", newPassword))
		assert.Equal(t, 422, wrong.Status)
		assert.Equal(t, "wrong_password", wrong.String("code"))
		for _, bad := range []string{"short-pw", "Password1234", "qwerty123456", testPassword} {
			r := here.Do("POST", "/api/v1/user/password", change(testPassword, bad))
			assert.Equal(t, 400, r.Status, "%s: %s", bad, r.Raw)
			assert.Equal(t, "invalid_request", r.String("code"), bad)
		}
		assert.Equal(t, before, dump(t, w.env.Store), "refused changes change nothing")

		here.Must(204, "POST", "/api/v1/user/password", change(testPassword, newPassword))
		here.Must(200, "GET", "/api/v1/user", nil)
		assert.Equal(t, 401, elsewhere.Do("GET", "/api/v1/user", nil).Status, "the other session ended")
		token := w.env.Client(t)
		token.Bearer = pat
		token.Must(200, "GET", "/api/v1/user", nil)
		assert.Equal(t, 401, w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "member@example.com", "password": testPassword}).Status)
		w.env.Client(t).Login("member@example.com", newPassword)
		here.Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
	})
}

// TestPasswordResetByMail: asking for an unknown and a known address answers alike and mails only the known
// one; the link sets a new password once and ends every session; used, forged and expired links change nothing.
func TestPasswordResetByMail(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect)
		anon := w.env.Client(t)
		unknown := anon.Must(202, "POST", "/api/v1/auth/password-reset", map[string]any{"email": "nobody@example.com"})
		known := anon.Must(202, "POST", "/api/v1/auth/password-reset", map[string]any{"email": "Viewer@Example.com"})
		assert.Equal(t, string(unknown.Raw), string(known.Raw))
		to, text := w.deliver(t, 1)
		assert.Equal(t, "viewer@example.com", to)
		assert.Len(t, w.smtp.Messages(), 1, "nothing is mailed for an unknown address")
		m := resetLink.FindStringSubmatch(text)
		require.NotNil(t, m, text)
		token := m[1]

		weak := anon.Do("POST", "/api/v1/auth/password-reset/"+token, map[string]any{"newPassword": "letmein"})
		assert.Equal(t, 400, weak.Status, "the policy applies, and the link is not used up: %s", weak.Raw)
		anon.Must(204, "POST", "/api/v1/auth/password-reset/"+token, map[string]any{"newPassword": newPassword})
		assert.Equal(t, 401, w.byRole["viewer"].Do("GET", "/api/v1/user", nil).Status, "every session ended")
		w.env.Client(t).Login("viewer@example.com", newPassword)

		forged, _ := domain.NewToken(domain.TokenPrefixReset)
		expired, hash := domain.NewToken(domain.TokenPrefixReset)
		require.NoError(t, w.env.Store.InsertPasswordReset(context.Background(), &storage.PasswordReset{TokenHash: hash,
			UserID: w.userIDs["member"], ExpiresAt: time.Now().Add(-time.Second)}))
		before := dump(t, w.env.Store)
		for _, bad := range []string{token, forged, expired, "garbage"} {
			r := anon.Do("POST", "/api/v1/auth/password-reset/"+bad, map[string]any{"newPassword": "another-long-password"})
			assert.Equal(t, 404, r.Status, bad)
			assert.Equal(t, "reset_link_invalid", r.String("code"), bad)
		}
		assert.Equal(t, before, dump(t, w.env.Store), "bad links change nothing")
		w.byRole["member"].Must(200, "GET", "/api/v1/user", nil)
	})
}

// TestPasswordResetRequestsAreLimitedAlikeForEveryAddress: the fourth request for one address within the hour
// answers 429, whether or not an account has it.
func TestPasswordResetRequestsAreLimitedAlikeForEveryAddress(t *testing.T) {
	w := newWorld(t, "sqlite")
	for _, email := range []string{"viewer@example.com", "nobody@example.com"} {
		c := w.env.Client(t)
		for range 3 {
			c.Must(202, "POST", "/api/v1/auth/password-reset", map[string]any{"email": email})
		}
		assertTooMany(t, c.Do("POST", "/api/v1/auth/password-reset", map[string]any{"email": email}), "too_many_password_resets")
	}
}

// TestAPasswordChangeRequiredHoldsEveryOtherRoute: a user who must change the password signs in, and reaches
// only the password change and sign-out until it is done.
func TestAPasswordChangeRequiredHoldsEveryOtherRoute(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		u, err := api.NewUser("fresh-admin@example.com", "Fresh", testPassword, true)
		require.NoError(t, err)
		u.PasswordChangeRequired = true
		require.NoError(t, w.env.Store.InsertUser(context.Background(), u))
		c := w.env.Client(t)
		login := c.Must(200, "POST", "/api/v1/auth/login", map[string]string{"email": "fresh-admin@example.com", "password": testPassword})
		assert.Equal(t, true, login.Body["user"].(map[string]any)["passwordChangeRequired"])
		for _, route := range [][2]string{{"GET", "/api/v1/user"}, {"GET", "/api/v1/teams"}, {"GET", "/api/v1/users"},
			{"POST", "/api/v1/user/tokens"}, {"GET", "/api/v1/teams/" + w.teamID + "/members"}} {
			r := c.Do(route[0], route[1], map[string]any{"name": "x"})
			assert.Equal(t, 403, r.Status, route)
			assert.Equal(t, "password_change_required", r.String("code"), route)
		}
		c.Must(204, "POST", "/api/v1/user/password", change(testPassword, newPassword))
		assert.Equal(t, false, c.Must(200, "GET", "/api/v1/user", nil).Body["passwordChangeRequired"])
		c.Must(200, "GET", "/api/v1/users", nil)
		c.Must(204, "POST", "/api/v1/auth/logout", nil)
	})
}

func TestSignOutIsOpenToAUserWhoMustChangeThePassword(t *testing.T) {
	w := newWorld(t, "sqlite")
	u, err := api.NewUser("held@example.com", "Held", testPassword, false)
	require.NoError(t, err)
	u.PasswordChangeRequired = true
	require.NoError(t, w.env.Store.InsertUser(context.Background(), u))
	c := w.env.Client(t)
	c.Login("held@example.com", testPassword)
	c.Must(204, "POST", "/api/v1/auth/logout", nil)
	assert.Equal(t, 401, c.Do("GET", "/api/v1/user", nil).Status)
}
