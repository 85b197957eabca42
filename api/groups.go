package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type createGroupRequest struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Env         []domain.EnvVar `json:"env,omitempty"`
}

type updateGroupRequest struct {
	Name        *string          `json:"name,omitempty"`
	Description *string          `json:"description,omitempty"`
	Env         *[]domain.EnvVar `json:"env,omitempty"`
	// Settings are the group's fleet settings, under each device's own.
	Settings *devices.FleetSettingsInput `json:"settings,omitempty"`
}

type groupMembershipRequest struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

type groupJSON struct {
	ID               string          `json:"id"`
	ApplicationID    string          `json:"applicationId"`
	Name             string          `json:"name"`
	Description      string          `json:"description"`
	TargetSnapshotID *string         `json:"targetSnapshotId"`
	Env              []domain.EnvVar `json:"env"`
	// Settings are the group's fleet settings.
	Settings    devices.FleetSettingsView `json:"settings"`
	DeviceCount int                       `json:"deviceCount"`
	CreatedAt   time.Time                 `json:"createdAt"`
}

func groupView(g *storage.DeviceGroup, count int) groupJSON {
	return groupJSON{ID: g.ID, ApplicationID: g.ApplicationID, Name: g.Name, Description: g.Description,
		TargetSnapshotID: g.TargetSnapshotID, Env: g.Env, Settings: devices.ViewFleetSettings(g.FleetSettings), DeviceCount: count, CreatedAt: g.CreatedAt}
}

// maxMembershipChange bounds one membership request; bigger fleets are moved in several requests.
const maxMembershipChange = 5000

func (s *Server) registerGroups() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/applications/:applicationId/device-groups", Summary: "Create a device group.", Tag: "device-groups", Body: createGroupRequest{}, Status: 201}, s.createGroup)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/applications/:applicationId/device-groups", Summary: "The application's device groups.", Tag: "device-groups"}, s.listGroups)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/device-groups/:groupId", Summary: "One device group.", Tag: "device-groups"}, s.getGroup)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/device-groups/:groupId", Summary: "Rename a group or change its environment or fleet settings (its devices get a new settings hash and an update).", Tag: "device-groups", Body: updateGroupRequest{}}, s.updateGroup)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/device-groups/:groupId", Summary: "Delete a group; its devices keep running what they run, without the group's env and fleet settings (they get an update).", Tag: "device-groups", Status: 204}, s.deleteGroup)
	s.route(routeDoc{Method: "PUT", Path: "/api/v1/device-groups/:groupId/devices", Summary: "Add and remove devices.", Tag: "device-groups", Body: groupMembershipRequest{}}, s.changeGroupDevices)
}

func (s *Server) createGroup(c *fiber.Ctx) error {
	who, app, err := s.applicationFor(c, domain.ActionDeviceGroupCreate)
	if err != nil {
		return err
	}
	var req createGroupRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	errs := []*domain.FieldError{domain.ValidateName("name", req.Name), domain.ValidateDescription("description", req.Description)}
	if err := domain.Collect(errs...); err != nil {
		return err
	}
	if fe := domain.ValidateEnv("env", req.Env); fe != nil {
		return domain.Invalid(fe...)
	}
	g := &storage.DeviceGroup{ID: domain.NewID(), ApplicationID: app.ID, TeamID: app.TeamID, Name: req.Name, Description: req.Description, Env: req.Env}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertDeviceGroup(ctx, g); err != nil {
			return err
		}
		return audit(c, tx, who, g.TeamID, "application.device-group.created", "device-group", g.ID, map[string]any{"name": g.Name})
	})
	if err != nil {
		return err
	}
	return created(c, groupView(g, 0))
}

func (s *Server) listGroups(c *fiber.Ctx) error {
	_, app, err := s.applicationFor(c, domain.ActionDeviceGroupList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListDeviceGroups(c.UserContext(), app.ID, p)
	if err != nil {
		return err
	}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	counts, err := s.store.CountDevicesByGroup(c.UserContext(), ids)
	if err != nil {
		return err
	}
	return list(c, rows, next, func(g *storage.DeviceGroup) groupJSON { return groupView(g, counts[g.ID]) })
}

// groupFor loads the group in the path after checking the caller's access to its team.
func (s *Server) groupFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.DeviceGroup, error) {
	g, err := s.store.GetDeviceGroup(c.UserContext(), c.Params("groupId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, g.TeamID, action, "device group")
	return who, g, err
}

func (s *Server) getGroup(c *fiber.Ctx) error {
	_, g, err := s.groupFor(c, domain.ActionDeviceGroupRead)
	if err != nil {
		return err
	}
	n, err := s.store.CountGroupDevices(c.UserContext(), g.ID)
	if err != nil {
		return err
	}
	return c.JSON(groupView(g, n))
}

func (s *Server) updateGroup(c *fiber.Ctx) error {
	who, g, err := s.groupFor(c, domain.ActionDeviceGroupUpdate)
	if err != nil {
		return err
	}
	var req updateGroupRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var f fields
	f.set(req.Name != nil, "name", func() { g.Name = *req.Name; f.check(domain.ValidateName("name", g.Name)) })
	f.description(req.Description, &g.Description)
	f.set(req.Env != nil, "env", func() { g.Env = *req.Env; f.errs = append(f.errs, domain.ValidateEnv("env", g.Env)...) })
	cols, err := f.result()
	if err != nil {
		return err
	}
	if req.Settings != nil {
		if g.FleetSettings, err = s.devices.StorableFleetSettings("settings", *req.Settings, g.FleetSettings); err != nil {
			return err
		}
		cols = append(cols, "fleet_settings")
	}
	if len(cols) == 0 {
		return s.getGroup(c)
	}
	var moved []string
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.UpdateDeviceGroup(ctx, g, cols...); err != nil {
			return err
		}
		if req.Env != nil || req.Settings != nil {
			// Group env and fleet settings reach devices through their settings: a new settings hash for each
			// device of the group, and an `update` that makes its agent fetch them again.
			ids, err := tx.ListGroupDeviceIDs(ctx, g.ID)
			if err != nil {
				return err
			}
			if err := s.devices.RehashDevices(ctx, tx, ids); err != nil {
				return err
			}
			moved = ids
		}
		return audit(c, tx, who, g.TeamID, "application.device-group.updated", "device-group", g.ID, map[string]any{"fields": cols})
	})
	if err != nil {
		return err
	}
	s.notifyDevices(c.UserContext(), moved)
	return s.getGroup(c)
}

func (s *Server) deleteGroup(c *fiber.Ctx) error {
	who, g, err := s.groupFor(c, domain.ActionDeviceGroupDelete)
	if err != nil {
		return err
	}
	var released []string
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if active, err := tx.ActiveRolloutOfGroup(ctx, g.ID); err != nil || active != "" {
			if err == nil {
				err = domain.Conflict("rollout_active", "The group has a rollout running ("+active+"); abort it first.")
			}
			return err
		}
		if released, err = tx.ListGroupDeviceIDs(ctx, g.ID); err != nil {
			return err
		}
		if err := tx.DeleteDeviceGroup(ctx, g.ID); err != nil {
			return err
		}
		// Its devices lose the group's env and fleet settings: new settings hashes, and an update.
		if err := s.devices.RehashDevices(ctx, tx, released); err != nil {
			return err
		}
		return audit(c, tx, who, g.TeamID, "application.device-group.deleted", "device-group", g.ID, map[string]any{"name": g.Name})
	})
	if err != nil {
		return err
	}
	s.notifyDevices(c.UserContext(), released)
	return noContent(c)
}

// changeGroupDevices adds and removes devices. A device joining gets the group's target snapshot; a device
// leaving keeps running what it has until it is told otherwise.
func (s *Server) changeGroupDevices(c *fiber.Ctx) error {
	who, g, err := s.groupFor(c, domain.ActionDeviceGroupMembership)
	if err != nil {
		return err
	}
	var req groupMembershipRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if len(req.Add)+len(req.Remove) > maxMembershipChange {
		return &domain.Error{Kind: domain.KindTooLarge, Code: "too_many_items", Message: "Change at most 5000 devices per request."}
	}
	var changed []string
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		left, err := groupMembers(ctx, tx, g.ID, req.Remove)
		if err != nil {
			return err
		}
		joined, err := tx.AddGroupDevices(ctx, g, req.Add)
		if err != nil {
			return err
		}
		if err := tx.RemoveGroupDevices(ctx, g, req.Remove); err != nil {
			return err
		}
		// The group's env is in its devices' settings: those joining gain it, those leaving lose it.
		changed = append(joined, left...)
		if err := s.devices.RehashDevices(ctx, tx, changed); err != nil {
			return err
		}
		return audit(c, tx, who, g.TeamID, "application.device-group.membership-changed", "device-group", g.ID,
			map[string]any{"added": len(req.Add), "removed": len(req.Remove)})
	})
	if err != nil {
		return err
	}
	s.notifyDevices(c.UserContext(), changed)
	return s.getGroup(c)
}

// groupMembers returns those of ids that are devices of the group.
func groupMembers(ctx context.Context, tx *storage.Store, groupID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	members, err := tx.ListGroupDeviceIDs(ctx, groupID)
	if err != nil {
		return nil, err
	}
	in := make(map[string]bool, len(members))
	for _, id := range members {
		in[id] = true
	}
	var out []string
	for _, id := range ids {
		if in[id] {
			out, in[id] = append(out, id), false // once, even when named twice
		}
	}
	return out, nil
}

// notifyDevices sends devices whose target or settings changed the `update` command, wherever they are
// connected; the ones not reached learn it at their next check-in.
func (s *Server) notifyDevices(ctx context.Context, ids []string) {
	if s.broker == nil || len(ids) == 0 {
		return
	}
	if err := s.broker.NotifyDevices(ctx, ids); err != nil {
		s.log.Warn("notify devices; they will learn at their next check-in", "devices", len(ids), "err", err)
	}
}
