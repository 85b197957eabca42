// Package activities holds the side effects of Flowyard's workflows: store projections, drivers, the broker.
// Each activity is small and idempotent, so Temporal may retry it after any crash.
package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// Instances are the activities of the instance lifecycle workflow.
type Instances struct {
	Store    *storage.Store
	Driver   drivers.Driver
	Sealer   *domain.Sealer
	ForgeURL string // where the storage plugin reaches the platform
	// Usage hears of state changes that may change what the team is billed for; nil when billing is off.
	Usage UsageNotifier
	// Schedules removes a deleted instance's snapshot Schedule; nil leaves it to find no schedule row and idle.
	Schedules ScheduleRemover
	// Devices recomputes the settings hash of the devices a deleted instance owned or whose target was one of
	// its snapshots; Notifier tells them (nil: they learn at their next check-in).
	Devices  *devices.Service
	Notifier DeviceNotifier
}

// ScheduleRemover deletes an instance's snapshot Schedule, succeeding when there is none (snapshot.Client
// implements it).
type ScheduleRemover interface {
	DeleteSchedule(ctx context.Context, instanceID string) error
}

// UsageNotifier hears that a team's billable usage may have changed (billing.Service implements it).
type UsageNotifier interface {
	UsageChanged(ctx context.Context, teamID string)
}

// billingStates are the states entered when an instance stops or starts costing: suspended and deleting
// instances are free, and starting is how a suspended one comes back.
var billingStates = map[domain.InstanceState]bool{domain.InstanceSuspended: true, domain.InstanceDeleting: true, domain.InstanceStarting: true}

// usageMayHaveChanged tells billing about an instance's team, when billing listens.
func (a *Instances) usageMayHaveChanged(ctx context.Context, teamID string) {
	if a.Usage != nil && teamID != "" {
		a.Usage.UsageChanged(ctx, teamID)
	}
}

// Error types that workflows match on; they are non-retryable.
const (
	ErrTypeRuntime  = "RuntimeFailed"
	ErrTypeNotFound = "NotFound"
)

// OperationUpdate moves an operation row.
type OperationUpdate struct {
	OperationID string
	RunID       string
	Status      domain.OperationStatus
	Error       string
	Step        string
	Done, Total int
}

// UpdateOperation writes an operation's status and progress. A finished operation never moves again.
func (a *Instances) UpdateOperation(ctx context.Context, u OperationUpdate) error {
	op, err := a.Store.GetOperation(ctx, u.OperationID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	op.Status, op.Error = u.Status, u.Error
	if u.RunID != "" {
		op.RunID = u.RunID
	}
	op.Progress = map[string]any{"done": u.Done, "total": u.Total, "step": u.Step}
	_, err = a.Store.UpdateOperation(ctx, op, domain.OperationPending, domain.OperationRunning)
	return err
}

// StateChange moves an instance's state, only from one of From (none = any).
type StateChange struct {
	InstanceID string
	State      domain.InstanceState
	Reason     string
	From       []domain.InstanceState
	Desired    domain.InstanceState // when set, also records what the instance should be
}

// SetState writes the instance's state projection, and in the same transaction the alert its new state calls
// for (crashed, stopped by an error, running in safe mode), so that neither is kept without the other.
func (a *Instances) SetState(ctx context.Context, c StateChange) error {
	var moved bool
	var teamID string
	err := a.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		in, err := tx.GetInstance(ctx, c.InstanceID)
		if domain.IsKind(err, domain.KindNotFound) && c.Desired == "" {
			return nil // deleted meanwhile: nothing to project into
		}
		if err != nil {
			return nonRetryableIfNotFound(err)
		}
		teamID = in.TeamID
		if c.Desired != "" {
			in.DesiredState = c.Desired
			if err := tx.UpdateInstance(ctx, in, "desired_state"); err != nil {
				return err
			}
		}
		if moved, err = tx.SetInstanceState(ctx, c.InstanceID, c.State, c.Reason, c.From...); err != nil || !moved {
			return err
		}
		return emitStateAlert(ctx, tx, in, c)
	})
	if err == nil && moved && billingStates[c.State] {
		a.usageMayHaveChanged(ctx, teamID)
	}
	return err
}

// SafeModeReason is the state reason of an instance the lifecycle started in safe mode.
const SafeModeReason = "started in safe mode after repeated crashes: flows are loaded but not running; fix them and restart"

// emitStateAlert records the alert for an instance entering state c from in's state: once per transition (a
// retried write finds the state already set, and the key names the state it left).
func emitStateAlert(ctx context.Context, tx *storage.Store, in *storage.Instance, c StateChange) error {
	kind := ""
	switch {
	case c.State == domain.InstanceCrashed:
		kind = alerts.KindInstanceCrashed
	case c.State == domain.InstanceError:
		kind = alerts.KindInstanceError
	case c.State == domain.InstanceRunning && c.Reason == SafeModeReason:
		kind = alerts.KindInstanceSafeMode
	}
	if kind == "" || (in.State == c.State && in.StateReason == c.Reason) {
		return nil
	}
	_, err := alerts.Emit(ctx, tx, alerts.Event{TeamID: in.TeamID, Kind: kind, SubjectType: "instance", SubjectID: in.ID,
		SubjectName: in.Name, Message: c.Reason,
		DedupKey: fmt.Sprintf("%s:%s:%d", kind, in.ID, in.UpdatedAt.UnixMicro())})
	return err
}

// StartRuntime starts (or re-adopts) the instance's Node-RED and records where it runs.
func (a *Instances) StartRuntime(ctx context.Context, instanceID string, safeMode bool) (string, error) {
	spec, err := a.spec(ctx, instanceID, safeMode)
	if err != nil {
		return "", err
	}
	st, err := withHeartbeat(ctx, func(ctx context.Context) (drivers.Status, error) { return a.Driver.Start(ctx, spec) })
	if err != nil {
		return "", classifyDriverError(err)
	}
	in, err := a.Store.GetInstance(ctx, instanceID)
	if err != nil {
		return "", nonRetryableIfNotFound(err)
	}
	in.RuntimeURL = st.URL
	return st.URL, a.Store.UpdateInstance(ctx, in, "runtime_url")
}

// WaitReady waits until the instance's flows run. It first hands the driver the instance's spec again
// (Start is idempotent): after a platform restart the driver re-adopts the running Node-RED and needs the
// spec's tokens to ask it whether its flows run.
func (a *Instances) WaitReady(ctx context.Context, instanceID string, safeMode bool) error {
	spec, err := a.spec(ctx, instanceID, safeMode)
	if err != nil {
		return err
	}
	_, err = withHeartbeat(ctx, func(ctx context.Context) (drivers.Status, error) {
		if _, err := a.Driver.Start(ctx, spec); err != nil {
			return drivers.Status{}, err
		}
		return a.Driver.WaitReady(ctx, instanceID)
	})
	return classifyDriverError(err)
}

// StopRuntime stops the instance's Node-RED, keeping its data.
func (a *Instances) StopRuntime(ctx context.Context, instanceID string) error {
	return classifyDriverError(a.Driver.Stop(ctx, instanceID))
}

// RemoveInstance removes the runtime, its data and tokens, its snapshot Schedule, and the instance row.
func (a *Instances) RemoveInstance(ctx context.Context, instanceID string) error {
	if err := a.Driver.Remove(ctx, instanceID); err != nil {
		return classifyDriverError(err)
	}
	if a.Schedules != nil {
		if err := a.Schedules.DeleteSchedule(ctx, instanceID); err != nil {
			return err
		}
	}
	var teamID string
	if in, err := a.Store.GetInstance(ctx, instanceID); err == nil {
		teamID = in.TeamID
	}
	var affected []string // devices left without their owner or target: their settings changed
	err := a.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteTokensOfOwner(ctx, "instance", instanceID); err != nil {
			return err
		}
		ids, err := tx.InstanceDeviceIDs(ctx, instanceID)
		if err != nil {
			return err
		}
		if err := tx.DeleteInstance(ctx, instanceID); err != nil {
			return err
		}
		affected = ids
		if a.Devices == nil {
			return nil
		}
		return a.Devices.RehashDevices(ctx, tx, ids)
	})
	if err == nil {
		a.usageMayHaveChanged(ctx, teamID)
		notifyDevices(ctx, a.Notifier, affected)
	}
	return err
}

// RecordCrash counts an unexpected exit and returns the number of crashes in a row, with the runtime's last
// log lines as the reason to show.
func (a *Instances) RecordCrash(ctx context.Context, instanceID string) (CrashInfo, error) {
	n, err := a.Store.RecordInstanceCrash(ctx, instanceID, time.Now())
	if err != nil {
		return CrashInfo{}, nonRetryableIfNotFound(err)
	}
	st, err := a.Driver.Status(ctx, instanceID)
	if err != nil {
		return CrashInfo{}, err
	}
	return CrashInfo{Count: n, Reason: crashReason(st)}, nil
}

// CrashInfo describes a crash.
type CrashInfo struct {
	Count  int
	Reason string
}

// ResetCrashes forgets past crashes once the instance is running on a user's request.
func (a *Instances) ResetCrashes(ctx context.Context, instanceID string) error {
	in, err := a.Store.GetInstance(ctx, instanceID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	in.CrashCount = 0
	return a.Store.UpdateInstance(ctx, in, "crash_count")
}

func crashReason(st drivers.Status) string {
	reason := st.Reason
	if n := len(st.LastLines); n > 0 {
		reason += "; last output: " + joinTail(st.LastLines, 5)
	}
	return reason
}

func joinTail(lines []string, n int) string {
	out := ""
	for i, l := range lines[max(0, len(lines)-n):] {
		if i > 0 {
			out += " | "
		}
		out += l
	}
	return out
}

// spec builds the driver's view of an instance: its stack, merged template settings and env, and opened secrets.
func (a *Instances) spec(ctx context.Context, instanceID string, safeMode bool) (drivers.InstanceSpec, error) {
	in, err := a.Store.GetInstance(ctx, instanceID)
	if err != nil {
		return drivers.InstanceSpec{}, nonRetryableIfNotFound(err)
	}
	stack, err := storage.GetObject[storage.Stack](ctx, a.Store, in.StackID)
	if err != nil {
		return drivers.InstanceSpec{}, nonRetryableIfNotFound(err)
	}
	tpl, err := storage.GetObject[storage.Template](ctx, a.Store, in.TemplateID)
	if err != nil {
		return drivers.InstanceSpec{}, nonRetryableIfNotFound(err)
	}
	settings, err := domain.MergeSettings(tpl.Settings, tpl.Policy, in.Settings)
	if err != nil {
		return drivers.InstanceSpec{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRuntime, err)
	}
	env, err := domain.MergeEnv(tpl.Env, in.Env)
	if err != nil {
		return drivers.InstanceSpec{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRuntime, err)
	}
	secrets, err := a.openAll(in.CredentialSecret, in.AdminToken, in.ReadToken, in.RuntimeToken)
	if err != nil {
		return drivers.InstanceSpec{}, err
	}
	nrSettings, settingsEnv, err := nodered.TemplateSettings(settings)
	if err == nil {
		// The driver installs these with npm before Node-RED starts and could apply the template's lists.
		err = nodered.ModulesAllowed(nrSettings, in.Modules)
	}
	if err != nil {
		return drivers.InstanceSpec{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRuntime, err)
	}
	envMap := make(map[string]string, len(env)+len(settingsEnv)+2)
	for _, e := range env {
		envMap[e.Name] = e.Value
	}
	// After the user's variables: a template's timeZone (TZ) is not overridden by an instance's TZ.
	maps.Copy(envMap, settingsEnv)
	envMap["FF_INSTANCE_ID"], envMap["FF_INSTANCE_NAME"] = in.ID, in.Name
	return drivers.InstanceSpec{
		InstanceID: in.ID, Name: in.Name, NodeRedVersion: stack.NodeRedVersion, NodeVersion: stack.NodeVersion,
		MemoryMB: stack.MemoryMB, CPUPercent: stack.CPUPercent, Env: envMap, Settings: nrSettings,
		CredentialSecret: secrets[0], AdminToken: secrets[1], ReadToken: secrets[2],
		ForgeURL: a.ForgeURL, InstanceToken: secrets[3], Modules: in.Modules, SafeMode: safeMode,
	}, nil
}

func (a *Instances) openAll(sealed ...string) ([]string, error) {
	out := make([]string, len(sealed))
	for i, s := range sealed {
		v, err := a.Sealer.Open(s)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("a secret of the instance cannot be opened with this platform's key", ErrTypeRuntime, err)
		}
		out[i] = v
	}
	return out, nil
}

// withHeartbeat runs fn while heartbeating, so that a worker crash is noticed in seconds, not at the
// activity's full timeout.
func withHeartbeat[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if activity.IsActivity(ctx) {
					activity.RecordHeartbeat(ctx)
				}
			}
		}
	}()
	return fn(ctx)
}

// classifyDriverError makes runtime failures (bad flows, missing Node.js, no port) final with a readable
// message, and leaves the rest to Temporal's retry policy.
func classifyDriverError(err error) error {
	if err == nil {
		return nil
	}
	var re *drivers.RuntimeError
	final := errors.As(err, &re) || errors.Is(err, drivers.ErrNoFreePort) || errors.Is(err, drivers.ErrNodeMissing) ||
		errors.Is(err, drivers.ErrInvalidSpec) || errors.Is(err, drivers.ErrNeverReady) || errors.Is(err, drivers.ErrExited)
	if final {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRuntime, err)
	}
	return fmt.Errorf("driver: %w", err)
}

func nonRetryableIfNotFound(err error) error {
	if domain.IsKind(err, domain.KindNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotFound, err)
	}
	return err
}

// UpgradeTarget describes a stack change about to happen.
type UpgradeTarget struct {
	FromStackID string
	FromVersion string // Node-RED version of the stack the instance leaves
	ToVersion   string
	State       domain.InstanceState // the instance's state before the upgrade
	ShouldRun   bool                 // the instance should be running: the upgrade stops it and starts it on the new stack
}

// CheckUpgrade checks that the instance may move to the stack (it exists, is active and fits the instance's
// type; storage.UsableStack) and reports what the instance runs now. A refusal is final.
func (a *Instances) CheckUpgrade(ctx context.Context, instanceID, stackID string) (UpgradeTarget, error) {
	in, err := a.Store.GetInstance(ctx, instanceID)
	if err != nil {
		return UpgradeTarget{}, rejected(err)
	}
	to, err := storage.UsableStack(ctx, a.Store, stackID, in.InstanceTypeID)
	if err != nil {
		return UpgradeTarget{}, rejected(err)
	}
	from, err := storage.GetObject[storage.Stack](ctx, a.Store, in.StackID)
	if err != nil {
		return UpgradeTarget{}, rejected(err)
	}
	return UpgradeTarget{FromStackID: from.ID, FromVersion: from.NodeRedVersion, ToVersion: to.NodeRedVersion,
		State: in.State, ShouldRun: in.DesiredState == domain.InstanceRunning}, nil
}

// SetStack records the instance's stack; the runtime takes it at its next start. Putting an upgraded instance
// back on its previous stack goes through here too, so it does not check that the stack is still offered.
func (a *Instances) SetStack(ctx context.Context, instanceID, stackID string) error {
	in, err := a.Store.GetInstance(ctx, instanceID)
	if err != nil {
		return nonRetryableIfNotFound(err)
	}
	in.StackID = stackID
	return a.Store.UpdateInstance(ctx, in, "stack_id")
}
