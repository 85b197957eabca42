package api

import (
	"context"
	"fmt"
	"maps"
	"slices"

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
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/teams/:teamId", Summary: "Rename a team or change its slug or type (team owners: self-service types only; the team must fit the new type's limits).", Tag: "teams", Body: updateTeamRequest{}}, s.updateTeam)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/teams/:teamId", Summary: "Delete a team.", Tag: "teams", Status: 204}, s.deleteTeam)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/audit-log", Summary: "The team's audit log.", Tag: "teams"}, s.listTeamAudit)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/blueprints", Summary: "The blueprints the team's type is offered, to create instances from.", Tag: "teams"}, s.listTeamBlueprints)
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
	tt, err := s.newTeamType(ctx, req.TeamTypeID, who)
	if err != nil {
		return err
	}
	team := &storage.Team{ID: domain.NewID(), Name: req.Name, Slug: req.Slug, TeamTypeID: tt.ID}
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

// newTeamType is the type of a new team: the one the creator names, if they may choose it, or else the oldest
// active self-service type.
func (s *Server) newTeamType(ctx context.Context, id string, who *caller) (*storage.TeamType, error) {
	if id != "" {
		return s.chosenTeamType(ctx, id, who)
	}
	types, _, err := storage.ListObjects[storage.TeamType](ctx, s.store, storage.Page{Limit: storage.MaxPageLimit})
	if err != nil {
		return nil, err
	}
	for i := range types {
		if types[i].Active && types[i].SelfService {
			return &types[i], nil
		}
	}
	return nil, domain.Unprocessable("no_team_type", "No active self-service team type exists; a platform admin must offer one (or name a type).")
}

// chosenTeamType checks a team type someone chose for a team. Team owners choose among the active self-service
// types; platform admins assign any type, an inactive one included. An inactive type is unknown to everyone
// else, so its ID tells an owner nothing.
func (s *Server) chosenTeamType(ctx context.Context, id string, who *caller) (*storage.TeamType, error) {
	tt, err := storage.GetObject[storage.TeamType](ctx, s.store, id)
	switch {
	case domain.IsKind(err, domain.KindNotFound) || err == nil && !tt.Active && !who.user.Admin:
		return nil, domain.Unprocessable("unknown_team_type", "That team type does not exist.", domain.FieldError{Field: "teamTypeId", Detail: "is not a team type"})
	case err != nil:
		return nil, err
	case !tt.SelfService && !who.user.Admin:
		return nil, &domain.Error{Kind: domain.KindForbidden, Code: "team_type_admin_only",
			Message:     "Only a platform admin can put a team on this team type; choose one of the self-service types.",
			Validations: []domain.FieldError{{Field: "teamTypeId", Detail: "is not a self-service team type"}}}
	}
	return tt, nil
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
	body := map[string]any{}
	var newType *storage.TeamType
	if req.TeamTypeID != nil && *req.TeamTypeID != team.TeamTypeID { // the team's own type sent back is no change
		if newType, err = s.chosenTeamType(ctx, *req.TeamTypeID, who); err != nil {
			return err
		}
		body["teamTypeId"] = map[string]string{"from": team.TeamTypeID, "to": newType.ID}
		team.TeamTypeID, cols = newType.ID, append(cols, "team_type_id")
	}
	if len(cols) == 0 {
		return c.JSON(teamView(team, role))
	}
	body["fields"] = cols
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		// The update comes first: on PostgreSQL it locks the team's row, so two type changes cannot interleave.
		if err := tx.UpdateTeam(ctx, team, cols...); err != nil {
			return err
		}
		if newType != nil {
			if err := checkTeamFits(ctx, tx, team.ID, newType); err != nil {
				return err
			}
		}
		if err := audit(c, tx, who, team.ID, "team.updated", "team", team.ID, body); err != nil {
			return err
		}
		if newType != nil && s.billing != nil { // last: once Stripe has the new items, nothing else may fail
			return s.billing.ChangeTeamType(ctx, tx, team.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.billing != nil && newType != nil {
		s.billing.UsageChanged(ctx, team.ID)  // a change made meanwhile is billed at the new type's prices
		s.billing.StatusChanged(ctx, team.ID) // the new type may bill a team that was free, or free one that was billed
	}
	return c.JSON(teamView(team, role))
}

// checkTeamFits refuses to move a team to a team type whose limits what the team holds already passes, naming
// the first such limit. Run it in the transaction that moves the team.
func checkTeamFits(ctx context.Context, tx *storage.Store, teamID string, tt *storage.TeamType) error {
	lim := tt.Properties.Limits
	members, err := tx.CountMembers(ctx, teamID, domain.RoleNone)
	if err != nil {
		return err
	}
	instances, err := tx.CountTeamInstances(ctx, teamID, "")
	if err != nil {
		return err
	}
	devices, err := tx.CountTeamDevices(ctx, teamID)
	if err != nil {
		return err
	}
	for _, l := range []struct {
		name        string
		holds, most int
	}{{"members", members, lim.Members}, {"instances", instances, lim.Instances}, {"devices", devices, lim.Devices}} {
		if l.most > 0 && l.holds > l.most {
			return teamTooBig(tt, l.name, fmt.Sprintf("%d %s", l.holds, l.name), l.most)
		}
	}
	for _, typeID := range slices.Sorted(maps.Keys(lim.InstancesPerType)) {
		n, err := tx.CountTeamInstances(ctx, teamID, typeID)
		if err != nil {
			return err
		}
		if most := lim.InstancesPerType[typeID]; most > 0 && n > most {
			return teamTooBig(tt, "instances_per_type", fmt.Sprintf("%d instances of instance type %s", n, typeID), most)
		}
	}
	return nil
}

// teamTooBig is the 409 of a team too big for a team type: its code names the limit, like the limits met when
// something is added.
func teamTooBig(tt *storage.TeamType, limit, holds string, most int) error {
	return &domain.Error{Kind: domain.KindLimit, Code: "limit_" + limit,
		Message:     fmt.Sprintf("The team holds %s; team type %q allows %d. Remove some first, or choose another type.", holds, tt.Name, most),
		Validations: []domain.FieldError{{Field: "teamTypeId", Detail: "its " + limit + " limit is below what the team holds"}}}
}

func (s *Server) deleteTeam(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamDelete)
	if err != nil {
		return err
	}
	var deviceIDs []string
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if deviceIDs, err = tx.TeamDeviceIDs(ctx, team.ID); err != nil {
			return err
		}
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
	go s.forgetDevices(team.ID, deviceIDs)
	return noContent(c)
}

// forgetDevices disconnects a deleted team's devices and removes their broker accounts, after the answer: an
// external broker takes one change at a time, each costing in proportion to its accounts (README, "External
// broker"). Accounts left when the process stops are deleted at the platform's next start.
func (s *Server) forgetDevices(teamID string, deviceIDs []string) {
	for _, id := range deviceIDs {
		if s.broker != nil {
			s.broker.DisconnectDevice(context.Background(), id)
		}
		if err := s.devices.DeleteAccount(context.Background(), teamID, id); err != nil {
			s.log.Warn("a deleted team's device keeps its broker account until the platform next starts", "team", teamID, "device", id, "err", err)
		}
	}
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

// listTeamBlueprints lists the blueprints the team may create instances from: those its team type is offered.
func (s *Server) listTeamBlueprints(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionApplicationList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListBlueprintsOfferedTo(c.UserContext(), team.TeamTypeID, p)
	if err != nil {
		return err
	}
	ptrs := make([]*storage.Blueprint, len(rows))
	for i := range rows {
		ptrs[i] = &rows[i]
	}
	if err := s.store.LoadBlueprintTeamTypes(c.UserContext(), ptrs...); err != nil {
		return err
	}
	return list(c, rows, next, blueprintView)
}
