// Package worker registers Flowyard's workflows and activities on their Temporal task queues.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/alert"
	billingwf "github.com/flowyard/flowyard/workflows/billing"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/pipeline"
	"github.com/flowyard/flowyard/workflows/rollout"
	snapshotwf "github.com/flowyard/flowyard/workflows/snapshotschedule"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// Registration is one workflow the workers serve, the name its histories carry, and the task queue (role) it
// runs on. Every registered workflow has recorded histories that replay against it (worker's replay test).
type Registration struct {
	Name  string
	Fn    any
	Queue domain.TaskQueueRole
}

// Workflows are every workflow the workers register. They are registered under fixed names, so renaming a Go
// function never breaks a running history.
func Workflows() []Registration {
	return []Registration{
		{instance.WorkflowName, instance.Lifecycle, domain.QueueInstances},
		{snapshotwf.WorkflowName, snapshotwf.Scheduled, domain.QueueInstances},
		{rollout.WorkflowName, rollout.Rollout, domain.QueueRollouts},
		{stackmove.WorkflowName, stackmove.Move, domain.QueueRollouts},
		{billingwf.WorkflowName, billingwf.Team, domain.QueueBilling},
		{billingwf.ReconcileWorkflowName, billingwf.Reconcile, domain.QueueBilling},
		{pipeline.WorkflowName, pipeline.Promote, domain.QueuePipelines},
		{alert.WorkflowName, alert.Deliver, domain.QueueAlerts},
	}
}

// registerWorkflows registers the workflows of one task-queue role.
func registerWorkflows(w sdkworker.Worker, role domain.TaskQueueRole) {
	for _, r := range Workflows() {
		if r.Queue == role {
			w.RegisterWorkflowWithOptions(r.Fn, workflow.RegisterOptions{Name: r.Name})
		}
	}
}

// Activities are every activity implementation the worker serves.
type Activities struct {
	Instances *activities.Instances
	Snapshots *activities.Snapshots
}

// New builds a worker for the instances task queue: instance lifecycles and scheduled snapshots.
func New(c client.Client, taskQueue string, acts Activities) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	registerWorkflows(w, domain.QueueInstances)
	w.RegisterActivity(acts.Instances)
	w.RegisterActivity(acts.Snapshots)
	return w
}

// NewRollouts builds a worker for the rollouts task queue: the fleet-wide work that proceeds in waves (device
// rollouts, moves of a stack's instances) runs apart from instance work, so a large one never delays an
// instance's start. A move's instance upgrades run on the instances queue.
func NewRollouts(c client.Client, taskQueue string, acts *activities.Rollouts, moves *activities.StackMoves) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	registerWorkflows(w, domain.QueueRollouts)
	w.RegisterActivity(acts)
	w.RegisterActivity(moves)
	return w
}

// NewBilling builds a worker for the billing task queue: the per-team billing workflow, the reconciliation
// the Schedule runs, and their activities.
func NewBilling(c client.Client, taskQueue string, acts *activities.Billing) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	registerWorkflows(w, domain.QueueBilling)
	w.RegisterActivity(acts)
	return w
}

// NewPipelines builds a worker for the pipelines task queue: promotions, which wait for approvals and
// schedules and run instance lifecycles and rollouts as children on their own queues.
func NewPipelines(c client.Client, taskQueue string, acts *activities.Pipelines) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	registerWorkflows(w, domain.QueuePipelines)
	w.RegisterActivity(acts)
	return w
}

// NewAlerts builds a worker for the alerts task queue: each alert event's delivery workflow and its e-mail and
// webhook activities, apart from instance work so that a slow receiver never delays an instance.
func NewAlerts(c client.Client, taskQueue string, acts *activities.Alerts) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	registerWorkflows(w, domain.QueueAlerts)
	w.RegisterActivity(acts)
	return w
}
