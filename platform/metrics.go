package platform

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/health"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/storage"
)

// serveMetrics builds the process's registry and, when cfg.MetricsListen is set, serves it at /metrics
// until ctx ends. A metrics server that cannot listen is logged, not fatal: the platform itself still works.
func serveMetrics(ctx context.Context, cfg config.Config, log *slog.Logger) *prometheus.Registry {
	reg := metrics.NewRegistry()
	if cfg.MetricsListen != "" {
		go func() {
			if err := metrics.Serve(ctx, cfg.MetricsListen, reg, log); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	return reg
}

// apiMetrics registers what an API process reports besides the runtime: its HTTP requests, and the
// instances by state, counted in the database at each scrape.
func apiMetrics(reg *prometheus.Registry, st *storage.Store) *metrics.HTTP {
	reg.MustRegister(metrics.NewCountCollector("instances", "Instances by state, from the database.", "state", domain.InstanceStates(),
		func(ctx context.Context, state string) (int, error) {
			return st.CountRows(ctx, "instances", "state", state)
		}))
	reg.MustRegister(metrics.NewCountCollector("devices", "Devices by connection to the broker, from the database.", "connected", []string{"true", "false"},
		func(ctx context.Context, connected string) (int, error) {
			return st.CountDevicesConnected(ctx, connected == "true")
		}))
	reg.MustRegister(metrics.NewCountCollector("rollouts", "Rollouts by status (running, paused, awaiting_approval and rolling_back are in flight).", "status",
		domain.ActiveRolloutStatuses(),
		func(ctx context.Context, status string) (int, error) {
			return st.CountRows(ctx, "rollouts", "status", status)
		}))
	reg.MustRegister(metrics.NewInstanceUsageCollector(func(ctx context.Context) ([]metrics.InstanceUsage, error) {
		return latestUsage(ctx, st, time.Now())
	}))
	return metrics.NewHTTP(reg)
}

// latestUsage is each instance's newest sample, if it is recent (a stopped instance drops out of /metrics
// within a minute).
func latestUsage(ctx context.Context, st *storage.Store, now time.Time) ([]metrics.InstanceUsage, error) {
	rows, err := st.LatestInstanceSamples(ctx, now.Add(-4*health.DefaultEvery))
	out := make([]metrics.InstanceUsage, 0, len(rows))
	for _, r := range rows {
		out = append(out, metrics.InstanceUsage{InstanceID: r.InstanceID, TeamID: r.TeamID, CPUPercent: r.CPUPercent, MemoryBytes: r.MemoryBytes})
	}
	return out, err
}

// driverLogs lets the API read runtime logs through a driver.
func driverLogs(drv drivers.Driver) api.LogReader {
	return func(ctx context.Context, id string, since time.Time, limit int) ([]api.LogLineJSON, error) {
		lines, err := drv.Logs(ctx, id, since, limit)
		if errors.Is(err, drivers.ErrNotFound) {
			// The API found the instance in the store: the driver has not started it yet (it is provisioning),
			// so there is nothing to read, which is not an error.
			err = nil
		}
		out := make([]api.LogLineJSON, 0, len(lines))
		for _, l := range lines {
			out = append(out, api.LogLineJSON{Time: l.Time, Level: l.Level, Msg: l.Msg})
		}
		return out, err
	}
}
