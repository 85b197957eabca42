package snapshotschedule

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

// Client is the typed facade the API and the activities use to manage instances' snapshot Schedules.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

// Run limits: one capture needs seconds; a run stuck longer than this is given up and the next one tries.
const runTimeout = 15 * time.Minute

// catchupWindow: after an outage, only a firing missed within the last hour is made up, not every one missed.
const catchupWindow = time.Hour

// SetSchedule creates the instance's Schedule, or moves an existing one to spec: safe to repeat.
func (c *Client) SetSchedule(ctx context.Context, instanceID, teamID string, spec Spec) error {
	opts := c.options(instanceID, teamID, spec)
	_, err := c.Temporal.ScheduleClient().Create(ctx, opts)
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return unavailable("create the snapshot schedule", err)
	}
	h := c.Temporal.ScheduleClient().GetHandle(ctx, opts.ID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec, s.Action = &opts.Spec, opts.Action
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	return unavailable("update the snapshot schedule", err)
}

func (c *Client) options(instanceID, teamID string, spec Spec) client.ScheduleOptions {
	var ss client.ScheduleSpec
	if spec.Cron != "" {
		ss.CronExpressions = []string{spec.Cron}
	} else {
		ss.Intervals = []client.ScheduleIntervalSpec{{Every: spec.Every}}
	}
	id := ScheduleID(instanceID)
	return client.ScheduleOptions{
		ID:   id,
		Spec: ss,
		Action: &client.ScheduleWorkflowAction{ID: id, Workflow: WorkflowName, TaskQueue: c.TaskQueue,
			Args: []any{Params{InstanceID: instanceID}}, WorkflowExecutionTimeout: runTimeout,
			TypedSearchAttributes: temporal.NewSearchAttributes(facade.AttrTeamID.ValueSet(teamID), facade.AttrInstanceID.ValueSet(instanceID))},
		Overlap:       enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: catchupWindow,
		Note:          "automatic snapshots of instance " + instanceID,
	}
}

// DeleteSchedule removes the instance's Schedule; an instance without one is not an error.
func (c *Client) DeleteSchedule(ctx context.Context, instanceID string) error {
	err := c.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID(instanceID)).Delete(ctx)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	return unavailable("delete the snapshot schedule", err)
}

// Trigger fires the instance's Schedule now, outside its timing.
func (c *Client) Trigger(ctx context.Context, instanceID string) error {
	h := c.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID(instanceID))
	return unavailable("trigger the snapshot schedule", h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}))
}

// errUnavailable is how a refused Schedule call reads to an API caller (503); Temporal's text stays in logs.
var errUnavailable = domain.Unavailable("temporal_unavailable", "The workflow engine did not accept the schedule change; try again.")

// engineError is a failed Schedule call: errUnavailable for the API, the cause for logs and retries.
type engineError struct {
	what  string
	cause error
}

func (e *engineError) Error() string   { return e.what + ": " + e.cause.Error() }
func (e *engineError) Unwrap() []error { return []error{errUnavailable, e.cause} }

func unavailable(what string, err error) error {
	if err == nil {
		return nil
	}
	return &engineError{what: what, cause: err}
}
