package pipeline

import (
	"context"
	"errors"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
)

// Client is the facade through which the API runs promotions.
type Client struct {
	Temporal      client.Client
	TaskQueue     string
	InstanceQueue string
	RolloutQueue  string
}

var (
	attrTeamID     = temporal.NewSearchAttributeKeyKeyword("TeamId")
	attrPipelineID = temporal.NewSearchAttributeKeyKeyword("PipelineId")
)

// Start runs a promotion whose row is recorded. The ID derives from the promotion, so a retried start is
// harmless.
func (c *Client) Start(ctx context.Context, p Params) (string, error) {
	p.InstanceQueue, p.RolloutQueue = c.InstanceQueue, c.RolloutQueue
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(p.PromotionID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrTeamID.ValueSet(p.TeamID), attrPipelineID.ValueSet(p.PipelineID)),
		StaticSummary:            "promotion " + p.PromotionID + " in pipeline " + p.PipelineID,
	}
	run, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, p)
	if err != nil {
		return "", domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the promotion; try again.")
	}
	return run.GetRunID(), nil
}

// Decide sends approve, reject or cancel. One the promotion does not allow now answers a conflict.
func (c *Client) Decide(ctx context.Context, promotionID, action string, d Decision) (Progress, error) {
	var p Progress
	handle, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: WorkflowID(promotionID), UpdateName: action, Args: []any{d}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, &p)
	}
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &notFound):
		return p, domain.Conflict("promotion_finished", "The promotion has finished; there is nothing to "+action+".")
	case errors.Is(err, context.DeadlineExceeded):
		return p, domain.Unavailable("temporal_unavailable", "The workflow engine did not answer; try again.")
	}
	return p, domain.Conflict("action_not_allowed", "The promotion does not allow "+action+" now: "+message(err))
}

// Wait blocks until the promotion ends and returns its last progress.
func (c *Client) Wait(ctx context.Context, promotionID string) (Progress, error) {
	var p Progress
	err := c.Temporal.GetWorkflow(ctx, WorkflowID(promotionID), "").Get(ctx, &p)
	return p, err
}
