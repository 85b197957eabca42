package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Devices, the user side: register (owners; or a provisioning token, as the FlowFuse agent does), list, read,
// assign to an application or an instance, set the target snapshot, switch developer mode, rename, delete
// (credentials revoked and the broker connection closed at once). Provisioning tokens are in
// provisioning_tokens.go, device snapshots in device_snapshots.go, live logs and actions in devicelogs.go, and the
// agent side of the protocol in devicelive.go.

// DeviceBroker reaches devices wherever they are connected: to this process's broker or to another replica's
// (relay.Relay implements it).
type DeviceBroker interface {
	// NotifyDevices sends the connected ones of the devices the `update` command for their current target; the
	// others learn it at their next check-in, so an error loses nothing.
	NotifyDevices(ctx context.Context, deviceIDs []string) error
	// DisconnectDevice closes a device's broker connection (its credentials are gone).
	DisconnectDevice(ctx context.Context, deviceID string)
	// RequestUpload asks a connected device for its current flows (the `upload` command) and waits for them.
	RequestUpload(ctx context.Context, d *storage.Device) (*devices.Upload, error)
}

type registerDeviceRequest struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Team string `json:"team"`
	// Setup and AgentHost are what an agent sends with a one-time code as bearer (docs/device-protocol.md §1.4).
	Setup     bool   `json:"setup,omitempty"`
	AgentHost string `json:"agentHost,omitempty"`
}

type updateDeviceRequest struct {
	Name             *string          `json:"name,omitempty"`
	ApplicationID    *string          `json:"applicationId,omitempty"`
	InstanceID       *string          `json:"instanceId,omitempty"`
	DeviceGroupID    *string          `json:"deviceGroupId,omitempty"`
	TargetSnapshotID *string          `json:"targetSnapshotId,omitempty"`
	Mode             *string          `json:"mode,omitempty"`
	Env              *[]domain.EnvVar `json:"env,omitempty"`
	// Settings are the device's own fleet settings (null: none, its group's apply).
	Settings *devices.FleetSettingsInput `json:"settings,omitempty"`
}

type teamRefJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type deviceJSON struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	TeamID           string          `json:"teamId"`
	OwnerType        string          `json:"ownerType"`
	ApplicationID    *string         `json:"applicationId"`
	InstanceID       *string         `json:"instanceId"`
	DeviceGroupID    *string         `json:"deviceGroupId"`
	Mode             string          `json:"mode"`
	Env              []domain.EnvVar `json:"env"`
	State            string          `json:"state"`
	StateDetail      string          `json:"stateDetail,omitempty"`
	Status           string          `json:"status"`
	LastSeenAt       *time.Time      `json:"lastSeenAt"`
	TargetSnapshotID *string         `json:"targetSnapshotId"`
	ActiveSnapshotID *string         `json:"activeSnapshotId"`
	IsDeploying      bool            `json:"isDeploying"`
	AgentVersion     string          `json:"agentVersion"`
	NodeRedVersion   string          `json:"nodeRedVersion"`
	NodejsVersion    string          `json:"nodejsVersion"`
	// Settings are the device's own fleet settings, laid over its group's.
	Settings  devices.FleetSettingsView `json:"settings"`
	CreatedAt time.Time                 `json:"createdAt"`
	UpdatedAt time.Time                 `json:"updatedAt"`
}

// registeredDeviceJSON is the one answer that carries a device's credentials, with what a device.yml needs.
type registeredDeviceJSON struct {
	deviceJSON
	Team        teamRefJSON          `json:"team"`
	ForgeURL    string               `json:"forgeURL"`
	Credentials *devices.Credentials `json:"credentials"`
	// AgentConfig is the device.yml an agent runs with, holding the credentials.
	AgentConfig string            `json:"agentConfig"`
	Meta        map[string]string `json:"meta"`
}

// compatibleFlowFuseVersion is the FlowFuse platform version whose device protocol Flowyard speaks; agents
// read it from meta.ffVersion to decide what they may offer.
const compatibleFlowFuseVersion = "2.33.2"

func (s *Server) deviceView(d *storage.Device) deviceJSON {
	env := d.Env
	if env == nil {
		env = []domain.EnvVar{}
	}
	return deviceJSON{ID: d.ID, Name: d.Name, Type: d.Type, TeamID: d.TeamID, OwnerType: devices.OwnerType(d),
		ApplicationID: d.ApplicationID, InstanceID: d.InstanceID, DeviceGroupID: d.DeviceGroupID, Mode: d.Mode, Env: env,
		State: d.State, StateDetail: d.StateDetail, Status: s.devices.Status(d, time.Now()), LastSeenAt: d.LastSeenAt,
		TargetSnapshotID: d.TargetSnapshotID, ActiveSnapshotID: d.ActiveSnapshotID,
		IsDeploying:  d.TargetSnapshotID != nil && (d.ActiveSnapshotID == nil || *d.ActiveSnapshotID != *d.TargetSnapshotID),
		AgentVersion: d.AgentVersion, NodeRedVersion: d.NodeRedVersion, NodejsVersion: d.NodejsVersion,
		Settings: devices.ViewFleetSettings(d.FleetSettings), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

func (s *Server) registerDevices() {
	// Device agents check that the root URL answers before they provision (docs/device-protocol.md §1.3). It is not
	// part of the API, so it stays out of the OpenAPI document.
	s.app.Get("/", s.root)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/devices", Tag: "devices", Body: registerDeviceRequest{},
		Summary: "Register a device (team owners), or auto-provision one with a provisioning token as bearer; answers its credentials, once."}, s.registerDevice)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/devices", Tag: "devices", Summary: "The team's devices."}, s.listTeamDevices)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/applications/:applicationId/devices", Tag: "devices", Summary: "The devices assigned to the application."}, s.listApplicationDevices)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/devices/:deviceId", Tag: "devices", Summary: "One device, with its state and connection status."}, s.getDevice)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/devices/:deviceId", Tag: "devices", Body: updateDeviceRequest{},
		Summary: "Assign to an application or instance (null unassigns) and a group of its application, set the target snapshot, mode, name or env; the device is told at once."}, s.updateDevice)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/devices/:deviceId", Tag: "devices", Status: 204,
		Summary: "Delete a device: its credentials stop working and its broker connection closes at once."}, s.deleteDevice)
	s.registerDeviceSnapshots()
	s.registerDeviceLogs()
	s.registerProvisioningTokens()
}

func (s *Server) root(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"name": "Flowyard", "version": s.cfg.Version, "api": "/api/v1"})
}

// registerDevice registers a device for a team owner, or for a provisioning token of the team.
func (s *Server) registerDevice(c *fiber.Ctx) error {
	var req registerDeviceRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if bearer, ok := bearerToken(c); ok && strings.HasPrefix(bearer, domain.TokenPrefixProvisioning) {
		return s.provisionDevice(c, bearer, &req)
	}
	if req.Setup {
		return s.setUpWithCode(c, &req)
	}
	if err := domain.Collect(requiredField("team", req.Team)); err != nil {
		return err
	}
	who, _, err := s.teamAccess(c, req.Team, domain.ActionDeviceCreate, "team")
	if err != nil {
		return err
	}
	return s.createDevice(c, who, &req, nil, "device.created")
}

// provisionDevice is the FlowFuse auto-provisioning flow (docs/device-protocol.md §1.3): a provisioning token of the
// team registers a device, assigned to what the token names.
func (s *Server) provisionDevice(c *fiber.Ctx, bearer string, req *registerDeviceRequest) error {
	hash, at := domain.HashToken(bearer), time.Now()
	// Counted before the token is looked up: a flood of unknown tokens costs the store nothing once limited.
	if err := s.limiter.provisionAttempt(hash, s.clientAddress(c), at); err != nil {
		return err
	}
	tok, err := s.store.GetTokenByHash(c.UserContext(), hash, at, devices.TokenKindProvisioning)
	if domain.IsKind(err, domain.KindNotFound) {
		return domain.Unauthorized("The provisioning token is not valid, has expired or was revoked.")
	}
	if err != nil {
		return err
	}
	if req.Team == "" && tok.TeamID != nil {
		req.Team = *tok.TeamID // the token names its team; FlowFuse's agent sends it anyway
	}
	if tok.TeamID == nil || *tok.TeamID != req.Team {
		return domain.Unauthorized("The provisioning token is not valid for that team.")
	}
	return s.createDevice(c, nil, req, tok, "device.provisioned")
}

func (s *Server) createDevice(c *fiber.Ctx, who *caller, req *registerDeviceRequest, tok *storage.Token, event string) error {
	var r *registration
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) (err error) {
		r, err = s.registerInTx(c, tx, who, req, tok, event)
		return err
	})
	if err != nil {
		return err
	}
	return s.registered(c, r)
}

// registration is a device whose credentials were just issued, with its team.
type registration struct {
	device *storage.Device
	team   *storage.Team
	creds  *devices.Credentials
}

// registerInTx stores a new device of req.Team, assigned to what tok (a provisioning token, or nil) names, and
// issues its credentials.
func (s *Server) registerInTx(c *fiber.Ctx, tx *storage.Store, who *caller, req *registerDeviceRequest, tok *storage.Token, event string) (*registration, error) {
	ctx := c.UserContext()
	d, err := s.devices.NewDevice(req.Team, req.Name, req.Type)
	if err != nil {
		return nil, err
	}
	team, err := tx.GetTeam(ctx, d.TeamID)
	if err != nil {
		return nil, err
	}
	if tok != nil {
		if err := assignProvisioned(ctx, tx, d, tok); err != nil {
			return nil, err
		}
	}
	if err := s.checkDeviceLimit(ctx, tx, team); err != nil {
		return nil, err
	}
	creds, err := s.devices.Register(ctx, tx, d)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"name": d.Name}
	if tok != nil {
		body["provisioningTokenId"] = tok.ID
	}
	return &registration{device: d, team: team, creds: creds}, audit(c, tx, who, d.TeamID, event, "device", d.ID, body)
}

// registered answers a registration (the one answer with a device's credentials) and counts the device for billing.
func (s *Server) registered(c *fiber.Ctx, r *registration) error {
	if s.billing != nil {
		s.billing.UsageChanged(c.UserContext(), r.device.TeamID)
	}
	return c.JSON(s.registeredView(r))
}

func (s *Server) registeredView(r *registration) registeredDeviceJSON {
	d := r.device
	return registeredDeviceJSON{deviceJSON: s.deviceView(d), Team: teamRefJSON{ID: r.team.ID, Name: r.team.Name},
		ForgeURL: s.cfg.PublicURL, Credentials: r.creds, AgentConfig: agentConfig(d.ID, s.cfg.PublicURL, r.creds),
		Meta: map[string]string{"ffVersion": compatibleFlowFuseVersion, "flowyardVersion": s.cfg.Version}}
}

// assignProvisioned gives a device what its provisioning token pre-assigns, checked again now: a token's
// application, instance or group may have gone since it was made (or the token predates these checks).
func assignProvisioned(ctx context.Context, tx *storage.Store, d *storage.Device, tok *storage.Token) error {
	req := provisioningTokenRequest{ApplicationID: optional(scopeValue(tok.Scopes, "application:")),
		InstanceID: optional(scopeValue(tok.Scopes, "instance:")), DeviceGroupID: optional(scopeValue(tok.Scopes, "deviceGroup:"))}
	owner, err := provisioningOwner(ctx, tx, d.TeamID, &req)
	if err != nil {
		return err
	}
	d.ApplicationID, d.InstanceID, d.DeviceGroupID = owner.application, owner.instance, owner.group
	if owner.groupTarget != nil {
		d.TargetSnapshotID = owner.groupTarget
	}
	if owner.instanceTarget != nil {
		d.TargetSnapshotID = owner.instanceTarget
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// checkDeviceLimit applies the team type's device limit, inside the registering transaction.
func (s *Server) checkDeviceLimit(ctx context.Context, tx *storage.Store, team *storage.Team) error {
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	if tt.Properties.Limits.Devices <= 0 {
		// No limit: the team's registrations go side by side (behind the team's lock, a fleet provisioning at once
		// joined one device at a time across every replica), held only against a move of the team to another
		// type. One that happened meanwhile is met below, as a limit is.
		typeID, err := tx.HoldTeam(ctx, team.ID)
		if err != nil || typeID == tt.ID {
			return err
		}
	}
	if err := tx.LockTeam(ctx, team.ID); err != nil {
		return err
	}
	typeID, err := tx.HoldTeam(ctx, team.ID) // the type as it is now the team is locked
	if err != nil {
		return err
	}
	if typeID != tt.ID {
		if tt, err = storage.GetObject[storage.TeamType](ctx, tx, typeID); err != nil {
			return err
		}
	}
	n, err := tx.CountTeamDevices(ctx, team.ID)
	if err != nil {
		return err
	}
	if domain.Exceeds(tt.Properties.Limits.Devices, n) {
		return domain.LimitExceeded("devices", tt.Properties.Limits.Devices)
	}
	return nil
}

func (s *Server) listTeamDevices(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	if _, _, err := s.teamAccess(c, teamID, domain.ActionDeviceList, "team"); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTeamDevices(c.UserContext(), teamID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, s.deviceView)
}

func (s *Server) listApplicationDevices(c *fiber.Ctx) error {
	_, app, err := s.applicationFor(c, domain.ActionDeviceList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListApplicationDevices(c.UserContext(), app.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, s.deviceView)
}

// deviceFor loads the device in the path after checking the caller's access to its team.
func (s *Server) deviceFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Device, error) {
	d, err := s.store.GetDevice(c.UserContext(), c.Params("deviceId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, d.TeamID, action, "device")
	return who, d, err
}

func (s *Server) getDevice(c *fiber.Ctx) error {
	_, d, err := s.deviceFor(c, domain.ActionDeviceRead)
	if err != nil {
		return err
	}
	return c.JSON(s.deviceView(d))
}

// patchAction is the least action a device change needs: owners change what the device is, where it belongs
// and its fleet settings; members may change its env and what it runs.
func patchAction(req *updateDeviceRequest, present map[string]bool) domain.Action {
	switch {
	case present["name"] || present["applicationId"] || present["instanceId"] || present["deviceGroupId"] || present["mode"] || present["settings"]:
		return domain.ActionDeviceEdit
	case present["targetSnapshotId"]:
		return domain.ActionDeviceSnapshotSetTarget
	}
	return domain.ActionDeviceEditEnv
}

func (s *Server) updateDevice(c *fiber.Ctx) error {
	var req updateDeviceRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	present, err := presentKeys(c.Body())
	if err != nil {
		return err
	}
	who, d, err := s.deviceFor(c, patchAction(&req, present))
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var cols []string
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if cols, err = s.applyDevicePatch(ctx, tx, d, &req, present); err != nil || len(cols) == 0 {
			return err
		}
		if err := s.devices.Rehash(ctx, tx, d); err != nil {
			return err
		}
		if err := tx.UpdateDevice(ctx, d, append(cols, "settings_hash")...); err != nil {
			return err
		}
		if err := audit(c, tx, who, d.TeamID, "device.updated", "device", d.ID, map[string]any{"fields": cols}); err != nil {
			return err
		}
		return s.devices.RefreshAccount(ctx, d, cols)
	})
	if err != nil {
		return err
	}
	if len(cols) > 0 {
		s.notifyDevices(ctx, []string{d.ID})
	}
	if d.Mode != devices.ModeDeveloper {
		if err := s.stopDeviceEditor(ctx, d); err != nil {
			return err
		}
	}
	return c.JSON(s.deviceView(d))
}

// presentKeys lists the top-level keys of a JSON object body, so that null ("unassign") and absent differ.
func presentKeys(body []byte) (map[string]bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, domain.InvalidField("body", "must be a JSON object")
	}
	out := make(map[string]bool, len(raw))
	for k := range raw {
		out[k] = true
	}
	return out, nil
}

// applyDevicePatch validates a change against the store and applies it to d, returning the changed columns.
func (s *Server) applyDevicePatch(ctx context.Context, tx *storage.Store, d *storage.Device, req *updateDeviceRequest, present map[string]bool) ([]string, error) {
	var cols []string
	if present["name"] {
		if req.Name == nil {
			return nil, domain.InvalidField("name", "is required")
		}
		if fe := domain.ValidateName("name", *req.Name); fe != nil {
			return nil, domain.Invalid(*fe)
		}
		d.Name, cols = *req.Name, append(cols, "name")
	}
	if present["mode"] {
		if req.Mode == nil || (*req.Mode != devices.ModeAutonomous && *req.Mode != devices.ModeDeveloper) {
			return nil, domain.InvalidField("mode", "must be autonomous or developer")
		}
		d.Mode, cols = *req.Mode, append(cols, "mode")
	}
	if present["env"] {
		env := []domain.EnvVar{}
		if req.Env != nil {
			env = *req.Env
		}
		if errs := domain.ValidateEnv("env", env); errs != nil {
			return nil, domain.Invalid(errs...)
		}
		d.Env, cols = env, append(cols, "env")
	}
	if present["settings"] {
		var in devices.FleetSettingsInput
		if req.Settings != nil {
			in = *req.Settings
		}
		f, err := s.devices.StorableFleetSettings("settings", in, d.FleetSettings)
		if err != nil {
			return nil, err
		}
		d.FleetSettings, cols = f, append(cols, "fleet_settings")
	}
	ownerCols, err := s.assignOwner(ctx, tx, d, req, present)
	if err != nil {
		return nil, err
	}
	groupCols, err := assignGroup(ctx, tx, d, req, present, len(ownerCols) > 0)
	if err != nil {
		return nil, err
	}
	cols = append(append(cols, ownerCols...), groupCols...)
	if present["targetSnapshotId"] {
		if err := s.checkTarget(ctx, tx, d, req.TargetSnapshotID); err != nil {
			return nil, err
		}
		d.TargetSnapshotID, cols = req.TargetSnapshotID, append(cols, "target_snapshot_id")
	}
	return slices.Compact(slices.Sorted(slices.Values(cols))), nil
}

// assignOwner moves a device to an application or an instance of its team (never both), or unassigns it. A
// device that changes owner forgets its target snapshot, which belonged to the old owner (and assignGroup takes
// it out of its group, which belongs to the old application); one assigned to an instance takes the instance's
// device target.
func (s *Server) assignOwner(ctx context.Context, tx *storage.Store, d *storage.Device, req *updateDeviceRequest, present map[string]bool) ([]string, error) {
	if !present["applicationId"] && !present["instanceId"] {
		return nil, nil
	}
	if req.ApplicationID != nil && req.InstanceID != nil {
		return nil, domain.Invalid(domain.FieldError{Field: "instanceId", Detail: "a device belongs to an application or to an instance, not both"})
	}
	app, inst := d.ApplicationID, d.InstanceID
	var target *string // a device assigned to an instance takes the instance's device target
	switch {
	case req.ApplicationID != nil:
		a, err := teamObject(ctx, tx.GetApplication, "applicationId", d.TeamID, *req.ApplicationID)
		if err != nil {
			return nil, err
		}
		app, inst = &a.ID, nil
	case req.InstanceID != nil:
		in, err := teamObject(ctx, tx.GetInstance, "instanceId", d.TeamID, *req.InstanceID)
		if err != nil {
			return nil, err
		}
		app, inst, target = nil, &in.ID, in.DeviceTargetSnapshotID
	default:
		if present["applicationId"] {
			app = nil
		}
		if present["instanceId"] {
			inst = nil
		}
	}
	if sameRef(app, d.ApplicationID) && sameRef(inst, d.InstanceID) {
		return nil, nil
	}
	d.ApplicationID, d.InstanceID, d.TargetSnapshotID = app, inst, target
	return []string{"application_id", "instance_id", "target_snapshot_id"}, nil
}

// assignGroup puts a device in a group of its team and application, or takes it out (null). A device joining
// a group gets the group's target, as one added through the group does; a device whose owner changed leaves
// its group unless the request names one of its new application.
func assignGroup(ctx context.Context, tx *storage.Store, d *storage.Device, req *updateDeviceRequest, present map[string]bool, ownerChanged bool) ([]string, error) {
	switch {
	case present["deviceGroupId"] && req.DeviceGroupID != nil:
		g, err := teamObject(ctx, tx.GetDeviceGroup, "deviceGroupId", d.TeamID, *req.DeviceGroupID)
		if err != nil {
			return nil, err
		}
		if !g.Admits(d) {
			return nil, groupOfOtherApplication("deviceGroupId")
		}
		d.DeviceGroupID = &g.ID
		if g.TargetSnapshotID == nil {
			return []string{"device_group_id"}, nil
		}
		d.TargetSnapshotID = g.TargetSnapshotID
		return []string{"device_group_id", "target_snapshot_id"}, nil
	case present["deviceGroupId"] || ownerChanged && d.DeviceGroupID != nil:
		d.DeviceGroupID = nil
		return []string{"device_group_id"}, nil
	}
	return nil, nil
}

func sameRef(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// checkTarget allows as a device's target a snapshot of its own application (an instance's or a device's);
// an instance-owned device runs only snapshots of its instance or pulled from itself.
func (s *Server) checkTarget(ctx context.Context, tx *storage.Store, d *storage.Device, id *string) error {
	if id == nil {
		return nil
	}
	appID, err := s.devices.ApplicationOf(ctx, tx, d)
	if err != nil {
		return err
	}
	snap, err := teamObject(ctx, tx.GetSnapshotMeta, "targetSnapshotId", d.TeamID, *id)
	if err != nil {
		return err
	}
	if snap.ApplicationID != appID {
		return domain.Unprocessable("snapshot_other_application", "The snapshot belongs to another application than the device's.",
			domain.FieldError{Field: "targetSnapshotId", Detail: "belongs to another application"})
	}
	if d.InstanceID != nil && snap.InstanceID != *d.InstanceID {
		from, err := tx.SnapshotDevice(ctx, snap.ID)
		if err != nil {
			return err
		}
		if from != d.ID {
			return domain.Unprocessable("snapshot_other_instance", "An instance's device runs only snapshots of that instance or of itself.",
				domain.FieldError{Field: "targetSnapshotId", Detail: "belongs to another instance"})
		}
	}
	return nil
}

func (s *Server) deleteDevice(c *fiber.Ctx) error {
	who, d, err := s.deviceFor(c, domain.ActionDeviceDelete)
	if err != nil {
		return err
	}
	revoked := false
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteDevice(ctx, d.ID); err != nil {
			return err
		}
		if err := audit(c, tx, who, d.TeamID, "device.deleted", "device", d.ID, map[string]any{"name": d.Name}); err != nil {
			return err
		}
		// Last, so that a broker that refuses leaves the device as it was; undone below if the commit fails.
		err := s.devices.RevokeAccount(ctx, d)
		revoked = err == nil
		return err
	})
	if err != nil {
		if revoked {
			s.restoreAccount(c.UserContext(), d)
		}
		return err
	}
	if s.broker != nil {
		s.broker.DisconnectDevice(c.UserContext(), d.ID)
	}
	if err := s.devices.DeleteAccount(c.UserContext(), d.TeamID, d.ID); err != nil {
		s.log.Warn("the deleted device's broker account is disabled but not deleted yet", "device", d.ID, "err", err)
	}
	if s.billing != nil {
		s.billing.UsageChanged(c.UserContext(), d.TeamID)
	}
	return noContent(c)
}

// restoreAccount re-enables the broker account of a device whose deletion did not commit.
func (s *Server) restoreAccount(ctx context.Context, d *storage.Device) {
	if err := s.devices.RestoreAccount(ctx, d); err != nil {
		s.log.Error("a device whose deletion failed keeps a disabled broker account until the platform next starts", "device", d.ID, "err", err)
	}
}
