package api

import (
	"context"

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
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/members", Summary: "Add an existing user to the team by e-mail (platform admins); " +
		"team owners get 403 invitations_unavailable for every address until invitations exist.", Tag: "teams", Body: addMemberRequest{}, Status: 201}, s.addMember)
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

// errInvitationsUnavailable answers a team owner who asks to add someone. Adding an existing account without its
// holder's consent is not allowed, and invitations (which ask for it) do not exist yet. The answer comes before
// the address is looked up, so it is the same whether or not the address belongs to an account: the route does
// not tell a team owner who is registered.
var errInvitationsUnavailable = &domain.Error{Kind: domain.KindForbidden, Code: "invitations_unavailable",
	Message: "Flowyard does not add people to a team without their consent and cannot send invitations yet; " +
		"ask a platform admin to add the person's account to the team."}

// addMember adds an existing user to a team. Only platform admins may (the operator, who sees every account
// anyway); see errInvitationsUnavailable for everyone else.
func (s *Server) addMember(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamUserInvite)
	if err != nil {
		return err
	}
	var req addMemberRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	email, emailErr := domain.ValidateEmail("email", req.Email)
	if err := domain.Collect(emailErr); err != nil {
		return err
	}
	role, err := parseRoleField(req.Role)
	if err != nil {
		return err
	}
	if !who.user.Admin {
		return errInvitationsUnavailable
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

func (s *Server) checkMemberLimit(ctx context.Context, tx *storage.Store, team *storage.Team) error {
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	n, err := tx.CountMembers(ctx, team.ID, domain.RoleNone)
	if err != nil {
		return err
	}
	if domain.Exceeds(tt.Properties.Limits.Members, n) {
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

// ensureAnotherOwner refuses to leave a team without an owner.
func ensureAnotherOwner(ctx context.Context, tx *storage.Store, teamID string) error {
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
