package snapshotschedule

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
)

// sa is a nil receiver for naming activity methods; the worker registers the real implementation.
var sa *activities.Snapshots

// takeOptions: capturing up to 20 MiB in one transaction takes seconds at most; the activity heartbeats, so a
// worker that dies in the middle is noticed in seconds and the capture runs again elsewhere.
var takeOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	HeartbeatTimeout:    10 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
}

// nameLayout is how a scheduled snapshot's name shows when it was taken.
const nameLayout = "2006-01-02 15:04 UTC"

// Scheduled takes one automatic snapshot of the instance, named "Auto snapshot - <time>", and applies the
// schedule's retention. The snapshot ID is recorded in the history, so a retried activity stores one snapshot.
func Scheduled(ctx workflow.Context, p Params) (Result, error) {
	var id string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return domain.NewID() }).Get(&id); err != nil {
		return Result{}, err
	}
	req := activities.ScheduledSnapshot{InstanceID: p.InstanceID, SnapshotID: id,
		Name: NamePrefix + workflow.Now(ctx).UTC().Format(nameLayout)}
	var res activities.ScheduledSnapshotResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, takeOptions), sa.TakeScheduledSnapshot, req).Get(ctx, &res); err != nil {
		return Result{}, err
	}
	if !res.Taken {
		workflow.GetLogger(ctx).Info("instance has no snapshot schedule any more; nothing taken", "instance", p.InstanceID)
		return Result{}, nil
	}
	return Result{SnapshotID: id, Pruned: res.Pruned}, nil
}
