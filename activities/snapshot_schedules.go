package activities

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/snapshots"
)

// ScheduledSnapshot asks for the automatic snapshot an instance's schedule fires.
type ScheduledSnapshot struct {
	InstanceID string
	SnapshotID string // chosen by the workflow, so a retried activity stores one snapshot
	Name       string
}

// ScheduledSnapshotResult is what a scheduled snapshot did.
type ScheduledSnapshotResult struct {
	Taken  bool     // false: the instance has no schedule any more (deleted in between), nothing was taken
	Pruned []string // automatic snapshots deleted by the schedule's retention
}

// scheduledDescription describes every scheduled snapshot.
const scheduledDescription = "Taken automatically on the instance's snapshot schedule."

// TakeScheduledSnapshot captures an automatic snapshot of an instance that has a snapshot schedule, then keeps
// only the newest automatic snapshots the schedule asks for. An instance without a schedule (or deleted) gets
// nothing: a Schedule that outlived its row does no harm.
func (a *Snapshots) TakeScheduledSnapshot(ctx context.Context, req ScheduledSnapshot) (ScheduledSnapshotResult, error) {
	sch, err := a.Service.Store.GetSnapshotSchedule(ctx, req.InstanceID)
	if domain.IsKind(err, domain.KindNotFound) {
		return ScheduledSnapshotResult{}, nil
	}
	if err != nil {
		return ScheduledSnapshotResult{}, err
	}
	_, err = withHeartbeat(ctx, func(ctx context.Context) (struct{}, error) {
		m := snapshots.Meta{ID: req.SnapshotID, Name: req.Name, Description: scheduledDescription, Auto: true}
		_, err := a.Service.Capture(ctx, req.InstanceID, m)
		return struct{}{}, err
	})
	if err != nil {
		return ScheduledSnapshotResult{}, rejected(err)
	}
	pruned, err := a.Service.Store.PruneAutoSnapshots(ctx, req.InstanceID, sch.Keep, req.SnapshotID)
	return ScheduledSnapshotResult{Taken: true, Pruned: pruned}, err
}

// pruneAuto deletes an instance's automatic snapshots beyond its retention: its snapshot schedule's keep when
// it has one, else snapshots.AutoRetention.
func (a *Snapshots) pruneAuto(ctx context.Context, instanceID string, except ...string) error {
	keep, err := a.Service.Store.AutoSnapshotRetention(ctx, instanceID, snapshots.AutoRetention)
	if err != nil {
		return err
	}
	_, err = a.Service.Store.PruneAutoSnapshots(ctx, instanceID, keep, except...)
	return err
}
