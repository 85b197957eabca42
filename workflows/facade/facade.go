// Package facade holds what the workflow packages' clients (the facades through which the API, activities and
// the platform reach Temporal) and their workflows share: the search attributes an operator filters on, the
// options a workflow started once per subject runs with, how an Update's errors become the API's errors, and
// the failure types a workflow ends with.
package facade

import (
	"context"
	"errors"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
)

// Search attribute keys (domain.SearchAttr*), registered in every Flowyard namespace.
var (
	AttrTeamID        = temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrTeamID)
	AttrInstanceID    = temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrInstanceID)
	AttrDeviceGroupID = temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrDeviceGroupID)
	AttrRolloutID     = temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrRolloutID)
	AttrPipelineID    = temporal.NewSearchAttributeKeyKeyword(domain.SearchAttrPipelineID)
)

// StartOnce returns the options of a workflow that runs once per ID (a rollout, a promotion, a stack move, an
// alert's delivery): a start while it runs joins the running one and a start after it closed is refused, so a
// retried start is harmless.
func StartOnce(id, taskQueue, summary string, attrs ...temporal.SearchAttributeUpdate) client.StartWorkflowOptions {
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            summary,
	}
	if len(attrs) > 0 {
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(attrs...)
	}
	return opts
}

// Start runs a workflow with opts and returns its run ID. A refusal or an engine that does not answer is
// unavailable: the subject's row is recorded, and the caller may try again.
func Start(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, workflow string, params any, what string) (string, error) {
	run, err := c.ExecuteWorkflow(ctx, opts, workflow, params)
	if err != nil {
		return "", domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the "+what+"; try again.")
	}
	return run.GetRunID(), nil
}

// Update sends an operator's Update (approve, pause, cancel, ...) to the workflow of a subject ("rollout",
// "promotion") and waits until it completes, decoding its result into result. A subject whose workflow has
// finished, and an Update the workflow's validator refuses in the subject's current status, are conflicts
// that change nothing; an engine that does not answer is unavailable.
func Update(ctx context.Context, c client.Client, workflowID, update string, arg, result any, subject string) error {
	handle, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: update, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, result)
	}
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		return domain.Conflict(subject+"_finished", "The "+subject+" has finished; there is nothing to "+update+".")
	case Unavailable(err):
		return domain.Unavailable("temporal_unavailable", "The workflow engine did not answer; try again.")
	}
	// What is left is the workflow's validator refusing the Update in the subject's current status.
	return domain.Conflict("action_not_allowed", "The "+subject+" does not allow "+update+" now: "+Message(err))
}

// Unavailable reports whether err says the engine did not answer (down, or too slow for ctx).
func Unavailable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded)
}
