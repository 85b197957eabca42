package api

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The agent side of the FlowFuse device protocol (docs/device-protocol.md §2): state
// check-ins, the target snapshot and settings, and audit events. These routes accept only the device's own
// token (fyd_…): no token or an unknown one answers 401, another device's id 404. The FlowFuse agent wipes
// itself on either, so a device never keeps running on revoked credentials.

// maxAuditBytes caps one audit event from a device.
const maxAuditBytes = 64 << 10

func isDeviceCredential(token string) bool {
	return strings.HasPrefix(token, domain.TokenPrefixDevice) || strings.HasPrefix(token, domain.TokenPrefixProvisioning)
}

func (s *Server) registerDeviceLive() {
	live := "/api/v1/devices/:deviceId/live/"
	s.route(routeDoc{Method: "POST", Path: live + "state", Tag: "device-protocol", Body: map[string]any{},
		Summary: "Agent check-in: store its state; 200 {} when it runs what it should, else 409 naming its owner, snapshot and settings (device token only)."}, s.postLiveState)
	s.route(routeDoc{Method: "GET", Path: live + "state", Tag: "device-protocol",
		Summary: "What the device should run: owner, snapshot, settings hash, mode (device token only)."}, s.getLiveState)
	s.route(routeDoc{Method: "GET", Path: live + "snapshot", Tag: "device-protocol",
		Summary: "The device's target snapshot, credentials re-encrypted to its own secret; {} when it has none (device token only)."}, s.getLiveSnapshot)
	s.route(routeDoc{Method: "GET", Path: live + "settings", Tag: "device-protocol",
		Summary: "The device's settings and their hash (device token only)."}, s.getLiveSettings)
	s.route(routeDoc{Method: "POST", Path: "/logging/device/:deviceId/audit", Tag: "device-protocol", Body: map[string]any{},
		Summary: "An audit event from the device's agent or Node-RED (device token only)."}, s.postDeviceAudit)
}

// liveDevice authenticates the device token and returns its device, which must be the one in the path.
func (s *Server) liveDevice(c *fiber.Ctx) (*storage.Device, error) {
	token, ok := bearerToken(c)
	if !ok || token == "" {
		return nil, domain.Unauthorized("Send the device's token as a bearer token.")
	}
	d, err := s.devices.DeviceByToken(c.UserContext(), token)
	if err != nil {
		return nil, err
	}
	if d.ID != c.Params("deviceId") {
		s.log.Warn("a device token was used for another device", "device", d.ID, "path", c.Path())
		return nil, domain.NotFound("device")
	}
	return d, nil
}

func (s *Server) postLiveState(c *fiber.Ctx) error {
	d, err := s.liveDevice(c)
	if err != nil {
		return err
	}
	r, err := devices.ParseReport(c.Body())
	if err != nil {
		s.log.Warn("refused a malformed device state report", "device", d.ID, "err", err)
		return err
	}
	ctx := c.UserContext()
	provisioning := r.State == "provisioning" && r.Provisioning != nil && r.Provisioning.DeviceConfig != nil && d.ApplicationID != nil
	if provisioning {
		if err := s.importProvisionedFlows(ctx, d, r); err != nil {
			return err
		}
		r.State = "offline"
	}
	if err := s.devices.Record(ctx, d, r, time.Now()); err != nil {
		return err
	}
	if conflict := devices.CheckIn(d, r, provisioning); conflict != nil {
		conflict["code"] = conflict["error"]
		conflict["message"] = "The device should run another owner, snapshot or settings."
		return c.Status(fiber.StatusConflict).JSON(conflict)
	}
	return c.JSON(fiber.Map{})
}

// importProvisionedFlows turns the flows an agent brings at one-time-code setup into a snapshot of its
// application and makes it the device's target (docs/device-protocol.md §1.4 step 4). A device does that once: a
// second import answers 409 flows_already_imported and changes nothing.
func (s *Server) importProvisionedFlows(ctx context.Context, d *storage.Device, r *devices.Report) error {
	p := r.Provisioning
	cfg := p.DeviceConfig
	up := &devices.Upload{Flows: cfg.Flows, Credentials: cfg.Credentials}
	up.Package.Modules = cfg.Modules
	if cfg.Package != nil {
		up.Package.Modules = firstNonEmpty(cfg.Package.Modules, cfg.Package.Dependencies, cfg.Modules)
	}
	name := p.Name
	if name == "" {
		name = "Existing Flows Imported"
	}
	return s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		first, err := tx.MarkFlowsImported(ctx, d.ID, time.Now())
		if err != nil {
			return err
		}
		if !first {
			return domain.Conflict("flows_already_imported", "The device imported the flows it brought when it was provisioned; it imports them once.")
		}
		snap, err := s.devices.CreateSnapshot(ctx, tx, d, up, p.CredentialSecret, devices.SnapshotMeta{Name: name, Description: p.Description})
		if err != nil {
			return err
		}
		d.TargetSnapshotID = &snap.ID
		if err := s.devices.Rehash(ctx, tx, d); err != nil {
			return err
		}
		if err := tx.UpdateDevice(ctx, d, "target_snapshot_id", "settings_hash"); err != nil {
			return err
		}
		return tx.InsertAudit(ctx, &storage.AuditEntry{TeamID: &d.TeamID, Event: "device.snapshot.imported", EntityType: "device", EntityID: d.ID,
			Body: map[string]any{"snapshotId": snap.ID}})
	})
}

func firstNonEmpty(ms ...map[string]string) map[string]string {
	for _, m := range ms {
		if len(m) > 0 {
			return m
		}
	}
	return map[string]string{}
}

func (s *Server) getLiveState(c *fiber.Ctx) error {
	d, err := s.liveDevice(c)
	if err != nil {
		return err
	}
	t := devices.TargetOf(d)
	return c.JSON(fiber.Map{"application": t.Application, "project": t.Project, "snapshot": t.Snapshot, "settings": t.Settings,
		"mode": t.Mode, "licensed": false})
}

func (s *Server) getLiveSnapshot(c *fiber.Ctx) error {
	d, err := s.liveDevice(c)
	if err != nil {
		return err
	}
	doc, err := s.devices.LiveSnapshot(c.UserContext(), d)
	if err != nil {
		return err
	}
	return c.JSON(doc)
}

func (s *Server) getLiveSettings(c *fiber.Ctx) error {
	d, err := s.liveDevice(c)
	if err != nil {
		return err
	}
	doc, err := s.devices.LiveSettings(c.UserContext(), d)
	if err != nil {
		return err
	}
	return c.JSON(doc)
}

// deviceAuditEvent is the part of an audit event the platform reads; the rest is stored as it came.
type deviceAuditEvent struct {
	Event string `json:"event"`
	Info  *struct {
		Code string `json:"code"`
		Info string `json:"info"`
	} `json:"info"`
}

// postDeviceAudit stores an audit event of the device (its agent's `stopped`/`crashed`, or Node-RED's own)
// and lets a crash report set the device's state with the reason.
func (s *Server) postDeviceAudit(c *fiber.Ctx) error {
	d, err := s.liveDevice(c)
	if err != nil {
		return err
	}
	body := c.Body()
	if len(body) > maxAuditBytes {
		return &domain.Error{Kind: domain.KindTooLarge, Code: "audit_event_too_large", Message: "An audit event is at most 64 KiB."}
	}
	var ev deviceAuditEvent
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil || doc == nil || json.Unmarshal(body, &ev) != nil || ev.Event == "" || len(ev.Event) > 200 ||
		!domain.Storable(ev.Event) {
		return domain.InvalidField("event", "must be an audit event object with an event name")
	}
	if ev.Info != nil && (!domain.Storable(ev.Info.Code) || !domain.Storable(ev.Info.Info)) {
		return domain.InvalidField("info", "must not contain NUL characters")
	}
	ctx := c.UserContext()
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if ev.Event == "crashed" && ev.Info != nil {
			detail := strings.TrimSpace(strings.Join([]string{ev.Info.Code, ev.Info.Info}, ": "))
			if err := tx.SetDeviceState(ctx, d.ID, "crashed", strings.Trim(detail, ": ")); err != nil {
				return err
			}
		}
		return tx.InsertAudit(ctx, &storage.AuditEntry{TeamID: &d.TeamID, Event: "device." + ev.Event, EntityType: "device", EntityID: d.ID, Body: doc})
	})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{})
}
