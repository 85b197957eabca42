package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// An instance's device target: a snapshot of the instance that every device assigned to it runs, and that a
// device assigned later takes (FlowFuse's "target snapshot for devices" of an instance).

type deviceTargetRequest struct {
	SnapshotID string `json:"snapshotId"`
}

func (s *Server) registerDeviceTargets() {
	path := "/api/v1/instances/:instanceId/device-target"
	s.route(routeDoc{Method: "PUT", Path: path, Tag: "devices", Body: deviceTargetRequest{},
		Summary: "Make a snapshot of the instance its devices' target: every device assigned to the instance gets it at once, and so does one assigned later."}, s.setInstanceDeviceTarget)
	s.route(routeDoc{Method: "DELETE", Path: path, Tag: "devices",
		Summary: "Clear the instance's device target: its devices keep running what they run, and a device assigned later gets nothing."}, s.clearInstanceDeviceTarget)
}

func (s *Server) setInstanceDeviceTarget(c *fiber.Ctx) error {
	var req deviceTargetRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(requiredField("snapshotId", req.SnapshotID)); err != nil {
		return err
	}
	return s.changeInstanceDeviceTarget(c, &req.SnapshotID)
}

func (s *Server) clearInstanceDeviceTarget(c *fiber.Ctx) error {
	return s.changeInstanceDeviceTarget(c, nil)
}

// changeInstanceDeviceTarget sets (or, with nil, clears) the target after checking that the snapshot is one of
// the instance's own, then tells the instance's devices.
func (s *Server) changeInstanceDeviceTarget(c *fiber.Ctx, snapshotID *string) error {
	who, in, err := s.instanceFor(c, domain.ActionDeviceSnapshotSetTarget)
	if err != nil {
		return err
	}
	_, err = s.svc.deviceTargets.Set(c.UserContext(), who.userID(), in, snapshotID, func(ctx context.Context, tx *storage.Store) error {
		if snapshotID == nil {
			return nil
		}
		return snapshotOfInstance(ctx, tx, in, *snapshotID)
	})
	if err != nil {
		return err
	}
	return c.JSON(s.instanceView(in))
}

// snapshotOfInstance refuses a snapshot that is not the instance's own (another team's is unknown).
func snapshotOfInstance(ctx context.Context, tx *storage.Store, in *storage.Instance, id string) error {
	snap, err := teamObject(ctx, tx.GetSnapshotMeta, "snapshotId", in.TeamID, id)
	if err != nil {
		return err
	}
	if snap.InstanceID != in.ID {
		return domain.Unprocessable("snapshot_other_instance", "An instance's device target is a snapshot of that instance.",
			domain.FieldError{Field: "snapshotId", Detail: "is a snapshot of another instance or of a device"})
	}
	return nil
}
