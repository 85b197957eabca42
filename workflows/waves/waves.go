// Package waves holds what the fleet workflows that proceed in waves share (a rollout to a device group, a
// move of a stack's instances): checking a plan of cumulative waves and the failure threshold that stops one.
// The members of each wave are assigned in the store (storage.WaveSizes), so a workflow keeps only counters.
package waves

import (
	"fmt"

	"github.com/flowyard/flowyard/workflows/facade"
)

// Validate checks cumulative percentages (each above the last, ending at 100) and a failure threshold within
// 0..1. A refusal is a non-retryable InvalidArgument error.
func Validate(waves []int, failureThreshold float64) error {
	switch {
	case len(waves) == 0 || waves[len(waves)-1] != 100:
		return invalid("waves must end at 100")
	case failureThreshold < 0 || failureThreshold > 1:
		return invalid("failureThreshold must be within 0..1")
	}
	for i, pct := range waves {
		if pct < 1 || (i > 0 && pct <= waves[i-1]) {
			return invalid(fmt.Sprintf("waves must rise from 1 to 100; wave %d is %d%%", i+1, pct))
		}
	}
	return nil
}

func invalid(msg string) error { return facade.InvalidArgument.New(msg) }

// Exceeded reports whether failed of the dispatched members is over the threshold (a share, 0..1).
func Exceeded(failed, dispatched int, threshold float64) bool {
	return dispatched > 0 && float64(failed)/float64(dispatched) > threshold
}
