package facade

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Failure is the type of a workflow's non-retryable failure. Each workflow package declares the failures it
// ends with (rollout.ErrThresholdExceeded, ...); the type travels in the failure's history event, so a
// declared value never changes.
type Failure string

// InvalidArgument is the failure of parameters a workflow refuses to run with.
const InvalidArgument Failure = "InvalidArgument"

// New returns a non-retryable failure of this type with a readable message.
func (f Failure) New(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, string(f), nil)
}

// Is reports whether err is (or wraps) a failure of this type.
func (f Failure) Is(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == string(f)
}

// Message is an error's sentence without Temporal's wrapping: an application error's own message.
func Message(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
