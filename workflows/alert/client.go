package alert

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/workflows/facade"
)

// Client is the facade through which the alert dispatcher starts deliveries.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

// Start runs the delivery of an event. Starting one that runs or ran already succeeds and does nothing, so a
// dispatcher that crashed after starting it, or two dispatchers, deliver the event once.
func (c *Client) Start(ctx context.Context, eventID, teamID string) error {
	opts := facade.StartOnce(WorkflowID(eventID), c.TaskQueue, "alert delivery of event "+eventID, facade.AttrTeamID.ValueSet(teamID))
	_, err := c.Temporal.ExecuteWorkflow(ctx, opts, WorkflowName, Params{EventID: eventID, TeamID: teamID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start alert delivery %s: %w", eventID, err)
	}
	return nil
}
