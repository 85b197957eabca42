package services

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// InstanceRunner starts instance lifecycle workflows; the workflow facade (instance.Client) implements it.
type InstanceRunner interface {
	Run(ctx context.Context, p instance.Params) (runID string, err error)
}

// Billing says whether a team's billing lets it run an instance and hears of usage changes; billing.Service
// implements it.
type Billing interface {
	CheckCanRun(ctx context.Context, st *storage.Store, teamID, instanceTypeID string, creating bool) error
	UsageChanged(ctx context.Context, teamID string)
}

// Instances runs the instance lifecycle flows: provision, the actions users ask for (start, stop, restart,
// suspend, delete, rollback, upgrade) and crash recovery.
type Instances struct {
	Operations *Operations
	Runner     InstanceRunner // nil: every flow fails with ErrNoEngine
	Billing    Billing        // nil when billing is off
	Sealer     *domain.Sealer // seals a new instance's runtime token
}

// Provision records a new instance and starts provisioning it. build validates the request and makes the row
// inside the transaction (returning what else to write once the row exists: its flows, its credentials); then
// the team type's limits and billing are checked, and the row, its runtime token, the operation and the audit
// entry written, in the same transaction.
func (s *Instances) Provision(ctx context.Context, by string, build func(ctx context.Context, tx *storage.Store) (*storage.Instance, func(ctx context.Context, tx *storage.Store) error, error)) (
	*storage.Instance, *storage.Operation, error) {
	runtimeToken, tokenHash := domain.NewToken(domain.TokenPrefixInstance)
	var in *storage.Instance
	var op *storage.Operation
	err := s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		var seed func(ctx context.Context, tx *storage.Store) error
		var err error
		if in, seed, err = build(ctx, tx); err != nil {
			return err
		}
		in.RuntimeToken = s.Sealer.Seal(runtimeToken)
		op = NewOperation(string(instance.ActionProvision), "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), by)
		if err := checkInstanceLimits(ctx, tx, in); err != nil {
			return err
		}
		if err := s.checkBilling(ctx, tx, in, true); err != nil {
			return err
		}
		if err := tx.InsertInstance(ctx, in); err != nil {
			return err
		}
		if err := tx.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: tokenHash, Kind: "instance", Name: "runtime",
			OwnerType: "instance", OwnerID: in.ID, TeamID: &in.TeamID}); err != nil {
			return err
		}
		if err := seed(ctx, tx); err != nil {
			return err
		}
		if err := s.Operations.Record(ctx, tx, op); err != nil {
			return err
		}
		return Audit(ctx, tx, by, in.TeamID, "instance.created", "instance", in.ID, map[string]any{"name": in.Name})
	})
	if err != nil {
		return nil, nil, err
	}
	if s.Billing != nil {
		s.Billing.UsageChanged(ctx, in.TeamID)
	}
	return in, op, s.start(ctx, in, op, instance.Params{Action: instance.ActionProvision})
}

// checkBilling refuses (402) to create or start an instance in a team whose billing does not allow it.
func (s *Instances) checkBilling(ctx context.Context, st *storage.Store, in *storage.Instance, creating bool) error {
	if s.Billing == nil {
		return nil
	}
	return s.Billing.CheckCanRun(ctx, st, in.TeamID, in.InstanceTypeID, creating)
}

// checkInstanceLimits applies the team type's instance limits, inside the creating transaction.
func checkInstanceLimits(ctx context.Context, tx *storage.Store, in *storage.Instance) error {
	if err := tx.LockTeam(ctx, in.TeamID); err != nil {
		return err
	}
	team, err := tx.GetTeam(ctx, in.TeamID)
	if err != nil {
		return err
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	lim := tt.Properties.Limits
	total, err := tx.CountTeamInstances(ctx, in.TeamID, "")
	if err != nil {
		return err
	}
	if domain.Exceeds(lim.Instances, total) {
		return domain.LimitExceeded("instances", lim.Instances)
	}
	if perType, ok := lim.InstancesPerType[in.InstanceTypeID]; ok {
		n, err := tx.CountTeamInstances(ctx, in.TeamID, in.InstanceTypeID)
		if err != nil {
			return err
		}
		if domain.Exceeds(perType, n) {
			return domain.LimitExceeded("instances_per_type", perType)
		}
	}
	return nil
}

// Act records an operation of p.Action on the instance with its audit entry ("instance.<action>", with body),
// in one transaction, and starts it. Starting an instance (start, restart) is refused first when the team's
// billing does not allow it.
func (s *Instances) Act(ctx context.Context, by string, in *storage.Instance, p instance.Params, body map[string]any) (*storage.Operation, error) {
	if p.Action == instance.ActionStart || p.Action == instance.ActionRestart {
		if err := s.checkBilling(ctx, s.Operations.Store, in, false); err != nil {
			return nil, err
		}
	}
	kind := string(p.Action)
	op := NewOperation(kind, "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), by)
	err := s.Operations.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := s.Operations.Record(ctx, tx, op); err != nil {
			return err
		}
		return Audit(ctx, tx, by, in.TeamID, "instance."+kind, "instance", in.ID, body)
	})
	if err != nil {
		return nil, err
	}
	return op, s.start(ctx, in, op, p)
}

// Busy says whether a lifecycle run is in progress on an instance; the workflow facade implements it.
type Busy interface {
	Running(ctx context.Context, instanceID string) (bool, error)
}

// Recover records a recover operation for an instance whose runtime is gone and starts it, unless the instance
// should not run or another action already runs on it (busy). Nothing is recorded in the audit log: the
// platform acts, not a user.
func (s *Instances) Recover(ctx context.Context, instanceID string, busy Busy) error {
	in, err := s.Operations.Store.GetInstance(ctx, instanceID)
	if err != nil || in.DesiredState != domain.InstanceRunning {
		return err
	}
	if running, err := busy.Running(ctx, instanceID); err != nil || running {
		return err
	}
	op := NewOperation(string(instance.ActionRecover), "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), "")
	if _, _, err := s.Operations.Store.InsertOperation(ctx, op); err != nil {
		return err
	}
	return s.start(ctx, in, op, instance.Params{Action: instance.ActionRecover})
}

// start starts the lifecycle workflow for an operation already recorded, filling op.RunID. When the engine
// refuses, the operation is marked failed so it never stays pending.
func (s *Instances) start(ctx context.Context, in *storage.Instance, op *storage.Operation, p instance.Params) error {
	if s.Runner == nil {
		return s.Operations.Fail(ctx, op, ErrNoEngine())
	}
	p.InstanceID, p.TeamID, p.OperationID = in.ID, in.TeamID, op.ID
	runID, err := s.Runner.Run(ctx, p)
	if err != nil {
		return s.Operations.Fail(ctx, op, err)
	}
	op.RunID = runID
	return nil
}
