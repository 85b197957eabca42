package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// invitationTTL is how long an invitation link works.
const invitationTTL = 7 * 24 * time.Hour

type inviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type acceptInvitationRequest struct {
	Name     string `json:"name,omitempty"`     // for a new account, when no account has the invited address
	Password string `json:"password,omitempty"` // likewise
}

type invitationJSON struct {
	ID        string    `json:"id"`
	TeamID    string    `json:"teamId"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	InvitedBy *string   `json:"invitedBy"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	// Link is the invitation link, only when no SMTP server is configured and so nothing was mailed: the inviter
	// passes it on.
	Link string `json:"link,omitempty"`
}

func invitationView(i *storage.Invitation) invitationJSON {
	return invitationJSON{ID: i.ID, TeamID: i.TeamID, Email: i.Email, Role: i.Role.String(), InvitedBy: i.InvitedBy,
		ExpiresAt: i.ExpiresAt, CreatedAt: i.CreatedAt}
}

func (s *Server) registerInvitations() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/invitations", Summary: "The team's pending, unexpired invitations (owners).", Tag: "teams"}, s.listInvitations)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/invitations", Summary: "Invite someone by e-mail with a role (owners). " +
		"The answer is the same whether or not the address has an account; the link is mailed, or returned as link when no SMTP server is configured. " +
		"Pending invitations count toward the member limit (409 limit_members); they expire after 7 days.",
		Tag: "teams", Body: inviteRequest{}, Status: 201}, s.createInvitation)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/teams/:teamId/invitations/:invitationId", Summary: "Revoke a pending invitation (owners).", Tag: "teams", Status: 204}, s.revokeInvitation)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/invitations/:token/accept", Summary: "Accept an invitation: signed in as the invited address, " +
		"or, when no account has it, with name and password to create one (which signs in). The link works once.",
		Tag: "teams", Public: true, Body: acceptInvitationRequest{}}, s.acceptInvitation)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/invitations/:token/decline", Summary: "Decline an invitation. The link works once.",
		Tag: "teams", Public: true, Status: 204}, s.declineInvitation)
}

func (s *Server) listInvitations(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamUserInvite)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListPendingInvitations(c.UserContext(), team.ID, time.Now(), p)
	if err != nil {
		return err
	}
	return list(c, rows, next, invitationView)
}

func (s *Server) createInvitation(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamUserInvite)
	if err != nil {
		return err
	}
	var req inviteRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	v, err := s.invite(c, who, team, req)
	if err != nil {
		return err
	}
	return created(c, v)
}

// invite stores an invitation and queues its e-mail in one transaction. Nothing in it depends on whether the
// address has an account, so the answer tells the inviter nothing about who is registered.
func (s *Server) invite(c *fiber.Ctx, who *caller, team *storage.Team, req inviteRequest) (invitationJSON, error) {
	email, emailErr := domain.ValidateEmail("email", req.Email)
	if err := domain.Collect(emailErr); err != nil {
		return invitationJSON{}, err
	}
	role, err := parseRoleField(req.Role)
	if err != nil {
		return invitationJSON{}, err
	}
	token, hash := domain.NewToken(domain.TokenPrefixInvitation)
	at := time.Now()
	inv := &storage.Invitation{ID: domain.NewID(), TeamID: team.ID, Email: email, Role: role, TokenHash: hash,
		InvitedBy: &who.user.ID, ExpiresAt: at.Add(invitationTTL).UTC().Truncate(time.Second)}
	link := s.cfg.PublicURL + "/invitations/" + token
	var mailed bool
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := s.ensureInvitable(ctx, tx, team, email, at); err != nil {
			return err
		}
		if err := tx.InsertInvitation(ctx, inv); err != nil {
			return err
		}
		msg, err := mail.InvitationMessage(email, mail.Invitation{TeamName: team.Name, InviterName: who.user.Name,
			Role: role.String(), Link: link, Expires: inv.ExpiresAt})
		if err != nil {
			return err
		}
		if mailed, err = s.queueMail(ctx, tx, msg, link); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "team.invitation.created", "invitation", inv.ID, map[string]any{"email": email, "role": role.String()})
	})
	if err != nil {
		return invitationJSON{}, err
	}
	s.mailQueued()
	v := invitationView(inv)
	if !mailed {
		v.Link = link
	}
	return v, nil
}

// ensureInvitable refuses a second pending invitation to one address, an address already in the team, and an
// invitation beyond the member limit (pending invitations hold a place).
func (s *Server) ensureInvitable(ctx context.Context, tx *storage.Store, team *storage.Team, email string, at time.Time) error {
	pending, err := tx.ExpirePendingInvitation(ctx, team.ID, email, at)
	if err != nil {
		return err
	}
	if pending {
		return domain.Conflict("already_invited", "That address has a pending invitation to this team; revoke it first to send a new one.")
	}
	if u, err := tx.GetUserByEmail(ctx, email); err == nil {
		if _, err := tx.GetMembership(ctx, team.ID, u.ID); err == nil {
			return domain.Conflict("already_member", "That address belongs to a member of this team already.")
		} else if !domain.IsKind(err, domain.KindNotFound) {
			return err
		}
	} else if !domain.IsKind(err, domain.KindNotFound) {
		return err
	}
	return s.checkMemberLimit(ctx, tx, team)
}

func (s *Server) revokeInvitation(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamUserInvite)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		inv, err := tx.GetPendingInvitation(ctx, team.ID, c.Params("invitationId"))
		if err != nil {
			return err
		}
		if err := tx.FinishInvitation(ctx, inv.ID, storage.InvitationRevoked); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "team.invitation.revoked", "invitation", inv.ID, map[string]any{"email": inv.Email})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// pendingInvitation finds the invitation a link names and says clearly why one that cannot be used cannot.
func pendingInvitation(ctx context.Context, tx *storage.Store, token string, at time.Time) (*storage.Invitation, error) {
	inv, err := tx.GetInvitationByTokenHash(ctx, domain.HashToken(token))
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, &domain.Error{Kind: domain.KindNotFound, Code: "invitation_not_found", Message: "This invitation link is not valid; check that it was copied whole."}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case inv.Status == storage.InvitationRevoked:
		return nil, domain.Conflict("invitation_revoked", "This invitation was withdrawn by the team; ask its owner for a new one.")
	case inv.Status == storage.InvitationAccepted || inv.Status == storage.InvitationDeclined:
		return nil, domain.Conflict("invitation_used", "This invitation has already been "+inv.Status+"; a link works once.")
	case inv.Status == storage.InvitationExpired || !inv.ExpiresAt.After(at):
		return nil, domain.Conflict("invitation_expired", "This invitation has expired; ask the team's owner for a new one.")
	}
	return inv, nil
}

func (s *Server) acceptInvitation(c *fiber.Ctx) error {
	var req acceptInvitationRequest
	if len(c.Body()) > 0 {
		if err := s.decode(c, &req); err != nil {
			return err
		}
	}
	signedIn, _ := c.Locals("caller").(*caller)
	var joined *storage.User
	var role domain.Role
	var teamID string
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		inv, err := pendingInvitation(ctx, tx, c.Params("token"), time.Now())
		if err != nil {
			return err
		}
		u, err := s.invitee(ctx, tx, signedIn, inv, req)
		if err != nil {
			return err
		}
		if err := tx.FinishInvitation(ctx, inv.ID, storage.InvitationAccepted); err != nil {
			return err
		}
		if err := tx.InsertMembership(ctx, &storage.Membership{TeamID: inv.TeamID, UserID: u.ID, Role: inv.Role}); err != nil {
			if domain.IsKind(err, domain.KindConflict) {
				return domain.Conflict("already_member", "You are a member of this team already.")
			}
			return err
		}
		joined, role, teamID = u, inv.Role, inv.TeamID
		who := &caller{user: u}
		if err := audit(c, tx, who, inv.TeamID, "team.invitation.accepted", "invitation", inv.ID, nil); err != nil {
			return err
		}
		return audit(c, tx, who, inv.TeamID, "team.member.added", "user", u.ID, map[string]any{"role": inv.Role.String(), "invitation": inv.ID})
	})
	if err != nil {
		return err
	}
	if signedIn == nil {
		if err := s.startSession(c, joined); err != nil {
			return err
		}
	}
	return c.JSON(fiber.Map{"teamId": teamID, "role": role.String(), "user": userView(joined)})
}

// invitee is the account that accepts: the signed-in caller, who must hold the invited address, or a new
// account with that address when none has it. Someone not signed in whose address has an account signs in first.
func (s *Server) invitee(ctx context.Context, tx *storage.Store, signedIn *caller, inv *storage.Invitation, req acceptInvitationRequest) (*storage.User, error) {
	if signedIn != nil && signedIn.user != nil {
		if signedIn.user.Email != inv.Email {
			return nil, &domain.Error{Kind: domain.KindForbidden, Code: "invitation_other_address",
				Message: "This invitation was sent to another e-mail address than your account's; sign in with that address to accept it."}
		}
		return signedIn.user, nil
	}
	existing, err := tx.GetUserByEmail(ctx, inv.Email)
	unconfirmed := err == nil && existing.EmailUnverified
	if err == nil && !unconfirmed {
		return nil, domain.Unauthorized("An account has the invited address: sign in with it, then accept the invitation.")
	} else if err != nil && !domain.IsKind(err, domain.KindNotFound) {
		return nil, err
	}
	u, err := NewUser(inv.Email, req.Name, req.Password, false)
	if err != nil {
		return nil, err
	}
	if unconfirmed {
		return claimUnconfirmedAccount(ctx, tx, existing, u)
	}
	return u, tx.InsertUser(ctx, u)
}

// claimUnconfirmedAccount gives an account made by sign-up and never confirmed to whoever accepts an invitation
// to its address: the mailed invitation proves the address as the confirmation link would, so the invitee's
// name and password replace the sign-up's and the address counts as confirmed.
func claimUnconfirmedAccount(ctx context.Context, tx *storage.Store, existing, invitee *storage.User) (*storage.User, error) {
	existing.Name, existing.PasswordHash, existing.EmailUnverified = invitee.Name, invitee.PasswordHash, false
	if err := tx.UpdateUser(ctx, existing, "name", "password_hash", "email_unverified"); err != nil {
		return nil, err
	}
	return existing, tx.DeleteEmailVerifications(ctx, existing.ID)
}

func (s *Server) declineInvitation(c *fiber.Ctx) error {
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		inv, err := pendingInvitation(ctx, tx, c.Params("token"), time.Now())
		if err != nil {
			return err
		}
		if err := tx.FinishInvitation(ctx, inv.ID, storage.InvitationDeclined); err != nil {
			return err
		}
		return audit(c, tx, nil, inv.TeamID, "team.invitation.declined", "invitation", inv.ID, nil)
	})
	if err != nil {
		return err
	}
	return noContent(c)
}
