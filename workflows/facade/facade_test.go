package facade

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/flowyard/flowyard/domain"
)

// TestUpdateErrors: a finished workflow and a refused Update are conflicts naming the subject, an engine that
// does not answer is unavailable, and the refusal's own sentence reaches the caller without Temporal's wrapping.
func TestUpdateErrors(t *testing.T) {
	refused := temporal.NewApplicationError("not allowed while the rollout is paused", "")
	cases := []struct {
		name     string
		err      error
		kind     domain.Kind
		code     string
		contains string
	}{
		{"finished", serviceerror.NewNotFound("workflow not found"), domain.KindConflict, "rollout_finished", "has finished"},
		{"engine down", serviceerror.NewUnavailable("down"), domain.KindUnavailable, "temporal_unavailable", ""},
		{"engine slow", fmt.Errorf("update: %w", context.DeadlineExceeded), domain.KindUnavailable, "temporal_unavailable", ""},
		{"refused", refused, domain.KindConflict, "action_not_allowed", "does not allow pause now: not allowed while the rollout is paused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &mocks.Client{}
			c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, tc.err)
			err := Update(context.Background(), c, "rollout/r1", "pause", "alice", new(string), "rollout")
			var de *domain.Error
			require.True(t, errors.As(err, &de), "%v", err)
			assert.Equal(t, tc.kind, de.Kind)
			assert.Equal(t, tc.code, de.Code)
			assert.Contains(t, de.Message, tc.contains)
			assert.NotContains(t, de.Message, "retryable", "Temporal's wrapping stays out of the message")
		})
	}
}

func TestFailureTypes(t *testing.T) {
	err := fmt.Errorf("child: %w", InvalidArgument.New("waves must end at 100"))
	assert.True(t, InvalidArgument.Is(err))
	assert.False(t, Failure("Other").Is(err))
	assert.Equal(t, "waves must end at 100", Message(err))
	assert.Equal(t, "plain", Message(errors.New("plain")))
}
