package api_test

import (
	"context"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/mail/mailtest"
	"github.com/flowyard/flowyard/storage"
)

const newPassword = "a-long-new-password-42"

var invitationLink = regexp.MustCompile(`/invitations/(fyv_[0-9a-z]+)`)

// mailWorld is a world whose API mails through a real SMTP server on loopback.
type mailWorld struct {
	*world
	smtp *mailtest.Server
	box  *mail.Outbox
}

func newMailWorld(t *testing.T, dialect string, mutate ...func(*api.Deps)) *mailWorld {
	t.Helper()
	mw := &mailWorld{smtp: mailtest.Start(t, "")}
	mw.world = newWorld(t, dialect, append(mutate, func(d *api.Deps) {
		sealer, err := domain.NewSealer(strings.Repeat("m", 32))
		require.NoError(t, err)
		sender, err := mail.NewSMTP(mw.smtp.URL(), "flowyard@example.com")
		require.NoError(t, err)
		mw.box = mail.NewOutbox(d.Store, sealer, sender, slog.New(slog.NewTextHandler(io.Discard, nil)))
		d.Mail = mw.box
	})...)
	return mw
}

// deliver sends what the outbox holds and returns the plain text of the n-th message the server got.
func (mw *mailWorld) deliver(t *testing.T, n int) (to, text string) {
	t.Helper()
	_, err := mw.box.DeliverDue(context.Background())
	require.NoError(t, err)
	got := mw.smtp.Wait(t, n, 5*time.Second)
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(got.Raw)))
	require.NoError(t, err)
	return got.To[0], string(b)
}

func tokenIn(t *testing.T, text string) string {
	t.Helper()
	m := invitationLink.FindStringSubmatch(text)
	require.NotNil(t, m, "an invitation link in %q", text)
	return m[1]
}

// TestInvitationMailedAndAcceptedByANewAccount: an owner invites an address no account has; the link arrives by
// e-mail (not in the answer); the invitee creates an account by accepting, is signed in and is a member.
func TestInvitationMailedAndAcceptedByANewAccount(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newMailWorld(t, dialect)
		owner := w.byRole["owner"]
		inv := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "New.Person@Example.com", "role": "viewer"})
		assert.Equal(t, "new.person@example.com", inv.String("email"))
		assert.Empty(t, inv.String("link"), "with SMTP the link is only mailed")
		expires, err := time.Parse(time.RFC3339, inv.String("expiresAt"))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(7*24*time.Hour), expires, time.Minute)

		to, text := w.deliver(t, 1)
		assert.Equal(t, "new.person@example.com", to)
		assert.Contains(t, text, "team-a")
		token := tokenIn(t, text)
		pending := owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/invitations", nil)
		assert.Len(t, pending.Body["items"], 1)
		assert.NotContains(t, string(pending.Raw), token, "the token is never shown again")

		invitee := w.env.Client(t)
		weak := invitee.Do("POST", "/api/v1/invitations/"+token+"/accept", map[string]any{"name": "New", "password": "short"})
		assert.Equal(t, 400, weak.Status, "%s", weak.Raw)
		joined := invitee.Must(200, "POST", "/api/v1/invitations/"+token+"/accept", map[string]any{"name": "New Person", "password": newPassword})
		assert.Equal(t, "viewer", joined.String("role"))
		assert.Equal(t, "new.person@example.com", invitee.Must(200, "GET", "/api/v1/user", nil).String("email"), "accepting signed the new account in")
		invitee.Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
		fresh := w.env.Client(t)
		fresh.Login("new.person@example.com", newPassword)

		assert.Empty(t, owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/invitations", nil).Body["items"], "no longer pending")
		auditLog := string(owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/audit-log?limit=500", nil).Raw)
		for _, event := range []string{"team.invitation.created", "team.invitation.accepted", "team.member.added"} {
			assert.Contains(t, auditLog, event)
		}
	})
}

// TestInvitationWithoutSMTPAnswersTheLink: without a mail server the inviter gets the link; an existing account
// accepts it signed in as the invited address, and nobody else can.
func TestInvitationWithoutSMTPAnswersTheLink(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		inv := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "outsider@example.com", "role": "member"})
		token := tokenIn(t, inv.String("link"))

		before := dump(t, w.env.Store)
		anonymous := w.env.Client(t).Do("POST", "/api/v1/invitations/"+token+"/accept", map[string]any{"name": "X", "password": newPassword})
		assert.Equal(t, 401, anonymous.Status, "an account has the address: sign in first: %s", anonymous.Raw)
		other := w.byRole["viewer"].Do("POST", "/api/v1/invitations/"+token+"/accept", nil)
		assert.Equal(t, 403, other.Status)
		assert.Equal(t, "invitation_other_address", other.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store), "refused accepts change nothing")

		w.byRole["outsider"].Must(200, "POST", "/api/v1/invitations/"+token+"/accept", nil)
		w.byRole["outsider"].Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
	})
}

// TestOwnersAddingMembersInviteAndLearnNothing: the members route invites for a team owner (202), and the answer
// has the same shape whether or not the address has an account; nobody joins until they accept.
func TestOwnersAddingMembersInviteAndLearnNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		path := "/api/v1/teams/" + w.teamID + "/members"
		members := owner.Must(200, "GET", path+"?limit=500", nil).Raw
		shape := func(r *apitest.Response) []string {
			var keys []string
			for k := range r.Body {
				keys = append(keys, k)
			}
			return keys
		}
		unregistered := owner.Must(202, "POST", path, map[string]any{"email": "nobody@example.com", "role": "member"})
		registered := owner.Must(202, "POST", path, map[string]any{"email": "Outsider@Example.com", "role": "member"})
		assert.ElementsMatch(t, shape(unregistered), shape(registered))
		assert.Equal(t, string(members), string(owner.Must(200, "GET", path+"?limit=500", nil).Raw), "nobody joined")
		assert.Equal(t, 404, w.byRole["outsider"].Do("GET", "/api/v1/teams/"+w.teamID, nil).Status, "the outsider is still outside")

		again := owner.Do("POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "nobody@example.com", "role": "viewer"})
		assert.Equal(t, 409, again.Status)
		assert.Equal(t, "already_invited", again.String("code"))
		member := owner.Do("POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "member@example.com", "role": "viewer"})
		assert.Equal(t, "already_member", member.String("code"))
		for _, role := range []string{"member", "viewer", "dashboard"} {
			r := w.byRole[role].Do("POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "x@example.com", "role": "viewer"})
			assert.Equal(t, 403, r.Status, role)
			assert.Equal(t, 403, w.byRole[role].Do("GET", "/api/v1/teams/"+w.teamID+"/invitations", nil).Status, role)
		}
		bad := owner.Do("POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": "not-an-address", "role": "king"})
		assert.Equal(t, 400, bad.Status)

		w.admin.Must(201, "POST", path, map[string]any{"email": "outsider@example.com", "role": "viewer"})
		w.byRole["outsider"].Must(200, "GET", "/api/v1/teams/"+w.teamID, nil)
	})
}

// TestBadInvitationTokensChangeNothing: forged, revoked, used and expired links each answer their own error and
// change nothing.
func TestBadInvitationTokensChangeNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		owner := w.byRole["owner"]
		invite := func(email string) (id, token string) {
			r := owner.Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations", map[string]any{"email": email, "role": "member"})
			return r.String("id"), tokenIn(t, r.String("link"))
		}
		_, used := invite("used@example.com")
		w.env.Client(t).Must(200, "POST", "/api/v1/invitations/"+used+"/accept", map[string]any{"name": "U", "password": newPassword})
		_, declined := invite("declined@example.com")
		w.env.Client(t).Must(204, "POST", "/api/v1/invitations/"+declined+"/decline", nil)
		revokedID, revoked := invite("revoked@example.com")
		owner.Must(204, "DELETE", "/api/v1/teams/"+w.teamID+"/invitations/"+revokedID, nil)
		assert.Equal(t, 404, owner.Do("DELETE", "/api/v1/teams/"+w.teamID+"/invitations/"+revokedID, nil).Status, "revoked once")
		expired, hash := domain.NewToken(domain.TokenPrefixInvitation)
		require.NoError(t, w.env.Store.InsertInvitation(context.Background(), &storage.Invitation{ID: domain.NewID(), TeamID: w.teamID,
			Email: "late@example.com", Role: domain.RoleMember, TokenHash: hash, ExpiresAt: time.Now().Add(-time.Minute)}))
		forged, _ := domain.NewToken(domain.TokenPrefixInvitation)

		before := dump(t, w.env.Store)
		for token, code := range map[string]string{forged: "invitation_not_found", "garbage": "invitation_not_found", revoked: "invitation_revoked",
			used: "invitation_used", declined: "invitation_used", expired: "invitation_expired"} {
			for _, action := range []string{"accept", "decline"} {
				r := w.env.Client(t).Do("POST", "/api/v1/invitations/"+token+"/"+action, map[string]any{"name": "Y", "password": newPassword})
				assert.Equal(t, code, r.String("code"), "%s %s: %s", action, code, r.Raw)
				assert.NotEmpty(t, r.String("message"))
			}
		}
		assert.Equal(t, before, dump(t, w.env.Store), "bad links change nothing")
		assert.Empty(t, owner.Must(200, "GET", "/api/v1/teams/"+w.teamID+"/invitations", nil).Body["items"], "expired invitations are not pending")
		invite("late@example.com") // an expired invitation does not block a new one
	})
}

// TestPendingInvitationsHoldAPlaceUnderTheMemberLimit: a team of 2 with a limit of 3 takes one invitation; a
// second invitation and an admin's direct add then answer limit_members; revoking frees the place.
func TestPendingInvitationsHoldAPlaceUnderTheMemberLimit(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		tt := w.admin.Must(201, "POST", "/api/v1/team-types", map[string]any{"name": "Three", "selfService": true, "properties": map[string]any{"limits": map[string]any{"members": 3}}})
		outsider := w.byRole["outsider"]
		team := outsider.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Three", "teamTypeId": tt.String("id")}).String("id")
		w.admin.Must(201, "POST", "/api/v1/teams/"+team+"/members", map[string]any{"email": "viewer@example.com", "role": "viewer"})
		first := outsider.Must(201, "POST", "/api/v1/teams/"+team+"/invitations", map[string]any{"email": "one@example.com", "role": "member"})
		before := dump(t, w.env.Store)
		second := outsider.Do("POST", "/api/v1/teams/"+team+"/invitations", map[string]any{"email": "two@example.com", "role": "member"})
		assert.Equal(t, 409, second.Status)
		assert.Equal(t, "limit_members", second.String("code"))
		direct := w.admin.Do("POST", "/api/v1/teams/"+team+"/members", map[string]any{"email": "member@example.com", "role": "member"})
		assert.Equal(t, "limit_members", direct.String("code"))
		assert.Equal(t, before, dump(t, w.env.Store))
		outsider.Must(204, "DELETE", "/api/v1/teams/"+team+"/invitations/"+first.String("id"), nil)
		outsider.Must(201, "POST", "/api/v1/teams/"+team+"/invitations", map[string]any{"email": "two@example.com", "role": "member"})
	})
}

// TestInvitationIsUsableOnceUnderConcurrency: two accepts of one link race; exactly one wins.
func TestInvitationIsUsableOnceUnderConcurrency(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		token := tokenIn(t, w.byRole["owner"].Must(201, "POST", "/api/v1/teams/"+w.teamID+"/invitations",
			map[string]any{"email": "race@example.com", "role": "member"}).String("link"))
		results := make(chan int, 2)
		for range 2 {
			c := w.env.Client(t)
			go func() {
				results <- c.Do("POST", "/api/v1/invitations/"+token+"/accept", map[string]any{"name": "R", "password": newPassword}).Status
			}()
		}
		statuses := []int{<-results, <-results}
		assert.ElementsMatch(t, []int{200, 409}, statuses)
	})
}

func dump(t *testing.T, st *storage.Store) map[string][]string {
	t.Helper()
	d, err := st.DumpTables(context.Background())
	require.NoError(t, err)
	return d
}
