package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Device snapshots: the platform asks a connected device for its current flows (the `upload` command, through
// whichever replica holds its connection) and stores them as a snapshot of the device's application.

type deviceSnapshotRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

func (s *Server) registerDeviceSnapshots() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/devices/:deviceId/snapshots", Tag: "devices", Body: deviceSnapshotRequest{}, Status: 201,
		Summary: "Pull the device's current flows into a snapshot of its application (the device must be connected)."}, s.createDeviceSnapshot)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/devices/:deviceId/snapshots", Tag: "devices", Summary: "The snapshots pulled from the device."}, s.listDeviceSnapshots)
}

func (s *Server) createDeviceSnapshot(c *fiber.Ctx) error {
	var req deviceSnapshotRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, d, err := s.deviceFor(c, domain.ActionDeviceSnapshotCreate)
	if err != nil {
		return err
	}
	if err := domain.Collect(domain.ValidateName("name", req.Name), domain.ValidateDescription("description", req.Description)); err != nil {
		return err
	}
	if _, err := s.devices.ApplicationOf(c.UserContext(), s.store, d); err != nil {
		return err
	}
	if err := devices.CheckSnapshotRoom(c.UserContext(), s.store, d.ID); err != nil {
		return err // before the device is asked for its flows; checked again when the snapshot is stored
	}
	if s.broker == nil {
		return domain.Unavailable("broker_unavailable", "This API runs without a broker, so it cannot reach devices.")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 15*time.Second)
	defer cancel()
	up, err := s.broker.RequestUpload(ctx, d)
	if err != nil {
		return err
	}
	var snap *storage.Snapshot
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		snap, err = s.devices.CreateSnapshot(ctx, tx, d, up, "", devices.SnapshotMeta{Name: req.Name, Description: req.Description, CreatedBy: userIDOf(who)})
		if err != nil {
			return err
		}
		return audit(c, tx, who, d.TeamID, "device.snapshot.created", "snapshot", snap.ID, map[string]any{"deviceId": d.ID, "name": snap.Name})
	})
	if err != nil {
		return err
	}
	return created(c, snapshotMetaView(snap))
}

func (s *Server) listDeviceSnapshots(c *fiber.Ctx) error {
	_, d, err := s.deviceFor(c, domain.ActionDeviceSnapshotList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListDeviceSnapshots(c.UserContext(), d.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, snapshotMetaView)
}
