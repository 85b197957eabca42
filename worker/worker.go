// Package worker registers Flowyard's workflows and activities on their Temporal task queues.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/workflows/alert"
	billingwf "github.com/flowyard/flowyard/workflows/billing"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/pipeline"
	"github.com/flowyard/flowyard/workflows/rollout"
	snapshotwf "github.com/flowyard/flowyard/workflows/snapshot"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// Activities are every activity implementation the worker serves.
type Activities struct {
	Instances *activities.Instances
	Snapshots *activities.Snapshots
}

// New builds a worker for the instances task queue: instance lifecycles and scheduled snapshots. Workflows
// are registered under fixed names, so renaming a Go function never breaks a running history.
func New(c client.Client, taskQueue string, acts Activities) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(instance.Lifecycle, workflow.RegisterOptions{Name: instance.WorkflowName})
	w.RegisterWorkflowWithOptions(snapshotwf.Scheduled, workflow.RegisterOptions{Name: snapshotwf.WorkflowName})
	w.RegisterActivity(acts.Instances)
	w.RegisterActivity(acts.Snapshots)
	return w
}

// NewRollouts builds a worker for the rollouts task queue: the fleet-wide work that proceeds in waves (device
// rollouts, moves of a stack's instances) runs apart from instance work, so a large one never delays an
// instance's start. A move's instance upgrades run on the instances queue.
func NewRollouts(c client.Client, taskQueue string, acts *activities.Rollouts, moves *activities.StackMoves) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(rollout.Rollout, workflow.RegisterOptions{Name: rollout.WorkflowName})
	w.RegisterWorkflowWithOptions(stackmove.Move, workflow.RegisterOptions{Name: stackmove.WorkflowName})
	w.RegisterActivity(acts)
	w.RegisterActivity(moves)
	return w
}

// NewBilling builds a worker for the billing task queue: the per-team billing workflow, the reconciliation
// the Schedule runs, and their activities.
func NewBilling(c client.Client, taskQueue string, acts *activities.Billing) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(billingwf.Team, workflow.RegisterOptions{Name: billingwf.WorkflowName})
	w.RegisterWorkflowWithOptions(billingwf.Reconcile, workflow.RegisterOptions{Name: billingwf.ReconcileWorkflowName})
	w.RegisterActivity(acts)
	return w
}

// NewPipelines builds a worker for the pipelines task queue: promotions, which wait for approvals and
// schedules and run instance lifecycles and rollouts as children on their own queues.
func NewPipelines(c client.Client, taskQueue string, acts *activities.Pipelines) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(pipeline.Promote, workflow.RegisterOptions{Name: pipeline.WorkflowName})
	w.RegisterActivity(acts)
	return w
}

// NewAlerts builds a worker for the alerts task queue: each alert event's delivery workflow and its e-mail and
// webhook activities, apart from instance work so that a slow receiver never delays an instance.
func NewAlerts(c client.Client, taskQueue string, acts *activities.Alerts) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(alert.Deliver, workflow.RegisterOptions{Name: alert.WorkflowName})
	w.RegisterActivity(acts)
	return w
}
