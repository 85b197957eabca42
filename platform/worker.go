package platform

import (
	"context"
	"errors"
	"log/slog"

	"github.com/flowyard/flowyard/config"
)

// RunWorker runs a Temporal worker alone against the configured Temporal address.
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	return errors.New("the worker arrives with the instance workflows")
}
