package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/workflows/facade"
)

// Client is the typed facade the API, the platform and activities use to reach the billing workflows.
type Client struct {
	Temporal  client.Client
	TaskQueue string
	// Debounce and IdleTimeout go to workflows this client starts (zero: the defaults).
	Debounce    time.Duration
	IdleTimeout time.Duration
}

// UsageChanged tells a team's workflow (starting it if needed) that its usage changed.
func (c *Client) UsageChanged(ctx context.Context, teamID string) error {
	return c.signal(ctx, teamID, SignalUsageChanged)
}

// StatusChanged tells a team's workflow that its subscription status or trial changed.
func (c *Client) StatusChanged(ctx context.Context, teamID string) error {
	return c.signal(ctx, teamID, SignalStatusChanged)
}

// Reconcile asks a team's workflow to compare Stripe with the store now.
func (c *Client) Reconcile(ctx context.Context, teamID string) error {
	return c.signal(ctx, teamID, SignalReconcile)
}

func (c *Client) signal(ctx context.Context, teamID, name string) error {
	opts := client.StartWorkflowOptions{
		ID:                    WorkflowID(teamID),
		TaskQueue:             c.TaskQueue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(facade.AttrTeamID.ValueSet(teamID)),
		StaticSummary:         "billing of team " + teamID,
	}
	p := Params{TeamID: teamID, Debounce: c.Debounce, IdleTimeout: c.IdleTimeout}
	if _, err := c.Temporal.SignalWithStartWorkflow(ctx, WorkflowID(teamID), name, nil, opts, WorkflowName, p); err != nil {
		return fmt.Errorf("signal billing of team %s: %w", teamID, err)
	}
	return nil
}

// EnsureSchedule creates the Schedule that runs Reconcile every interval, or moves an existing one to the
// interval. It is safe at every start.
func (c *Client) EnsureSchedule(ctx context.Context, every time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.Temporal.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   ScheduleID,
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{ID: ScheduleID, Workflow: ReconcileWorkflowName, TaskQueue: c.TaskQueue,
			Args: []any{ReconcileParams{}}, WorkflowRunTimeout: time.Hour},
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
	})
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return wrap("create the billing schedule", err)
	}
	h := c.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID)
	return wrap("update the billing schedule", h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	}))
}

// TriggerReconcile runs the reconciliation now, outside its schedule.
func (c *Client) TriggerReconcile(ctx context.Context) error {
	h := c.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID)
	return wrap("trigger the billing schedule", h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}))
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
