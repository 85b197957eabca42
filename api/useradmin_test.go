package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
)

// slowRecheck keeps the live streams' periodic role re-check out of the way (an hour), so a stream that ends
// was ended by the credential check.
func slowRecheck(d *api.Deps) { d.Config.Live = api.LiveConfig{Recheck: time.Hour} }

func userPath(id string, rest ...string) string {
	return "/api/v1/users/" + id + strings.Join(rest, "")
}

// TestSuspensionShutsAUserOutAtOnce: a member signed in on one replica, with a personal token and an event
// stream open on each of two replicas, is suspended: both streams end, the session is gone, the token is refused,
// sign-in and password reset refuse; reinstated, the token and the password work again.
func TestSuspensionShutsAUserOutAtOnce(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect, slowRecheck)
		member := w.byRole["member"]
		pat := member.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")
		replica := apitest.Serve(t, w.env.Store, slowRecheck)
		byToken := replica.Client(t)
		byToken.Bearer = pat
		events := "/api/v1/teams/" + w.teamID + "/events"
		sessionStream, tokenStream := member.Stream(events, ""), byToken.Stream(events, "")
		ownerStream := w.byRole["owner"].Stream(events, "")

		suspended := w.admin.Must(200, "POST", userPath(w.userIDs["member"], "/actions/suspend"), nil)
		assert.Equal(t, true, suspended.Body["suspended"])
		assert.True(t, sessionStream.Ended(eventWait), "the stream on the replica that suspended ends")
		assert.True(t, tokenStream.Ended(eventWait), "the stream on another replica ends")
		assert.False(t, ownerStream.Ended(time.Second), "other users' streams go on")

		assert.Equal(t, 401, member.Do("GET", "/api/v1/user", nil).Status, "the session ended")
		r := byToken.Do("GET", "/api/v1/teams/"+w.teamID, nil)
		assert.Equal(t, 403, r.Status)
		assert.Equal(t, "account_suspended", r.String("code"), "the token is refused on its next request")
		login := w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "member@example.com", "password": testPassword})
		assert.Equal(t, 403, login.Status)
		assert.Equal(t, "account_suspended", login.String("code"))
		assert.Equal(t, 401, w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "member@example.com", "password": "a-wrong-password"}).Status)
		reset := w.env.Client(t).Must(202, "POST", "/api/v1/auth/password-reset", map[string]any{"email": "member@example.com"})
		assert.Contains(t, reset.String("message"), "If an account has that address", "the answer is the usual one")
		assert.Empty(t, dump(t, w.env.Store)["password_resets"], "no reset link for a suspended account")
		forced := w.admin.Do("POST", userPath(w.userIDs["member"], "/actions/reset-password"), nil)
		assert.Equal(t, 409, forced.Status)
		assert.Equal(t, "account_suspended", forced.String("code"), "a suspended user cannot reset a password")
		assert.Empty(t, dump(t, w.env.Store)["mail_outbox"], "nothing is mailed to a suspended account")

		w.admin.Must(200, "POST", userPath(w.userIDs["member"], "/actions/suspend"), nil) // again: no change
		reinstated := w.admin.Must(200, "POST", userPath(w.userIDs["member"], "/actions/reinstate"), nil)
		assert.Equal(t, false, reinstated.Body["suspended"])
		byToken.Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
		w.env.Client(t).Login("member@example.com", testPassword)
		log := platformAudit(t, w.env.Store)
		assert.Equal(t, 1, strings.Count(log, "user.suspended"), "a suspension is recorded once")
		assert.Contains(t, log, "user.reinstated")
	})
}

// TestThePlatformKeepsAnActiveAdmin: the only admin cannot drop their own flag, suspend or delete themself; a
// second admin who is suspended does not count; with another active admin each works.
func TestThePlatformKeepsAnActiveAdmin(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		self := userPath(w.userIDs["admin"])
		refusals := func(what string) {
			t.Helper()
			before := dump(t, w.env.Store)
			for _, r := range []*apitest.Response{
				w.admin.Do("PATCH", self, map[string]any{"admin": false}),
				w.admin.Do("POST", self+"/actions/suspend", nil),
				w.admin.Do("DELETE", self, nil),
			} {
				assert.Equal(t, 409, r.Status, "%s: %s", what, r.Raw)
				assert.Equal(t, "last_admin", r.String("code"), what)
			}
			assert.Equal(t, before, dump(t, w.env.Store), "%s: refusals change nothing", what)
		}
		refusals("the only admin")

		w.admin.Must(200, "PATCH", userPath(w.userIDs["outsider"]), map[string]any{"admin": true})
		w.admin.Must(200, "POST", userPath(w.userIDs["outsider"], "/actions/suspend"), nil)
		refusals("the only active admin")

		w.admin.Must(200, "POST", userPath(w.userIDs["outsider"], "/actions/reinstate"), nil)
		assert.Equal(t, false, w.admin.Must(200, "PATCH", self, map[string]any{"admin": false}).Body["admin"])
		assert.Equal(t, 403, w.admin.Do("GET", "/api/v1/users", nil).Status, "no longer an admin")
		outsider := w.env.Client(t)
		outsider.Login("outsider@example.com", testPassword)
		assert.Equal(t, "last_admin", outsider.Do("PATCH", userPath(w.userIDs["outsider"]), map[string]any{"admin": false}).String("code"))
	})
}

// TestDeletingAUser: the last owner of teams is refused with the teams named and nothing changed; once each team
// has another owner the user goes with their memberships, sessions and tokens, while what they made stays with
// the team (an invitation they sent), and each team's log and the platform's record it.
func TestDeletingAUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		lab := owner.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Night Lab", "slug": "night-lab"}).String("id")
		pat := owner.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")
		invitation := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "guest@example.com", "role": "viewer"}).String("id")
		stream := owner.Stream("/api/v1/teams/"+w.teamID+"/events", "")

		before := dump(t, w.env.Store)
		refused := w.admin.Do("DELETE", userPath(w.userIDs["owner"]), nil)
		assert.Equal(t, 409, refused.Status)
		assert.Equal(t, "last_owner", refused.String("code"))
		assert.Contains(t, refused.String("message"), `"team-a" (team-a)`)
		assert.Contains(t, refused.String("message"), `"Night Lab" (night-lab)`)
		assert.Equal(t, before, dump(t, w.env.Store), "a refused deletion changes nothing")

		owner.Must(200, "PATCH", "/api/v1/teams/"+w.teamID+"/members/"+w.userIDs["member"], map[string]any{"role": "owner"})
		refused = w.admin.Do("DELETE", userPath(w.userIDs["owner"]), nil)
		assert.NotContains(t, refused.String("message"), "team-a", "only the teams still at stake are named")
		owner.Must(204, "DELETE", "/api/v1/teams/"+lab, nil)

		w.admin.Must(204, "DELETE", userPath(w.userIDs["owner"]), nil)
		assert.True(t, stream.Ended(eventWait), "their stream ends")
		assert.Equal(t, 401, owner.Do("GET", "/api/v1/user", nil).Status, "their session is gone")
		byToken := w.env.Client(t)
		byToken.Bearer = pat
		assert.Equal(t, 401, byToken.Do("GET", "/api/v1/user", nil).Status, "their token is gone")
		assert.Equal(t, 404, w.admin.Do("GET", userPath(w.userIDs["owner"]), nil).Status)
		assert.Equal(t, 404, w.admin.Do("DELETE", userPath(w.userIDs["owner"]), nil).Status)
		rows := dump(t, w.env.Store)
		for _, table := range []string{"sessions", "tokens", "memberships"} {
			assert.NotContains(t, strings.Join(rows[table], "\n"), w.userIDs["owner"], table)
		}
		pending := w.byRole["member"].Must(200, "GET", "/api/v1/teams/"+w.teamID+"/invitations", nil)
		assert.Contains(t, string(pending.Raw), invitation, "the invitation they sent stays with the team")
		assert.Nil(t, pending.Body["items"].([]any)[0].(map[string]any)["invitedBy"])
		teamLog := string(w.admin.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil).Raw)
		assert.Contains(t, teamLog, "user deleted")
		assert.Contains(t, platformAudit(t, w.env.Store), "user.deleted")
	})
}

// TestAdminsChangeEmailNameAndAdminFlag: bad fields answer 400 and a taken address 409, changing nothing; the
// changes apply (the user signs in with the new address) and the audit log says from what to what.
func TestAdminsChangeEmailNameAndAdminFlag(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		viewer := userPath(w.userIDs["viewer"])
		before := dump(t, w.env.Store)
		bad := w.admin.Do("PATCH", viewer, map[string]any{"email": "not-an-address", "name": ""})
		assert.Equal(t, 400, bad.Status)
		assert.Len(t, bad.Body["validations"], 2)
		taken := w.admin.Do("PATCH", viewer, map[string]any{"email": "Member@Example.com"})
		assert.Equal(t, 409, taken.Status)
		assert.Equal(t, "email_taken", taken.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store))

		changed := w.admin.Must(200, "PATCH", viewer, map[string]any{"email": "Seer@Example.com", "name": "The Seer", "admin": true})
		assert.Equal(t, "seer@example.com", changed.String("email"))
		assert.Equal(t, "The Seer", w.admin.Must(200, "GET", viewer, nil).String("name"))
		c := w.env.Client(t)
		c.Login("seer@example.com", testPassword)
		c.Must(200, "GET", "/api/v1/users", nil)
		w.byRole["viewer"].Must(200, "GET", "/api/v1/users", nil) // the session stays, with the new rights
		assert.Contains(t, platformAudit(t, w.env.Store), `"to":"seer@example.com"`)
	})
}

// TestForcedPasswordReset: the old password stops working and every session ends; the reset link arrives by
// mail (not in the answer) and sets a new password. Without SMTP the admin gets the link.
func TestForcedPasswordReset(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect)
		forced := w.admin.Must(202, "POST", userPath(w.userIDs["viewer"], "/actions/reset-password"), nil)
		assert.Empty(t, forced.String("link"), "with SMTP the link is only mailed")
		assert.Equal(t, 401, w.byRole["viewer"].Do("GET", "/api/v1/user", nil).Status, "every session ended")
		assert.Equal(t, 401, w.env.Client(t).Do("POST", "/api/v1/auth/login", map[string]string{"email": "viewer@example.com", "password": testPassword}).Status,
			"the old password stopped working")
		to, text := w.deliver(t, 1)
		assert.Equal(t, "viewer@example.com", to)
		token := resetLink.FindStringSubmatch(text)[1]
		w.env.Client(t).Must(204, "POST", "/api/v1/auth/password-reset/"+token, map[string]any{"newPassword": newPassword})
		w.env.Client(t).Login("viewer@example.com", newPassword)
		assert.Contains(t, platformAudit(t, w.env.Store), "user.password.reset-forced")

		plain := newWorld(t, dialect)
		link := plain.admin.Must(202, "POST", userPath(plain.userIDs["viewer"], "/actions/reset-password"), nil).String("link")
		require.Regexp(t, resetLink, link)
		plain.env.Client(t).Must(204, "POST", "/api/v1/auth/password-reset/"+resetLink.FindStringSubmatch(link)[1], map[string]any{"newPassword": newPassword})
	})
}

// TestOnlyPlatformAdminsAdministerUsers: every user administration route answers 403 to each role of a team
// (owners included) and 401 to no one, and changes nothing.
func TestOnlyPlatformAdminsAdministerUsers(t *testing.T) {
	w := newWorld(t, "sqlite")
	target := userPath(w.userIDs["viewer"])
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", target, nil},
		{"PATCH", target, map[string]any{"admin": true}},
		{"POST", target + "/actions/suspend", nil},
		{"POST", target + "/actions/reinstate", nil},
		{"POST", target + "/actions/reset-password", nil},
		{"DELETE", target, nil},
		{"PATCH", "/api/v1/settings", map[string]any{"signUp": true}},
	}
	before := dump(t, w.env.Store)
	for _, r := range routes {
		for who, c := range w.byRole {
			want := 403
			if who == "anonymous" {
				want = 401
			}
			if who == "admin" {
				continue
			}
			got := c.Do(r.method, r.path, r.body)
			assert.Equal(t, want, got.Status, "%s %s as %s: %s", r.method, r.path, who, got.Raw)
		}
	}
	assert.Equal(t, before, dump(t, w.env.Store), "refusals change nothing")
}

// TestTwoAdminsDemotingEachOtherAtOnceLeaveOne: two admins each remove the other's flag at the same moment, many
// times over: every time exactly one succeeds (the other finds itself no admin any more, or the last one), so an
// active admin always remains.
func TestTwoAdminsDemotingEachOtherAtOnceLeaveOne(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		ctx := context.Background()
		admins := []*apitest.Client{w.admin, w.byRole["outsider"]}
		ids := []string{w.userIDs["admin"], w.userIDs["outsider"]}
		for round := range 8 {
			for _, id := range ids {
				u, err := w.env.Store.GetUserByID(ctx, id)
				require.NoError(t, err)
				u.Admin = true
				require.NoError(t, w.env.Store.UpdateUser(ctx, u, "admin"))
			}
			statuses := make(chan int, 2)
			for i, c := range admins {
				go func() { statuses <- c.Do("PATCH", userPath(ids[1-i]), map[string]any{"admin": false}).Status }()
			}
			got := []int{<-statuses, <-statuses}
			assert.Contains(t, got, 200, "round %d", round)
			assert.NotEqual(t, []int{200, 200}, got, "round %d: both demoted", round)
			left, err := w.env.Store.CountActiveAdmins(ctx, "")
			require.NoError(t, err)
			require.Equal(t, 1, left, "round %d: one admin remains", round)
		}
	})
}
