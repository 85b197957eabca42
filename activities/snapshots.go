package activities

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/snapshots"
)

// Snapshots are the snapshot activities of the instance lifecycle workflow (rollback) and of scheduled snapshots.
// Their method names differ from those of Instances: both register on one worker.
type Snapshots struct {
	Service *snapshots.Service
}

// ErrTypeRejected marks a non-retryable refusal of the input (a snapshot of another application, flows over
// the size cap, …); its message is the sentence the API would have answered.
const ErrTypeRejected = "Rejected"

// RollbackTarget describes a rollback about to happen.
type RollbackTarget struct {
	SnapshotName string
	State        domain.InstanceState // the instance's state before the rollback
	ShouldRun    bool                 // the instance should be running: the rollback stops it and starts it again
	// HasContext says the snapshot holds a persistent context, which the rollback restores: the automatic
	// snapshot taken first then captures the instance's, so a failed rollback can put it back.
	HasContext bool
}

// CheckRollback checks that the snapshot exists and may go into the instance (same application), and reports
// the instance's state. The API checked this already; the check here covers a snapshot deleted in between.
func (a *Snapshots) CheckRollback(ctx context.Context, instanceID, snapshotID string) (RollbackTarget, error) {
	st := a.Service.Store
	in, err := st.GetInstance(ctx, instanceID)
	if err != nil {
		return RollbackTarget{}, rejected(err)
	}
	snap, err := st.GetSnapshotMeta(ctx, snapshotID)
	if err != nil {
		return RollbackTarget{}, rejected(err)
	}
	if err := snapshots.SameApplication(snap, in); err != nil {
		return RollbackTarget{}, rejected(err)
	}
	return RollbackTarget{SnapshotName: snap.Name, State: in.State, ShouldRun: in.DesiredState == domain.InstanceRunning, HasContext: snap.HasContext}, nil
}

// AutoSnapshot asks for an automatic snapshot of an instance.
type AutoSnapshot struct {
	InstanceID  string
	SnapshotID  string // chosen by the workflow, so a retried activity stores one snapshot
	Name        string
	Description string
	Spare       []string // snapshots that retention must not delete (the one being restored)
	WithContext bool     // capture the persistent context too
}

// TakeAutoSnapshot captures an automatic snapshot and prunes automatic snapshots beyond the instance's retention
// (its snapshot schedule's keep, else snapshots.AutoRetention).
func (a *Snapshots) TakeAutoSnapshot(ctx context.Context, req AutoSnapshot) error {
	_, err := withHeartbeat(ctx, func(ctx context.Context) (struct{}, error) {
		m := snapshots.Meta{ID: req.SnapshotID, Name: req.Name, Description: req.Description, Auto: true, WithContext: req.WithContext}
		_, err := a.Service.Capture(ctx, req.InstanceID, m)
		return struct{}{}, err
	})
	if err != nil {
		return rejected(err)
	}
	return a.pruneAuto(ctx, req.InstanceID, append([]string{req.SnapshotID}, req.Spare...)...)
}

// ApplySnapshot writes a snapshot into an instance's store in one transaction; the runtime loads it on its next
// start.
func (a *Snapshots) ApplySnapshot(ctx context.Context, instanceID, snapshotID string) error {
	_, err := withHeartbeat(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.Service.Apply(ctx, snapshotID, instanceID)
	})
	return rejected(err)
}

// PromoteSnapshot is ApplySnapshot for a pipeline promotion: the instance keeps its env values, gains the
// snapshot's new keys, and never takes the platform's FF_* variables from it.
func (a *Snapshots) PromoteSnapshot(ctx context.Context, instanceID, snapshotID string) error {
	_, err := withHeartbeat(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.Service.Promote(ctx, snapshotID, instanceID)
	})
	return rejected(err)
}

// rejected makes refusals of the input final, with the API's sentence as the message; other errors are left to
// the retry policy.
func rejected(err error) error {
	de, ok := domain.AsError(err)
	if !ok || de.Kind == domain.KindInternal || de.Kind == domain.KindUnavailable {
		return err
	}
	return temporal.NewNonRetryableApplicationError(de.Error(), ErrTypeRejected, err)
}
