package api_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

var verificationLink = regexp.MustCompile(`/verify-email/(fye_[0-9a-z]+)`)

func signUpBody(email, password string) map[string]any {
	return map[string]any{"email": email, "name": "New " + email, "password": password}
}

func verificationToken(t *testing.T, text string) string {
	t.Helper()
	m := verificationLink.FindStringSubmatch(text)
	require.NotNil(t, m, "a confirmation link in %q", text)
	return m[1]
}

// platformAudit lists the events of the platform's own audit log (entries of no team).
func platformAudit(t *testing.T, st *storage.Store) string {
	t.Helper()
	return strings.Join(dump(t, st)["audit_log"], "\n")
}

// TestSignUpIsAnAdminSettingOffByDefault: sign-up answers 403 signup_disabled and writes nothing until a platform
// admin turns it on (a non-admin cannot); the setting is in the store, so another replica agrees at once.
func TestSignUpIsAnAdminSettingOffByDefault(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		anon := w.env.Client(t)
		assert.Equal(t, false, anon.Must(200, "GET", "/api/v1/settings", nil).Body["signUp"])
		before := dump(t, w.env.Store)
		off := anon.Do("POST", "/api/v1/auth/signup", signUpBody("new@example.com", newPassword))
		assert.Equal(t, 403, off.Status, "%s", off.Raw)
		assert.Equal(t, "signup_disabled", off.String("code"))
		for _, who := range []string{"owner", "member", "outsider"} {
			assert.Equal(t, 403, w.byRole[who].Do("PATCH", "/api/v1/settings", map[string]any{"signUp": true}).Status, who)
		}
		assert.Equal(t, 401, anon.Do("PATCH", "/api/v1/settings", map[string]any{"signUp": true}).Status)
		assert.Equal(t, 400, w.admin.Do("PATCH", "/api/v1/settings", map[string]any{"signUp": "yes"}).Status)
		assert.Equal(t, before, dump(t, w.env.Store), "refused requests write nothing")

		assert.Equal(t, true, w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": true}).Body["signUp"])
		replica := apitest.Serve(t, w.env.Store)
		assert.Equal(t, true, replica.Client(t).Must(200, "GET", "/api/v1/settings", nil).Body["signUp"], "another replica reads the same")
		replica.Client(t).Must(202, "POST", "/api/v1/auth/signup", signUpBody("new@example.com", newPassword))
		assert.Contains(t, platformAudit(t, w.env.Store), "platform.settings.changed")

		w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": false})
		assert.Equal(t, "signup_disabled", replica.Client(t).Do("POST", "/api/v1/auth/signup", signUpBody("other@example.com", newPassword)).String("code"))
	})
}

// TestSignUpConfirmsTheAddressBeforeSignIn: a sign-up for a new address and one for a registered address answer
// alike; the new address gets a confirmation link, the registered one a notice without a link. The unconfirmed
// account cannot sign in (a clear error, only with the right password); the link works with the sign-up's
// password only, then signs in, and works once.
func TestSignUpConfirmsTheAddressBeforeSignIn(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect)
		w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": true})
		anon := w.env.Client(t)
		fresh := anon.Must(202, "POST", "/api/v1/auth/signup", signUpBody("Fresh@Example.com", newPassword))
		taken := anon.Must(202, "POST", "/api/v1/auth/signup", signUpBody("viewer@example.com", newPassword))
		assert.Equal(t, string(fresh.Raw), string(taken.Raw), "the answer does not tell whether the address is registered")

		to, text := w.deliver(t, 1)
		assert.Equal(t, "fresh@example.com", to)
		token := verificationToken(t, text)
		to, notice := w.deliver(t, 2)
		assert.Equal(t, "viewer@example.com", to)
		assert.Contains(t, notice, "already has an account")
		assert.NotRegexp(t, verificationLink, notice)
		w.byRole["viewer"].Must(200, "GET", "/api/v1/user", nil)
		w.env.Client(t).Login("viewer@example.com", testPassword) // nothing changed for the registered account

		unconfirmed := w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "fresh@example.com", "password": newPassword})
		assert.Equal(t, 403, unconfirmed.Status)
		assert.Equal(t, "email_not_verified", unconfirmed.String("code"))
		wrong := w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "fresh@example.com", "password": "not-the-password"})
		assert.Equal(t, 401, wrong.Status, "without the password nothing tells the account is there")

		before := dump(t, w.env.Store)
		other := w.env.Client(t).Do("POST", "/api/v1/auth/verify-email/"+token, map[string]any{"password": "someone-elses-password"})
		assert.Equal(t, 422, other.Status)
		assert.Equal(t, "wrong_password", other.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store), "a wrong password uses nothing up")

		confirmed := w.env.Client(t)
		r := confirmed.Must(200, "POST", "/api/v1/auth/verify-email/"+token, map[string]any{"password": newPassword})
		assert.Equal(t, true, r.Body["user"].(map[string]any)["emailVerified"])
		me := confirmed.Must(200, "GET", "/api/v1/user", nil)
		assert.Equal(t, "fresh@example.com", me.String("email"), "confirming signed in")
		assert.Equal(t, false, me.Body["admin"])
		assert.Empty(t, confirmed.Must(200, "GET", "/api/v1/teams", nil).Body["items"], "no team is made for a new account")
		w.env.Client(t).Login("fresh@example.com", newPassword)

		again := w.env.Client(t).Do("POST", "/api/v1/auth/verify-email/"+token, map[string]any{"password": newPassword})
		assert.Equal(t, 404, again.Status)
		assert.Equal(t, "verification_link_invalid", again.String("code"))
		log := platformAudit(t, w.env.Store)
		assert.Contains(t, log, "user.signed-up")
		assert.Contains(t, log, "user.email-verified")
	})
}

// TestConfirmationLinksExpireAndTheLatestWins: an expired or forged link answers verification_link_invalid; a
// resend replaces the link, and a second sign-up of an unconfirmed address replaces its password (so a stranger
// who signed up first with your address holds nothing once you sign up yourself); resending for an unknown or
// confirmed address answers alike and mails nothing.
func TestConfirmationLinksExpireAndTheLatestWins(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect)
		w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": true})
		anon := w.env.Client(t)
		anon.Must(202, "POST", "/api/v1/auth/signup", signUpBody("late@example.com", "strangers-chosen-password"))
		_, text := w.deliver(t, 1)
		first := verificationToken(t, text)

		u, err := w.env.Store.GetUserByEmail(context.Background(), "late@example.com")
		require.NoError(t, err)
		expired, hash := domain.NewToken(domain.TokenPrefixVerification)
		require.NoError(t, w.env.Store.InsertEmailVerification(context.Background(), &storage.EmailVerification{TokenHash: hash, UserID: u.ID,
			ExpiresAt: time.Now().Add(-time.Second)}))
		forged, _ := domain.NewToken(domain.TokenPrefixVerification)
		before := dump(t, w.env.Store)
		for _, bad := range []string{expired, forged, "garbage"} {
			r := anon.Do("POST", "/api/v1/auth/verify-email/"+bad, map[string]any{"password": "strangers-chosen-password"})
			assert.Equal(t, 404, r.Status, bad)
			assert.Equal(t, "verification_link_invalid", r.String("code"), bad)
		}
		assert.Equal(t, before, dump(t, w.env.Store), "bad links change nothing")

		unknown := anon.Must(202, "POST", "/api/v1/auth/signup/resend", map[string]any{"email": "nobody@example.com"})
		confirmed := anon.Must(202, "POST", "/api/v1/auth/signup/resend", map[string]any{"email": "member@example.com"})
		assert.Equal(t, string(unknown.Raw), string(confirmed.Raw))
		anon.Must(202, "POST", "/api/v1/auth/signup", signUpBody("late@example.com", newPassword))
		_, text = w.deliver(t, 2)
		latest := verificationToken(t, text)
		assert.Len(t, w.smtp.Messages(), 2, "resends for unknown and confirmed addresses mail nothing")

		assert.Equal(t, "verification_link_invalid", anon.Do("POST", "/api/v1/auth/verify-email/"+first,
			map[string]any{"password": "strangers-chosen-password"}).String("code"), "the earlier sign-up's link stopped working")
		assert.Equal(t, "wrong_password", anon.Do("POST", "/api/v1/auth/verify-email/"+latest,
			map[string]any{"password": "strangers-chosen-password"}).String("code"), "the earlier sign-up's password is gone")
		anon.Must(202, "POST", "/api/v1/auth/signup/resend", map[string]any{"email": "late@example.com"})
		_, text = w.deliver(t, 3)
		resent := verificationToken(t, text)
		assert.Equal(t, "verification_link_invalid", anon.Do("POST", "/api/v1/auth/verify-email/"+latest,
			map[string]any{"password": newPassword}).String("code"), "a resend replaces the link")
		anon.Must(200, "POST", "/api/v1/auth/verify-email/"+resent, map[string]any{"password": newPassword})
	})
}

// TestSignUpsAreLimitedAlikeForEveryAddress: the fourth sign-up or resend for one address within the hour
// answers 429, whether or not an account has it, and nothing is written for it.
func TestSignUpsAreLimitedAlikeForEveryAddress(t *testing.T) {
	w := newWorld(t, "sqlite")
	w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": true})
	for _, email := range []string{"viewer@example.com", "nobody@example.com"} {
		c := w.env.Client(t)
		c.Must(202, "POST", "/api/v1/auth/signup", signUpBody(email, newPassword))
		c.Must(202, "POST", "/api/v1/auth/signup/resend", map[string]any{"email": email})
		c.Must(202, "POST", "/api/v1/auth/signup", signUpBody(email, newPassword))
		before := dump(t, w.env.Store)
		assertTooMany(t, c.Do("POST", "/api/v1/auth/signup", signUpBody(email, newPassword)), "too_many_sign_ups")
		assertTooMany(t, c.Do("POST", "/api/v1/auth/signup/resend", map[string]any{"email": email}), "too_many_sign_ups")
		assert.Equal(t, before, dump(t, w.env.Store))
	}
}

// TestAnInvitationClaimsAnUnconfirmedSignUp: someone signs up with an address they do not own; the address's
// owner, invited to a team, accepts with a name and password of their own: the account is theirs, confirmed, and
// the stranger's password and link are gone.
func TestAnInvitationClaimsAnUnconfirmedSignUp(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		w.admin.Must(200, "PATCH", "/api/v1/settings", map[string]any{"signUp": true})
		w.env.Client(t).Must(202, "POST", "/api/v1/auth/signup", signUpBody("claimed@example.com", "strangers-chosen-password"))
		token := tokenIn(t, w.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations",
			map[string]any{"email": "claimed@example.com", "role": "member"}).String("link"))
		invitee := w.env.Client(t)
		invitee.Must(200, "POST", "/api/v1/invitations/"+token+"/accept", map[string]any{"name": "Owner Of The Address", "password": newPassword})
		invitee.Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
		assert.Equal(t, 401, w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "claimed@example.com", "password": "strangers-chosen-password"}).Status)
		w.env.Client(t).Login("claimed@example.com", newPassword)
		assert.Empty(t, dump(t, w.env.Store)["email_verifications"])
	})
}
