package platform

import (
	"context"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/services"
)

// Crash recovery: instances whose Node-RED exited unasked, or that should run but whose runtime is gone at start,
// are recovered through the instance workflow.

// onRuntimeExit starts a recovery for an instance whose Node-RED exited unasked, if it should be running.
func (e *engine) onRuntimeExit(instanceID string, st drivers.Status) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.log.Warn("instance runtime exited", "instance", instanceID, "reason", st.Reason)
	e.recover(ctx, instanceID)
}

// recover records a recover operation and starts it, unless another action already runs on the instance.
func (e *engine) recover(ctx context.Context, instanceID string) {
	flows := &services.Instances{Operations: &services.Operations{Store: e.store, Log: e.log}, Runner: e.instances}
	if err := flows.Recover(ctx, instanceID, e.instances); err != nil && !domain.IsKind(err, domain.KindNotFound) {
		e.log.Warn("recover instance", "instance", instanceID, "err", err)
	}
}

// reconcile, at start, restarts instances that should run but whose runtime is gone (after a host reboot,
// say) and that no workflow is already handling. Runtimes that survived a platform restart are re-adopted by
// the driver instead.
func (e *engine) reconcile(ctx context.Context) {
	list, err := e.store.ListInstancesByDesiredState(ctx, domain.InstanceRunning)
	if err != nil {
		e.log.Error("reconcile instances", "err", err)
		return
	}
	for _, in := range list {
		st, err := e.driver.Status(ctx, in.ID)
		if err != nil || st.State == drivers.StateRunning || st.State == drivers.StateStarting {
			continue
		}
		e.log.Info("restarting an instance whose runtime is gone", "instance", in.ID, "state", st.State)
		e.recover(ctx, in.ID)
	}
}
