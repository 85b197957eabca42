package stackmove

import (
	"context"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/domain"
)

// Client is the facade through which the API starts moves.
type Client struct {
	Temporal      client.Client
	TaskQueue     string // where moves run (the rollouts queue: fleet work apart from instances')
	InstanceQueue string // where the instances' lifecycle workflows run
}

// Start runs a move whose row is recorded. The ID derives from the move, so a retried start is harmless.
func (c *Client) Start(ctx context.Context, p Params) (string, error) {
	p.InstanceQueue = c.InstanceQueue
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(p.MoveID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            "move the instances of stack " + p.FromStackID + " to stack " + p.ToStackID,
	}
	run, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, p)
	if err != nil {
		return "", domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the move; try again.")
	}
	return run.GetRunID(), nil
}
