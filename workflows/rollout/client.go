package rollout

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/workflows/facade"
)

// Client is the facade through which the API and the pipelines workflow run rollouts.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

// Start runs a rollout whose row is recorded. The ID derives from the rollout, so a retried start is harmless.
func (c *Client) Start(ctx context.Context, p Params) (string, error) {
	opts := facade.StartOnce(WorkflowID(p.RolloutID), c.TaskQueue, "rollout of snapshot "+p.SnapshotID+" to group "+p.GroupID,
		facade.AttrTeamID.ValueSet(p.TeamID), facade.AttrDeviceGroupID.ValueSet(p.GroupID), facade.AttrRolloutID.ValueSet(p.RolloutID))
	return facade.Start(ctx, c.Temporal, opts, WorkflowName, p, "rollout")
}

// Act sends an operator action (pause, resume, abort, approve). One the rollout does not allow now answers
// a conflict and changes nothing.
func (c *Client) Act(ctx context.Context, rolloutID, action, by string) (Progress, error) {
	var p Progress
	err := facade.Update(ctx, c.Temporal, WorkflowID(rolloutID), action, by, &p, "rollout")
	return p, err
}

// Wait blocks until the rollout ends and returns its last progress (pipelines wait for a group's rollout).
func (c *Client) Wait(ctx context.Context, rolloutID string) (Progress, error) {
	var p Progress
	err := c.Temporal.GetWorkflow(ctx, WorkflowID(rolloutID), "").Get(ctx, &p)
	return p, err
}
