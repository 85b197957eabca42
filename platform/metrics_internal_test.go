package platform

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/drivers/fake"
)

// An instance the driver has not started yet (still provisioning) has no log lines; that is not an error.
func TestLogsOfAnInstanceNotStartedYetAreEmpty(t *testing.T) {
	lines, err := driverLogs(fake.New(nil))(context.Background(), "06h1notstartedyet0000000000", time.Time{}, 100)
	require.NoError(t, err)
	require.Empty(t, lines)
	require.NotNil(t, lines, "an empty list, not null")
}
