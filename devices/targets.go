package devices

import (
	"context"

	"github.com/flowyard/flowyard/storage"
)

// SetInstanceTarget makes a snapshot of an instance (or nil) its devices' target, inside tx: every device
// assigned to the instance takes it, with a new settings hash (its FF_SNAPSHOT_* variables change), and a
// device assigned later takes it too. Clearing it leaves the devices running what they run. It returns the
// devices to tell.
func (s *Service) SetInstanceTarget(ctx context.Context, tx *storage.Store, instanceID string, snapshotID *string) ([]string, error) {
	ids, err := tx.SetInstanceDeviceTarget(ctx, instanceID, snapshotID)
	if err != nil {
		return nil, err
	}
	return ids, s.RehashDevices(ctx, tx, ids)
}
