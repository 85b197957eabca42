package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type createTeamRequest struct {
	Name       string `json:"name"`
	Slug       string `json:"slug,omitempty"`
	TeamTypeID string `json:"teamTypeId,omitempty"`
}

type updateTeamRequest struct {
	Name       *string `json:"name,omitempty"`
	Slug       *string `json:"slug,omitempty"`
	TeamTypeID *string `json:"teamTypeId,omitempty"`
}

func (s *Server) registerTeams() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams", Summary: "Create a team; the caller becomes its owner.", Tag: "teams", Body: createTeamRequest{}, Status: 201}, s.createTeam)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams", Summary: "The caller's teams.", Tag: "teams"}, s.listTeams)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId", Summary: "One team.", Tag: "teams"}, s.getTeam)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/teams/:teamId", Summary: "Rename a team or change its slug or type.", Tag: "teams", Body: updateTeamRequest{}}, s.updateTeam)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/teams/:teamId", Summary: "Delete a team.", Tag: "teams", Status: 204}, s.deleteTeam)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/audit-log", Summary: "The team's audit log.", Tag: "teams"}, s.listTeamAudit)
}

func (s *Server) createTeam(c *fiber.Ctx) error {
	who, err := requireAny(c, domain.ActionTeamCreate)
	if err != nil {
		return err
	}
	var req createTeamRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Slug == "" {
		req.Slug = domain.Slugify(req.Name)
	}
	if err := domain.Collect(domain.ValidateName("name", req.Name), domain.ValidateSlug("slug", req.Slug)); err != nil {
		return err
	}
	ctx := c.UserContext()
	typeID, err := s.resolveTeamType(ctx, req.TeamTypeID, who)
	if err != nil {
		return err
	}
	team := &storage.Team{ID: domain.NewID(), Name: req.Name, Slug: req.Slug, TeamTypeID: typeID}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertTeam(ctx, team); err != nil {
			return err
		}
		if err := tx.InsertMembership(ctx, &storage.Membership{TeamID: team.ID, UserID: who.user.ID, Role: domain.RoleOwner}); err != nil {
			return err
		}
		if s.billing != nil {
			if err := s.billing.TeamCreated(ctx, tx, team); err != nil {
				return err
			}
		}
		return audit(c, tx, who, team.ID, "team.created", "team", team.ID, map[string]any{"name": team.Name, "slug": team.Slug})
	})
	if err != nil {
		return err
	}
	if s.billing != nil {
		s.billing.StatusChanged(ctx, team.ID) // arms the trial's timer
	}
	return created(c, teamView(team, domain.RoleOwner))
}

// resolveTeamType checks a requested team type, or picks the first active one when none is named. Only
// platform admins may place a team on an inactive type.
func (s *Server) resolveTeamType(ctx context.Context, id string, who *caller) (string, error) {
	if id == "" {
		types, _, err := storage.ListObjects[storage.TeamType](ctx, s.store, storage.Page{Limit: storage.MaxPageLimit})
		if err != nil {
			return "", err
		}
		for _, t := range types {
			if t.Active {
				return t.ID, nil
			}
		}
		return "", domain.Unprocessable("no_team_type", "No active team type exists; a platform admin must create one.")
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, s.store, id)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && !tt.Active && !who.user.Admin {
		return "", domain.Unprocessable("unknown_team_type", "That team type does not exist.", domain.FieldError{Field: "teamTypeId", Detail: "is not a team type"})
	}
	return id, err
}

func (s *Server) listTeams(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTeamsOfUser(c.UserContext(), who.user.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, func(t *storage.TeamWithRole) teamJSON { return teamView(&t.Team, t.Role) })
}

// teamFor loads the team in the path after checking the caller's access to it.
func (s *Server) teamFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Team, domain.Role, error) {
	id := c.Params("teamId")
	who, role, err := s.teamAccess(c, id, action, "team")
	if err != nil {
		return nil, nil, role, err
	}
	team, err := s.store.GetTeam(c.UserContext(), id)
	return who, team, role, err
}

func (s *Server) getTeam(c *fiber.Ctx) error {
	_, team, role, err := s.teamFor(c, domain.ActionTeamRead)
	if err != nil {
		return err
	}
	return c.JSON(teamView(team, role))
}

func (s *Server) updateTeam(c *fiber.Ctx) error {
	who, team, role, err := s.teamFor(c, domain.ActionTeamEdit)
	if err != nil {
		return err
	}
	var req updateTeamRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var cols []string
	var errs []*domain.FieldError
	if req.Name != nil {
		team.Name, cols, errs = *req.Name, append(cols, "name"), append(errs, domain.ValidateName("name", *req.Name))
	}
	if req.Slug != nil {
		team.Slug, cols, errs = *req.Slug, append(cols, "slug"), append(errs, domain.ValidateSlug("slug", *req.Slug))
	}
	if err := domain.Collect(errs...); err != nil {
		return err
	}
	ctx := c.UserContext()
	if req.TeamTypeID != nil {
		if err := s.changeTeamType(ctx, team, *req.TeamTypeID, who); err != nil {
			return err
		}
		cols = append(cols, "team_type_id")
	}
	if len(cols) == 0 {
		return c.JSON(teamView(team, role))
	}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.UpdateTeam(ctx, team, cols...); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "team.updated", "team", team.ID, map[string]any{"fields": cols})
	})
	if err != nil {
		return err
	}
	if s.billing != nil && req.TeamTypeID != nil {
		s.billing.UsageChanged(ctx, team.ID) // the new type's prices
	}
	return c.JSON(teamView(team, role))
}

// changeTeamType moves a team to another type if the team fits the new type's limits.
func (s *Server) changeTeamType(ctx context.Context, team *storage.Team, typeID string, who *caller) error {
	if _, err := s.resolveTeamType(ctx, typeID, who); err != nil {
		return err
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, s.store, typeID)
	if err != nil {
		return err
	}
	members, err := s.store.CountMembers(ctx, team.ID, domain.RoleNone)
	if err != nil {
		return err
	}
	if lim := tt.Properties.Limits.Members; lim > 0 && members > lim {
		return domain.LimitExceeded("members", lim)
	}
	team.TeamTypeID = typeID
	return nil
}

func (s *Server) deleteTeam(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamDelete)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteTeam(ctx, team.ID); err != nil {
			return err
		}
		// The audit entry outlives the team, so an admin can still see who deleted it.
		if err := audit(c, tx, who, team.ID, "team.deleted", "team", team.ID, map[string]any{"slug": team.Slug}); err != nil {
			return err
		}
		if s.billing != nil {
			return s.billing.CancelForTeam(ctx, tx, team.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) listTeamAudit(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamAuditLog)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListAudit(c.UserContext(), team.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, auditView)
}
