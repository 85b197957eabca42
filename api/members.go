package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type addMemberRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type changeRoleRequest struct {
	Role string `json:"role"`
}

func (s *Server) registerMembers() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/members", Summary: "The team's members.", Tag: "teams"}, s.listMembers)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/members", Summary: "Add someone by e-mail. A platform admin adds an existing account at once (201, the member); " +
		"a team owner invites the address instead (202, the invitation, exactly as POST /api/v1/teams/{teamId}/invitations answers it).",
		Tag: "teams", Body: addMemberRequest{}, Status: 201}, s.addMember)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/teams/:teamId/members/:userId", Summary: "Change a member's role.", Tag: "teams", Body: changeRoleRequest{}}, s.changeMemberRole)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/teams/:teamId/members/:userId", Summary: "Remove a member (or leave the team).", Tag: "teams", Status: 204}, s.removeMember)
}

func (s *Server) listMembers(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamUserList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListMembers(c.UserContext(), team.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, memberView)
}

func parseRoleField(s string) (domain.Role, error) {
	r, err := domain.ParseRole(s)
	if err != nil {
		return r, domain.InvalidField("role", "must be owner, member, viewer or dashboard")
	}
	return r, nil
}

// addMember adds an existing user to a team when a platform admin asks (the operator, who sees every account
// anyway). Anyone else with the right to add members invites the address: joining needs the consent of the
// person who joins, and the answer must not tell the owner whether the address has an account.
func (s *Server) addMember(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamUserInvite)
	if err != nil {
		return err
	}
	var req addMemberRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if !who.user.Admin {
		v, err := s.invite(c, who, team, inviteRequest(req))
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(v)
	}
	email, emailErr := domain.ValidateEmail("email", req.Email)
	if err := domain.Collect(emailErr); err != nil {
		return err
	}
	role, err := parseRoleField(req.Role)
	if err != nil {
		return err
	}
	var added storage.Member
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		u, err := tx.GetUserByEmail(ctx, email)
		if domain.IsKind(err, domain.KindNotFound) {
			return domain.Unprocessable("unknown_user", "No user has that e-mail address.", domain.FieldError{Field: "email", Detail: "is not a user of this platform"})
		}
		if err != nil {
			return err
		}
		if err := s.checkMemberLimit(ctx, tx, team); err != nil {
			return err
		}
		if err := tx.InsertMembership(ctx, &storage.Membership{TeamID: team.ID, UserID: u.ID, Role: role}); err != nil {
			return err
		}
		added = storage.Member{UserID: u.ID, Email: u.Email, Name: u.Name, Role: role}
		return audit(c, tx, who, team.ID, "team.member.added", "user", u.ID, map[string]any{"role": role.String()})
	})
	if err != nil {
		return err
	}
	return created(c, memberView(&added))
}

// checkMemberLimit refuses one more member when the members and the pending invitations fill the team's limit.
func (s *Server) checkMemberLimit(ctx context.Context, tx *storage.Store, team *storage.Team) error {
	if err := tx.LockTeam(ctx, team.ID); err != nil {
		return err
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	n, err := tx.CountMembers(ctx, team.ID, domain.RoleNone)
	if err != nil {
		return err
	}
	pending, err := tx.CountPendingInvitations(ctx, team.ID, time.Now())
	if err != nil {
		return err
	}
	if domain.Exceeds(tt.Properties.Limits.Members, n+pending) {
		return domain.LimitExceeded("members", tt.Properties.Limits.Members)
	}
	return nil
}

func (s *Server) changeMemberRole(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamUserChangeRole)
	if err != nil {
		return err
	}
	var req changeRoleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	role, err := parseRoleField(req.Role)
	if err != nil {
		return err
	}
	userID := c.Params("userId")
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		m, err := tx.GetMembership(ctx, team.ID, userID)
		if err != nil {
			return err
		}
		if m.Role == domain.RoleOwner && role != domain.RoleOwner {
			if err := ensureAnotherOwner(ctx, tx, team.ID); err != nil {
				return err
			}
		}
		if err := tx.UpdateMembershipRole(ctx, team.ID, userID, role); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "team.member.role-changed", "user", userID, map[string]any{"from": m.Role.String(), "to": role.String()})
	})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"userId": userID, "role": role.String()})
}

// ensureAnotherOwner refuses to leave a team without an owner. The team's row is locked first, as deleting a
// user locks the teams they own, so two requests cannot each take away one of the last two owners.
func ensureAnotherOwner(ctx context.Context, tx *storage.Store, teamID string) error {
	if err := tx.LockTeam(ctx, teamID); err != nil {
		return err
	}
	owners, err := tx.CountMembers(ctx, teamID, domain.RoleOwner)
	if err != nil {
		return err
	}
	if owners <= 1 {
		return domain.Conflict("last_owner", "A team must keep at least one owner; make someone else owner first.")
	}
	return nil
}

// removeMember lets owners remove anyone, and any member remove themselves (leave the team).
func (s *Server) removeMember(c *fiber.Ctx) error {
	teamID, userID := c.Params("teamId"), c.Params("userId")
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	action := domain.ActionTeamUserRemove
	if who.user.ID == userID {
		action = domain.ActionTeamRead
	}
	if _, _, err := s.teamAccess(c, teamID, action, "team"); err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		m, err := tx.GetMembership(ctx, teamID, userID)
		if err != nil {
			return err
		}
		if m.Role == domain.RoleOwner {
			if err := ensureAnotherOwner(ctx, tx, teamID); err != nil {
				return err
			}
		}
		if err := tx.DeleteMembership(ctx, teamID, userID); err != nil {
			return err
		}
		return audit(c, tx, who, teamID, "team.member.removed", "user", userID, nil)
	})
	if err != nil {
		return err
	}
	return noContent(c)
}
