package stackmove

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/workflows/facade"
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
	opts := facade.StartOnce(WorkflowID(p.MoveID), c.TaskQueue, "move the instances of stack "+p.FromStackID+" to stack "+p.ToStackID)
	return facade.Start(ctx, c.Temporal, opts, WorkflowName, p, "move")
}
