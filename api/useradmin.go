package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// User administration by platform admins: read, change (e-mail, name, admin flag), suspend and reinstate, force a
// password reset, delete. Each is recorded in the platform's audit log (no team). Two rules hold throughout:
// the platform keeps at least one active admin, and a team keeps at least one owner.

type updateUserRequest struct {
	Email *string `json:"email,omitempty"`
	Name  *string `json:"name,omitempty"`
	Admin *bool   `json:"admin,omitempty"`
}

// forcedResetJSON answers a forced password reset.
type forcedResetJSON struct {
	User userJSON `json:"user"`
	// Link is the reset link, only when no SMTP server is configured and so nothing was mailed: the admin passes
	// it on.
	Link string `json:"link,omitempty"`
}

var errLastAdmin = domain.Conflict("last_admin", "Flowyard must keep at least one active platform admin: make another user admin first.")

func (s *Server) registerUserAdministration() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/users/:userId", Summary: "Read a user (platform admins).", Tag: "users"}, s.getUser)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/users/:userId", Summary: "Change a user's e-mail, name or admin flag (platform admins). " +
		"The last active admin keeps the flag (409 last_admin).", Tag: "users", Body: updateUserRequest{}}, s.updateUser)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/users/:userId/actions/suspend", Summary: "Suspend a user (platform admins): their sessions, " +
		"live streams and pending reset links end at once and their tokens are refused until reinstated; not the last active admin (409 last_admin).",
		Tag: "users"}, s.suspendUser)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/users/:userId/actions/reinstate", Summary: "Reinstate a suspended user (platform admins).",
		Tag: "users"}, s.reinstateUser)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/users/:userId/actions/reset-password", Summary: "Force a password reset (platform admins): " +
		"the password stops working, every session ends, and a reset link is mailed (or returned as link without SMTP).",
		Tag: "users", Status: 202}, s.forcePasswordReset)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/users/:userId", Summary: "Delete a user (platform admins): memberships, sessions and tokens go; " +
		"what they created stays with its team. Refused while they are the last owner of a team (409 last_owner, naming the teams) " +
		"or the last active admin (409 last_admin).", Tag: "users", Status: 204}, s.deleteUser)
}

func (s *Server) getUser(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	u, err := s.store.GetUserByID(c.UserContext(), c.Params("userId"))
	if err != nil {
		return err
	}
	return c.JSON(userView(u))
}

// adminChange runs change on the user the path names inside a transaction, for a platform admin, and answers
// the user as it is afterwards. Live streams are checked again at once, since a change may have ended some.
func (s *Server) adminChange(c *fiber.Ctx, change func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error) (*storage.User, error) {
	who, err := requireAdmin(c)
	if err != nil {
		return nil, err
	}
	var u *storage.User
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if u, err = tx.GetUserByID(ctx, c.Params("userId")); err != nil {
			return err
		}
		return change(ctx, tx, who, u)
	})
	if err != nil {
		return nil, err
	}
	s.live.sweepNow()
	return u, nil
}

func (s *Server) updateUser(c *fiber.Ctx) error {
	var req updateUserRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := validateUserUpdate(&req); err != nil {
		return err
	}
	u, err := s.adminChange(c, func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error {
		changes, columns := applyUserUpdate(u, req)
		if len(columns) == 0 {
			return nil
		}
		if req.Admin != nil && !*req.Admin {
			if err := ensureAnotherAdmin(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if err := tx.UpdateUser(ctx, u, columns...); err != nil {
			if domain.IsKind(err, domain.KindConflict) {
				return domain.Conflict("email_taken", "Another account has that e-mail address.")
			}
			return err
		}
		return audit(c, tx, who, "", "user.updated", "user", u.ID, changes)
	})
	if err != nil {
		return err
	}
	return c.JSON(userView(u))
}

// validateUserUpdate checks the fields a change names, normalising the e-mail address.
func validateUserUpdate(req *updateUserRequest) error {
	var emailErr, nameErr *domain.FieldError
	if req.Email != nil {
		var email string
		email, emailErr = domain.ValidateEmail("email", *req.Email)
		req.Email = &email
	}
	if req.Name != nil {
		nameErr = domain.ValidateName("name", *req.Name)
	}
	return domain.Collect(emailErr, nameErr)
}

// applyUserUpdate sets the fields that change on u and returns them (from, to) for the audit log, with their columns.
func applyUserUpdate(u *storage.User, req updateUserRequest) (map[string]any, []string) {
	changes := map[string]any{}
	var columns []string
	if req.Email != nil && *req.Email != u.Email {
		changes["email"] = map[string]any{"from": u.Email, "to": *req.Email}
		u.Email, columns = *req.Email, append(columns, "email")
	}
	if req.Name != nil && *req.Name != u.Name {
		changes["name"] = map[string]any{"from": u.Name, "to": *req.Name}
		u.Name, columns = *req.Name, append(columns, "name")
	}
	if req.Admin != nil && *req.Admin != u.Admin {
		changes["admin"] = map[string]any{"from": u.Admin, "to": *req.Admin}
		u.Admin, columns = *req.Admin, append(columns, "admin")
	}
	return changes, columns
}

// ensureAnotherAdmin refuses to take away the last active platform admin: user is about to lose the flag, be
// suspended or deleted. The active admins are locked first, so two admins demoting each other at once cannot
// both succeed.
func ensureAnotherAdmin(ctx context.Context, tx *storage.Store, userID string) error {
	if err := tx.LockAdmins(ctx); err != nil {
		return err
	}
	others, err := tx.CountActiveAdmins(ctx, userID)
	if err != nil {
		return err
	}
	if others == 0 {
		return errLastAdmin
	}
	return nil
}

func (s *Server) suspendUser(c *fiber.Ctx) error {
	u, err := s.adminChange(c, func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error {
		if u.SuspendedAt != nil {
			return nil // already suspended: nothing changes
		}
		if u.Admin {
			if err := ensureAnotherAdmin(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		at := time.Now().UTC().Truncate(time.Microsecond)
		u.SuspendedAt = &at
		return runSteps(
			func() error { return tx.SetUserSuspended(ctx, u.ID, &at) },
			func() error { return tx.DeleteSessionsOfUser(ctx, u.ID, "") },
			func() error { return tx.DeletePasswordResets(ctx, u.ID) },
			func() error {
				return audit(c, tx, who, "", "user.suspended", "user", u.ID, map[string]any{"email": u.Email})
			},
		)
	})
	if err != nil {
		return err
	}
	return c.JSON(userView(u))
}

func (s *Server) reinstateUser(c *fiber.Ctx) error {
	u, err := s.adminChange(c, func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error {
		if u.SuspendedAt == nil {
			return nil
		}
		u.SuspendedAt = nil
		if err := tx.SetUserSuspended(ctx, u.ID, nil); err != nil {
			return err
		}
		return audit(c, tx, who, "", "user.reinstated", "user", u.ID, map[string]any{"email": u.Email})
	})
	if err != nil {
		return err
	}
	return c.JSON(userView(u))
}

// forcePasswordReset empties the password (no password signs in until the reset link sets one), ends every
// session and pending link, and mails a new link. Personal access tokens stay, as with a password change.
func (s *Server) forcePasswordReset(c *fiber.Ctx) error {
	var link string
	var mailed bool
	u, err := s.adminChange(c, func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error {
		if err := ensureMayReset(u); err != nil {
			return err
		}
		err := runSteps(
			func() error { return tx.SetPassword(ctx, u.ID, "") },
			func() error { return tx.DeleteSessionsOfUser(ctx, u.ID, "") },
			func() error { return tx.DeletePasswordResets(ctx, u.ID) },
			func() error {
				return audit(c, tx, who, "", "user.password.reset-forced", "user", u.ID, map[string]any{"email": u.Email})
			},
		)
		if err != nil {
			return err
		}
		link, mailed, err = s.queueResetLink(ctx, tx, u)
		return err
	})
	if err != nil {
		return err
	}
	s.mailQueued()
	answer := forcedResetJSON{User: userView(u)}
	if !mailed {
		answer.Link = link
	}
	return c.Status(fiber.StatusAccepted).JSON(answer)
}

// ensureMayReset refuses a forced reset of an account that could not use the link: a suspended one, or one whose
// address is not confirmed.
func ensureMayReset(u *storage.User) error {
	switch signInRefusal(u) {
	case nil:
		return nil
	case errAccountSuspended:
		return domain.Conflict("account_suspended", "The user is suspended, and a suspended user cannot reset a password: reinstate them first.")
	}
	return domain.Conflict("email_not_verified", "The user has not confirmed their e-mail address yet, so a reset link could reach someone else.")
}

// deleteUser removes an account. Its memberships, sessions, tokens and pending links go with it; what it created
// (snapshots, schedules, operations, rollouts, promotions, invitations it sent) stays with its team, the creator
// left empty where the schema links it, and the audit log keeps its ID. Each team it was in records the removal.
func (s *Server) deleteUser(c *fiber.Ctx) error {
	_, err := s.adminChange(c, func(ctx context.Context, tx *storage.Store, who *caller, u *storage.User) error {
		if u.Admin && u.SuspendedAt == nil {
			if err := ensureAnotherAdmin(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if err := ensureNoTeamLeftOwnerless(ctx, tx, u); err != nil {
			return err
		}
		teams, err := tx.TeamIDsOfUser(ctx, u.ID)
		if err != nil {
			return err
		}
		for _, teamID := range teams {
			if err := audit(c, tx, who, teamID, "team.member.removed", "user", u.ID, map[string]any{"reason": "user deleted"}); err != nil {
				return err
			}
		}
		if err := tx.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		return audit(c, tx, who, "", "user.deleted", "user", u.ID, map[string]any{"email": u.Email, "name": u.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// ensureNoTeamLeftOwnerless refuses to delete the last owner of a team, naming every such team.
func ensureNoTeamLeftOwnerless(ctx context.Context, tx *storage.Store, u *storage.User) error {
	teams, err := tx.TeamsOwnedOnlyBy(ctx, u.ID)
	if err != nil || len(teams) == 0 {
		return err
	}
	names := make([]string, len(teams))
	for i, t := range teams {
		names[i] = fmt.Sprintf("%q (%s)", t.Name, t.Slug)
	}
	return domain.Conflict("last_owner", fmt.Sprintf("%s is the last owner of %s: make another member owner there, or delete the team, first.",
		u.Email, strings.Join(names, ", ")))
}

// runSteps runs steps in order until one fails.
func runSteps(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
