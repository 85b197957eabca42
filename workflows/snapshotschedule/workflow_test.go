package snapshotschedule

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowyard/flowyard/activities"
)

// newEnv registers Scheduled with the snapshot activity mocked by take.
func newEnv(take func(context.Context, activities.ScheduledSnapshot) (activities.ScheduledSnapshotResult, error)) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Scheduled)
	env.RegisterActivity(&activities.Snapshots{})
	env.OnActivity(sa.TakeScheduledSnapshot, mock.Anything, mock.Anything).Return(take)
	return env
}

func TestScheduledTakesANamedSnapshotWithOneIDAcrossRetries(t *testing.T) {
	var reqs []activities.ScheduledSnapshot
	env := newEnv(func(_ context.Context, req activities.ScheduledSnapshot) (activities.ScheduledSnapshotResult, error) {
		reqs = append(reqs, req)
		if len(reqs) == 1 {
			return activities.ScheduledSnapshotResult{}, errors.New("database is locked")
		}
		return activities.ScheduledSnapshotResult{Taken: true, Pruned: []string{"old"}}, nil
	})
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.ExecuteWorkflow(Scheduled, Params{InstanceID: "i1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res Result
	require.NoError(t, env.GetWorkflowResult(&res))

	require.Len(t, reqs, 2, "a failed capture is retried")
	assert.Equal(t, reqs[0], reqs[1], "the retry asks for the same snapshot ID and name")
	assert.Equal(t, "i1", reqs[0].InstanceID)
	assert.Equal(t, "Auto snapshot - 2026-11-27 03:00 UTC", reqs[0].Name)
	assert.NotEmpty(t, reqs[0].SnapshotID)
	assert.Equal(t, Result{SnapshotID: reqs[0].SnapshotID, Pruned: []string{"old"}}, res)
}

func TestScheduledTakesNothingWithoutASchedule(t *testing.T) {
	env := newEnv(func(context.Context, activities.ScheduledSnapshot) (activities.ScheduledSnapshotResult, error) {
		return activities.ScheduledSnapshotResult{}, nil
	})
	env.ExecuteWorkflow(Scheduled, Params{InstanceID: "gone"})
	require.NoError(t, env.GetWorkflowError())
	var res Result
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Empty(t, res.SnapshotID)
}

func TestScheduledFailsOnARejectedCapture(t *testing.T) {
	calls := 0
	env := newEnv(func(context.Context, activities.ScheduledSnapshot) (activities.ScheduledSnapshotResult, error) {
		calls++
		return activities.ScheduledSnapshotResult{}, temporal.NewNonRetryableApplicationError("The instance's stored flows are not a JSON array.", activities.ErrTypeRejected, nil)
	})
	env.ExecuteWorkflow(Scheduled, Params{InstanceID: "i1"})
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "not a JSON array"), "%v", err)
	assert.Equal(t, 1, calls, "a refusal is not retried")
}

func TestParseSpec(t *testing.T) {
	good := map[[2]string]Spec{
		{"24h", ""}:                          {Every: 24 * time.Hour},
		{" 90m ", ""}:                        {Every: 90 * time.Minute},
		{"", "0 3 * * *"}:                    {Cron: "0 3 * * *"},
		{"", "15  */2 1-15 JAN,jul mon-fri"}: {Cron: "15 */2 1-15 1,7 1-5"},
		{"", "0 0 1 */3 0"}:                  {Cron: "0 0 1 */3 0"},
	}
	for in, want := range good {
		got, ferr := ParseSpec(in[0], in[1])
		if assert.Nil(t, ferr, "%q", in) {
			assert.Equal(t, want, got, "%q", in)
		}
	}
	bad := map[[2]string]string{
		{"", ""}:               "every",
		{"24h", "0 3 * * *"}:   "cron",
		{"59m", ""}:            "every",
		{"1d", ""}:             "every",
		{"-2h", ""}:            "every",
		{"9000h", ""}:          "every",
		{"", "0 3 * *"}:        "cron",
		{"", "0 3 * * * *"}:    "cron",
		{"", "* 3 * * *"}:      "cron",
		{"", "*/5 * * * *"}:    "cron",
		{"", "60 3 * * *"}:     "cron",
		{"", "0 24 * * *"}:     "cron",
		{"", "0 3 0 * *"}:      "cron",
		{"", "0 3 * 13 *"}:     "cron",
		{"", "0 3 * * 7"}:      "cron",
		{"", "0 5-2 * * *"}:    "cron",
		{"", "0 */0 * * *"}:    "cron",
		{"", "0 3 * * funday"}: "cron",
		{"", "@daily"}:         "cron",
	}
	for in, field := range bad {
		_, ferr := ParseSpec(in[0], in[1])
		if assert.NotNil(t, ferr, "%q must be refused", in) {
			assert.Equal(t, field, ferr.Field, "%q", in)
		}
	}
}

func TestValidateKeep(t *testing.T) {
	keep, ferr := ValidateKeep(nil)
	assert.Nil(t, ferr)
	assert.Equal(t, DefaultKeep, keep)
	for _, n := range []int{1, 100} {
		keep, ferr := ValidateKeep(&n)
		assert.Nil(t, ferr)
		assert.Equal(t, n, keep)
	}
	for _, n := range []int{0, -1, 101} {
		_, ferr := ValidateKeep(&n)
		assert.NotNil(t, ferr, "%d", n)
	}
}
