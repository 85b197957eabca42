package services

import (
	"context"
	"log/slog"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/storage"
)

// DeviceNotifier tells connected devices to fetch their current target (the broker, or the relay to it);
// a device not reached learns at its next check-in.
type DeviceNotifier interface {
	NotifyDevices(ctx context.Context, deviceIDs []string) error
}

// DeviceTargets sets an instance's device target: the snapshot of the instance that every device assigned to it
// runs, and that a device assigned later takes. A user sets it through the API (Set); a promotion's stage with
// deployToDevices sets it through its activity (SetForPromotion).
type DeviceTargets struct {
	Store    *storage.Store
	Devices  *devices.Service
	Notifier DeviceNotifier // nil: the devices learn their new target at their next check-in
	Log      *slog.Logger   // nil: slog.Default()
}

// Set makes snapshotID (nil: none) the device target of in, asked for by the user by: check (the caller's checks
// of the snapshot) runs in the transaction that then sets the target, rehashes the devices and writes the audit
// entry; then the devices are told. It sets in.DeviceTargetSnapshotID and returns how many devices take the
// target.
func (s *DeviceTargets) Set(ctx context.Context, by string, in *storage.Instance, snapshotID *string,
	check func(ctx context.Context, tx *storage.Store) error) (int, error) {
	n, err := s.set(ctx, in.ID, snapshotID, check, func(ctx context.Context, tx *storage.Store, n int) error {
		return Audit(ctx, tx, by, in.TeamID, "instance.device-target.changed", "instance", in.ID,
			map[string]any{"snapshotId": snapshotID, "devices": n})
	})
	if err == nil {
		in.DeviceTargetSnapshotID = snapshotID
	}
	return n, err
}

// SetForPromotion makes snapshotID (a snapshot of the instance the promotion captured) the instance's device
// target. It has no audit entry of its own: the promotion has one.
func (s *DeviceTargets) SetForPromotion(ctx context.Context, instanceID, snapshotID string) (int, error) {
	return s.set(ctx, instanceID, &snapshotID, nil, nil)
}

// set runs check, the change of the target and audit (each nil: none) in one transaction, then tells the devices.
func (s *DeviceTargets) set(ctx context.Context, instanceID string, snapshotID *string, check func(ctx context.Context, tx *storage.Store) error,
	audit func(ctx context.Context, tx *storage.Store, devices int) error) (int, error) {
	var ids []string
	err := s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) (err error) {
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		if ids, err = s.Devices.SetInstanceTarget(ctx, tx, instanceID, snapshotID); err != nil {
			return err
		}
		if audit == nil {
			return nil
		}
		return audit(ctx, tx, len(ids))
	})
	if err != nil {
		return 0, err
	}
	s.notify(ctx, ids)
	return len(ids), nil
}
func (s *DeviceTargets) notify(ctx context.Context, ids []string) {
	if s.Notifier == nil || len(ids) == 0 {
		return
	}
	if err := s.Notifier.NotifyDevices(ctx, ids); err != nil {
		log := s.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("notify devices; they will learn at their next check-in", "devices", len(ids), "err", err)
	}
}
