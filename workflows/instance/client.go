package instance

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
)

// Client is the typed facade the API uses to run instance actions; the API never touches Temporal otherwise.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

// finishingGrace is how long a new action waits for a run that is closing: a run marks its operation finished
// a moment before the run itself ends, and a client acting on that should not see a conflict.
const finishingGrace = 3 * time.Second

// Run starts an action. While another action runs on the instance it answers a conflict: actions on one
// instance are never interleaved.
func (c *Client) Run(ctx context.Context, p Params) (runID string, err error) {
	runID, err = c.start(ctx, p)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		wctx, cancel := context.WithTimeout(ctx, finishingGrace)
		waitErr := c.Temporal.GetWorkflow(wctx, WorkflowID(p.InstanceID), "").Get(wctx, nil)
		cancel()
		if wctx.Err() == nil || waitErr == nil {
			runID, err = c.start(ctx, p)
		}
	}
	switch {
	case errors.As(err, &started):
		return "", domain.Conflict("instance_busy", "Another action is running on this instance; wait for it to finish.")
	case err != nil:
		return "", domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the action; try again.")
	}
	return runID, nil
}

func (c *Client) start(ctx context.Context, p Params) (string, error) {
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(p.InstanceID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without this the SDK hands back the running execution as if ours had started.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(facade.AttrTeamID.ValueSet(p.TeamID), facade.AttrInstanceID.ValueSet(p.InstanceID)),
		StaticSummary:                            string(p.Action) + " instance " + p.InstanceID,
	}
	run, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, p)
	if err != nil {
		return "", err
	}
	return run.GetRunID(), nil
}

// Running reports whether an action runs on the instance now.
func (c *Client) Running(ctx context.Context, instanceID string) (bool, error) {
	d, err := c.Temporal.DescribeWorkflow(ctx, WorkflowID(instanceID), "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.Status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Wait blocks until the current run on the instance ends, and returns its result.
func (c *Client) Wait(ctx context.Context, instanceID string) (Result, error) {
	var r Result
	err := c.Temporal.GetWorkflow(ctx, WorkflowID(instanceID), "").Get(ctx, &r)
	return r, err
}
