package activities

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// DeviceNotifier tells devices that their target changed (FlowFuse's MQTT `update` command). A device that is
// not connected learns it on its next check-in, so a failed notification loses nothing.
type DeviceNotifier interface {
	NotifyDevices(ctx context.Context, deviceIDs []string) error
}

// Rollouts are the activities of the rollout workflow. Every per-device step is a row in the store, so each
// activity is safe to retry and the workflow carries only counters.
type Rollouts struct {
	Store    *storage.Store
	Devices  *devices.Service // recomputes the settings hash of the devices whose target a rollout sets
	Notifier DeviceNotifier   // nil: devices learn their target on their next check-in
}

// PlanRollout asks to assign a group's devices to waves.
type PlanRollout struct {
	RolloutID, GroupID, SnapshotID string
	Waves                          []int
}

// DispatchWave asks to send a wave's devices the snapshot.
type DispatchWave struct {
	RolloutID  string
	Wave       int
	SnapshotID string
	BatchSize  int
}

// RolloutCounts are the counters the workflow decides on.
type RolloutCounts struct {
	Total, Pending, Updated, Failed, RolledBack, RollbackPending, WaveUpdating int
}

// RolloutProgress is the projection of a rollout the API reads.
type RolloutProgress struct {
	RolloutID, OperationID, Reason                           string
	Status                                                   domain.RolloutStatus
	Wave, Waves, Total, Updated, Failed, Pending, RolledBack int
}

// PlanRollout assigns the group's devices to waves (once) and returns the wave sizes.
func (a *Rollouts) PlanRollout(ctx context.Context, p PlanRollout) ([]int, error) {
	return a.Store.PlanRollout(ctx, p.RolloutID, p.GroupID, p.Waves)
}

// DispatchWave sends every not yet dispatched device of the wave the snapshot, batch by batch, heartbeating
// between batches. A device is dispatched once however often this is retried.
func (a *Rollouts) DispatchWave(ctx context.Context, p DispatchWave) error {
	for {
		ids, err := a.retarget(ctx, func(ctx context.Context, tx *storage.Store) ([]string, error) {
			return tx.DispatchRolloutBatch(ctx, p.RolloutID, p.Wave, p.SnapshotID, p.BatchSize)
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		a.notify(ctx, ids)
		heartbeat(ctx, len(ids))
	}
}

// RolloutCounts folds device reports into the rollout and counts its devices.
func (a *Rollouts) RolloutCounts(ctx context.Context, rolloutID string, wave int) (RolloutCounts, error) {
	r, err := a.Store.GetRollout(ctx, rolloutID)
	if err != nil {
		return RolloutCounts{}, nonRetryableIfNotFound(err)
	}
	if err := a.Store.SyncRolloutDevices(ctx, rolloutID, r.SnapshotID); err != nil {
		return RolloutCounts{}, err
	}
	c, err := a.Store.CountRolloutDevices(ctx, rolloutID, wave)
	return RolloutCounts{Total: c.Total, Pending: c.Pending, Updated: c.Updated, Failed: c.Failed, RolledBack: c.RolledBack,
		RollbackPending: c.RollingBack, WaveUpdating: c.WaveUpdating}, err
}

// ExpireWave fails the wave's devices that missed its deadline.
func (a *Rollouts) ExpireWave(ctx context.Context, rolloutID string, wave int) error {
	_, err := a.Store.ExpireRolloutWave(ctx, rolloutID, wave)
	return err
}

// RollBackDevices returns every device the rollout changed to its previous target and tells them; it returns
// how many were changed.
func (a *Rollouts) RollBackDevices(ctx context.Context, rolloutID string, batchSize int) (int, error) {
	total := 0
	for {
		ids, err := a.retarget(ctx, func(ctx context.Context, tx *storage.Store) ([]string, error) {
			return tx.RollBackRolloutBatch(ctx, rolloutID, batchSize)
		})
		if err != nil || len(ids) == 0 {
			return total, err
		}
		total += len(ids)
		a.notify(ctx, ids)
		heartbeat(ctx, total)
	}
}

// SaveRolloutProgress writes the rollout row; when the rollout ends it settles the group's target (the new
// snapshot after success, the previous one after a rollback) for every device of the group, including those
// that joined during the rollout.
func (a *Rollouts) SaveRolloutProgress(ctx context.Context, p RolloutProgress) error {
	r, err := a.Store.GetRollout(ctx, p.RolloutID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	r.Status, r.Wave, r.Waves, r.Total, r.Updated, r.Failed, r.Pending, r.RolledBack, r.Reason =
		p.Status, p.Wave, p.Waves, p.Total, p.Updated, p.Failed, p.Pending, p.RolledBack, p.Reason
	if err := a.settle(ctx, r); err != nil {
		return err
	}
	if err := a.Store.SaveRolloutProgress(ctx, r); err != nil {
		return err
	}
	if err := a.emitAlert(ctx, r); err != nil {
		return err
	}
	return a.finishOperation(ctx, p)
}

// emitAlert records the alert of a rollout that ended failed or rolled back, once per rollout (a retry of this
// activity finds it stored).
func (a *Rollouts) emitAlert(ctx context.Context, r *storage.Rollout) error {
	kind := map[domain.RolloutStatus]string{domain.RolloutFailed: alerts.KindRolloutFailed, domain.RolloutRolledBack: alerts.KindRolloutRolledBack}[r.Status]
	if kind == "" {
		return nil
	}
	name := r.GroupID
	if g, err := a.Store.GetDeviceGroup(ctx, r.GroupID); err == nil {
		name = g.Name
	}
	msg := fmt.Sprintf("%d of %d devices updated, %d failed, %d rolled back. %s", r.Updated, r.Total, r.Failed, r.RolledBack, r.Reason)
	_, err := alerts.Emit(ctx, a.Store, alerts.Event{TeamID: r.TeamID, Kind: kind, SubjectType: "device-group", SubjectID: r.GroupID,
		SubjectName: name, Message: strings.TrimSpace(msg), DedupKey: kind + ":" + r.ID})
	return err
}

func (a *Rollouts) settle(ctx context.Context, r *storage.Rollout) error {
	var target *string
	switch r.Status {
	case domain.RolloutSucceeded:
		target = &r.SnapshotID
	case domain.RolloutRolledBack:
		target = r.PreviousSnapshotID
	default:
		return nil
	}
	ids, err := a.retarget(ctx, func(ctx context.Context, tx *storage.Store) ([]string, error) {
		return tx.SettleGroupTarget(ctx, r.GroupID, target)
	})
	if err == nil {
		a.notify(ctx, ids)
	}
	return err
}

func (a *Rollouts) finishOperation(ctx context.Context, p RolloutProgress) error {
	progress := map[string]any{"done": p.Updated + p.Failed, "total": p.Total, "wave": p.Wave, "waves": p.Waves,
		"updated": p.Updated, "failed": p.Failed, "pending": p.Pending, "rolledBack": p.RolledBack, "status": string(p.Status)}
	switch p.Status {
	case domain.RolloutSucceeded:
		return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationSucceeded, "", progress)
	case domain.RolloutFailed, domain.RolloutRolledBack, domain.RolloutAborted:
		return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationFailed, string(p.Status)+": "+p.Reason, progress)
	}
	return updateWaveOperation(ctx, a.Store, p.OperationID, domain.OperationRunning, "", progress)
}

// updateWaveOperation writes the operation of a fleet workflow that proceeds in waves (a rollout, a stack
// move): its status, error and progress; a finished operation never moves again, and none ("") is fine.
func updateWaveOperation(ctx context.Context, st *storage.Store, operationID string, status domain.OperationStatus, errMsg string, progress map[string]any) error {
	if operationID == "" {
		return nil
	}
	op, err := st.GetOperation(ctx, operationID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	op.Status, op.Error, op.Progress = status, errMsg, progress
	_, err = st.UpdateOperation(ctx, op, domain.OperationPending, domain.OperationRunning)
	return err
}

func (a *Rollouts) notify(ctx context.Context, ids []string) { notifyDevices(ctx, a.Notifier, ids) }

// notifyDevices tells the devices their settings or target changed, if there is a notifier; those it misses learn
// it at their next check-in.
func notifyDevices(ctx context.Context, n DeviceNotifier, ids []string) {
	if n == nil || len(ids) == 0 {
		return
	}
	if err := n.NotifyDevices(ctx, ids); err != nil && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("notify devices; they will learn on their next check-in", "devices", len(ids), "error", err)
	}
}

// retarget runs a change of devices' targets and stores their new settings hashes in the same transaction (the
// settings hold FF_SNAPSHOT_ID and the snapshot's env, docs/device-protocol.md §2.4); it returns the devices.
func (a *Rollouts) retarget(ctx context.Context, change func(ctx context.Context, tx *storage.Store) ([]string, error)) ([]string, error) {
	var ids []string
	err := a.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		var err error
		if ids, err = change(ctx, tx); err != nil {
			return err
		}
		return a.Devices.RehashDevices(ctx, tx, ids)
	})
	return ids, err
}

func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}
