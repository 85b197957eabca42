package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Provisioning tokens: a team's token that registers new devices, optionally straight into an application, an
// instance, or a group with its application. Shown once; stored hashed; revoking one also revokes the one-time
// codes made from it.

type provisioningTokenRequest struct {
	Name          string     `json:"name"`
	ApplicationID *string    `json:"applicationId,omitempty"`
	InstanceID    *string    `json:"instanceId,omitempty"`
	DeviceGroupID *string    `json:"deviceGroupId,omitempty"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
}

type provisioningTokenJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Token         string     `json:"token,omitempty"`
	TeamID        string     `json:"teamId"`
	ApplicationID string     `json:"applicationId,omitempty"`
	InstanceID    string     `json:"instanceId,omitempty"`
	DeviceGroupID string     `json:"deviceGroupId,omitempty"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
}

func (s *Server) registerProvisioningTokens() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/provisioning-tokens", Tag: "devices", Body: provisioningTokenRequest{}, Status: 201,
		Summary: "A token that registers new devices of the team (optionally straight into an application, an instance, or a group with its application); shown once."}, s.createProvisioningToken)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/provisioning-tokens", Tag: "devices", Summary: "The team's provisioning tokens (without the tokens)."}, s.listProvisioningTokens)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/teams/:teamId/provisioning-tokens/:tokenId", Tag: "devices", Status: 204,
		Summary: "Revoke a provisioning token."}, s.deleteProvisioningToken)
}

func provisioningTokenView(t *storage.Token) provisioningTokenJSON {
	v := provisioningTokenJSON{ID: t.ID, Name: t.Name, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt}
	if t.TeamID != nil {
		v.TeamID = *t.TeamID
	}
	v.ApplicationID, v.InstanceID, v.DeviceGroupID = scopeValue(t.Scopes, "application:"), scopeValue(t.Scopes, "instance:"), scopeValue(t.Scopes, "deviceGroup:")
	return v
}

func scopeValue(scopes []string, prefix string) string {
	for _, sc := range scopes {
		if v, ok := strings.CutPrefix(sc, prefix); ok {
			return v
		}
	}
	return ""
}

func (s *Server) createProvisioningToken(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	var req provisioningTokenRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, _, err := s.teamAccess(c, teamID, domain.ActionProvisioningTokenCreate, "team")
	if err != nil {
		return err
	}
	if err := validateProvisioningToken(&req); err != nil {
		return err
	}
	token, hash := domain.NewToken(domain.TokenPrefixProvisioning)
	t := &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: devices.TokenKindProvisioning, Name: req.Name,
		OwnerType: "team", OwnerID: teamID, TeamID: &teamID, ExpiresAt: req.ExpiresAt}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		owner, err := provisioningOwner(ctx, tx, teamID, &req)
		if err != nil {
			return err
		}
		t.Scopes = owner.scopes()
		if err := tx.InsertToken(ctx, t); err != nil {
			return err
		}
		return audit(c, tx, who, teamID, "team.device.provisioning-token.created", "team", teamID, map[string]any{"tokenId": t.ID, "name": t.Name})
	})
	if err != nil {
		return err
	}
	v := provisioningTokenView(t)
	v.Token = token
	return created(c, v)
}

func validateProvisioningToken(req *provisioningTokenRequest) error {
	if err := domain.Collect(domain.ValidateName("name", req.Name)); err != nil {
		return err
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return domain.InvalidField("expiresAt", "must be in the future")
	}
	return nil
}

// provisionedOwner is where a provisioning token puts the devices it registers.
type provisionedOwner struct {
	application, instance, group, groupTarget, instanceTarget *string
}

// scopes encodes the owner as token scopes.
func (o provisionedOwner) scopes() []string {
	scopes := []string{"device:provision"}
	add := func(prefix string, id *string) {
		if id != nil {
			scopes = append(scopes, prefix+*id)
		}
	}
	add("application:", o.application)
	add("instance:", o.instance)
	add("deviceGroup:", o.group)
	return scopes
}

// provisioningOwner checks what a provisioning token pre-assigns, in the transaction that stores it: an
// application or an instance of the team (not both), and a group of the team's, which needs the device in the
// group's application (named, or taken from the group).
func provisioningOwner(ctx context.Context, tx *storage.Store, teamID string, req *provisioningTokenRequest) (provisionedOwner, error) {
	var o provisionedOwner
	if req.ApplicationID != nil && req.InstanceID != nil {
		return o, domain.InvalidField("instanceId", "a device belongs to an application or to an instance, not both")
	}
	if req.ApplicationID != nil {
		a, err := teamObject(ctx, tx.GetApplication, "applicationId", teamID, *req.ApplicationID)
		if err != nil {
			return o, err
		}
		o.application = &a.ID
	}
	if req.InstanceID != nil {
		in, err := teamObject(ctx, tx.GetInstance, "instanceId", teamID, *req.InstanceID)
		if err != nil {
			return o, err
		}
		o.instance, o.instanceTarget = &in.ID, in.DeviceTargetSnapshotID
	}
	if req.DeviceGroupID == nil || *req.DeviceGroupID == "" {
		return o, nil
	}
	g, err := teamObject(ctx, tx.GetDeviceGroup, "deviceGroupId", teamID, *req.DeviceGroupID)
	if err != nil {
		return o, err
	}
	if o.instance != nil || o.application != nil && *o.application != g.ApplicationID {
		return o, groupOfOtherApplication("deviceGroupId")
	}
	o.application, o.group, o.groupTarget = &g.ApplicationID, &g.ID, g.TargetSnapshotID
	return o, nil
}

func (s *Server) listProvisioningTokens(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	if _, _, err := s.teamAccess(c, teamID, domain.ActionProvisioningTokenList, "team"); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTokensByOwner(c.UserContext(), devices.TokenKindProvisioning, "team", teamID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, provisioningTokenView)
}

func (s *Server) deleteProvisioningToken(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	who, _, err := s.teamAccess(c, teamID, domain.ActionProvisioningTokenDelete, "team")
	if err != nil {
		return err
	}
	id := c.Params("tokenId")
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if _, err := tx.GetTeamToken(ctx, id, devices.TokenKindProvisioning, teamID); err != nil {
			return err
		}
		if err := tx.DeleteTokenOfOwner(ctx, id, "team", teamID); err != nil {
			return err
		}
		if err := devices.RevokeProvisioningOTCs(ctx, tx, id); err != nil {
			return err
		}
		return audit(c, tx, who, teamID, "team.device.provisioning-token.deleted", "team", teamID, map[string]any{"tokenId": id})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}
