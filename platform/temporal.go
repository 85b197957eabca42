package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/temporalenv"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/pipeline"
	"github.com/flowyard/flowyard/workflows/rollout"
	"github.com/flowyard/flowyard/workflows/snapshotschedule"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// Temporal for the platform's processes: its configuration, the client (with the SDK's metrics), the namespace
// and search attributes every cluster needs, and the workflow facades the API and the worker start workflows with.

// loadTemporalConfig reads temporal.yaml (defaults when it is absent) and, in dev, points it at the embedded
// dev server's port.
func loadTemporalConfig(cfg config.Config, dev bool) (temporalenv.Config, error) {
	path := cfg.TemporalFile
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		path = ""
	}
	tcfg, err := temporalenv.LoadConfig(path)
	if err != nil {
		return tcfg, err
	}
	if dev {
		tcfg.Address = "127.0.0.1:" + strconv.Itoa(cfg.TemporalPort)
		tcfg.UIURL = "http://127.0.0.1:" + strconv.Itoa(cfg.TemporalPort+tcfg.DevServer.UIPortOffset)
	}
	return tcfg, nil
}

// facades are the workflow clients the API and the worker start and signal workflows with.
type facades struct {
	instances  *instance.Client
	rollouts   *rollout.Client
	pipelines  *pipeline.Client
	schedules  *snapshotschedule.Client
	stackMoves *stackmove.Client
}

func newFacades(c client.Client, tcfg temporalenv.Config) facades {
	return facades{
		instances: &instance.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueInstances)},
		rollouts:  &rollout.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueRollouts)},
		pipelines: &pipeline.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueuePipelines),
			InstanceQueue: tcfg.TaskQueue(domain.QueueInstances), RolloutQueue: tcfg.TaskQueue(domain.QueueRollouts)},
		schedules:  &snapshotschedule.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueInstances)},
		stackMoves: newStackMoves(c, tcfg),
	}
}

// apiDeps gives the API the facades.
func (f facades) apiDeps(d api.Deps) api.Deps {
	d.Instances, d.Rollouts, d.Pipelines, d.SnapshotSchedules = f.instances, f.rollouts, f.pipelines, f.schedules
	d.StackMoves = f.stackMoves
	return d
}

// dialTemporal is temporalenv.Dial with the SDK's metrics recorded into reg (when not nil).
func dialTemporal(ctx context.Context, tcfg temporalenv.Config, log *slog.Logger, reg *prometheus.Registry) (client.Client, error) {
	opts, err := temporalenv.ClientOptions(tcfg, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		opts.MetricsHandler = metrics.NewTemporalHandler(reg)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", tcfg.Address, err)
	}
	return c, nil
}

// newStackMoves is the facade that starts moves of a stack's instances, for the API.
func newStackMoves(c client.Client, tcfg temporalenv.Config) *stackmove.Client {
	return &stackmove.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueRollouts), InstanceQueue: tcfg.TaskQueue(domain.QueueInstances)}
}

// ensureTemporalSetup registers the namespace and search attributes on any cluster.
func ensureTemporalSetup(ctx context.Context, tcfg temporalenv.Config, log *slog.Logger) error {
	c, err := temporalenv.Dial(ctx, tcfg, log)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", tcfg.Address, err)
	}
	defer c.Close()
	if err := temporalenv.EnsureNamespace(ctx, c, tcfg); err != nil {
		return err
	}
	return temporalenv.EnsureSearchAttributes(ctx, c, tcfg)
}
