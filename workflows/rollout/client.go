package rollout

import (
	"context"
	"errors"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
)

// Client is the facade through which the API (and the pipelines workflow, later) runs rollouts.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

var (
	attrTeamID  = temporal.NewSearchAttributeKeyKeyword("TeamId")
	attrGroupID = temporal.NewSearchAttributeKeyKeyword("DeviceGroupId")
	attrRollout = temporal.NewSearchAttributeKeyKeyword("RolloutId")
)

// Start runs a rollout whose row is recorded. The ID derives from the rollout, so a retried start is harmless.
func (c *Client) Start(ctx context.Context, p Params) (string, error) {
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(p.RolloutID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(attrTeamID.ValueSet(p.TeamID), attrGroupID.ValueSet(p.GroupID),
			attrRollout.ValueSet(p.RolloutID)),
		StaticSummary: "rollout of snapshot " + p.SnapshotID + " to group " + p.GroupID,
	}
	run, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, p)
	if err != nil {
		return "", domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the rollout; try again.")
	}
	return run.GetRunID(), nil
}

// Act sends an operator action (pause, resume, abort, approve). One the rollout does not allow now answers
// a conflict and changes nothing.
func (c *Client) Act(ctx context.Context, rolloutID, action, by string) (Progress, error) {
	var p Progress
	handle, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: WorkflowID(rolloutID), UpdateName: action, Args: []any{by}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, &p)
	}
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &notFound):
		return p, domain.Conflict("rollout_finished", "The rollout has finished; there is nothing to "+action+".")
	case isUnavailable(err):
		return p, domain.Unavailable("temporal_unavailable", "The workflow engine did not answer; try again.")
	}
	// What is left is the workflow's validator refusing the action in the rollout's current status.
	return p, domain.Conflict("action_not_allowed", "The rollout does not allow "+action+" now: "+err.Error())
}

func isUnavailable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded)
}

// Wait blocks until the rollout ends and returns its last progress (pipelines wait for a group's rollout).
func (c *Client) Wait(ctx context.Context, rolloutID string) (Progress, error) {
	var p Progress
	err := c.Temporal.GetWorkflow(ctx, WorkflowID(rolloutID), "").Get(ctx, &p)
	return p, err
}
