package pipeline

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/workflows/facade"
)

// Client is the facade through which the API runs promotions.
type Client struct {
	Temporal      client.Client
	TaskQueue     string
	InstanceQueue string
	RolloutQueue  string
}

// Start runs a promotion whose row is recorded. The ID derives from the promotion, so a retried start is
// harmless.
func (c *Client) Start(ctx context.Context, p Params) (string, error) {
	p.InstanceQueue, p.RolloutQueue = c.InstanceQueue, c.RolloutQueue
	opts := facade.StartOnce(WorkflowID(p.PromotionID), c.TaskQueue, "promotion "+p.PromotionID+" in pipeline "+p.PipelineID,
		facade.AttrTeamID.ValueSet(p.TeamID), facade.AttrPipelineID.ValueSet(p.PipelineID))
	return facade.Start(ctx, c.Temporal, opts, WorkflowName, p, "promotion")
}

// Decide sends approve, reject or cancel. One the promotion does not allow now answers a conflict.
func (c *Client) Decide(ctx context.Context, promotionID, action string, d Decision) (Progress, error) {
	var p Progress
	err := facade.Update(ctx, c.Temporal, WorkflowID(promotionID), action, d, &p, "promotion")
	return p, err
}

// Wait blocks until the promotion ends and returns its last progress.
func (c *Client) Wait(ctx context.Context, promotionID string) (Progress, error) {
	var p Progress
	err := c.Temporal.GetWorkflow(ctx, WorkflowID(promotionID), "").Get(ctx, &p)
	return p, err
}
