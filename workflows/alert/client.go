package alert

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Client is the facade through which the alert dispatcher starts deliveries.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

var attrTeamID = temporal.NewSearchAttributeKeyKeyword("TeamId")

// Start runs the delivery of an event. Starting one that runs or ran already succeeds and does nothing, so a
// dispatcher that crashed after starting it, or two dispatchers, deliver the event once.
func (c *Client) Start(ctx context.Context, eventID, teamID string) error {
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(eventID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrTeamID.ValueSet(teamID)),
		StaticSummary:            "alert delivery of event " + eventID,
	}
	_, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, Params{EventID: eventID, TeamID: teamID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start alert delivery %s: %w", eventID, err)
	}
	return nil
}
