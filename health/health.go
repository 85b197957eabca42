// Package health samples the CPU and memory of every instance into the store, where the API's chart and
// /metrics read them. Samples live in the database, not in a process: with several API replicas any of them
// answers, and the worker that runs (or, on Kubernetes, can see) an instance is the one that measures it. Each
// sample's time is rounded down to the period, so two workers measuring the same pod write one row.
package health

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/storage"
)

// Defaults: a sample every 15 s, kept for an hour (240 points a chart).
const (
	DefaultEvery = 15 * time.Second
	Retention    = time.Hour
)

// Sampler measures a driver's instances periodically.
type Sampler struct {
	Store  *storage.Store
	Driver drivers.UsageReader
	Every  time.Duration
	Log    *slog.Logger
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.every())
	defer t.Stop()
	for {
		if err := s.Sample(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.Log.Warn("sample instances' CPU and memory", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sampler) every() time.Duration {
	if s.Every > 0 {
		return s.Every
	}
	return DefaultEvery
}

// Sample measures every instance once, stores the figures at now rounded down to the period, and drops what is
// older than the retention.
func (s *Sampler) Sample(ctx context.Context, now time.Time) error {
	usage, err := s.Driver.Usage(ctx)
	if err != nil {
		return err
	}
	at := now.UTC().Truncate(s.every())
	samples := make([]storage.InstanceSample, 0, len(usage))
	for id, u := range usage {
		samples = append(samples, storage.InstanceSample{InstanceID: id, At: at, CPUPercent: u.CPUPercent, MemoryBytes: u.MemoryBytes})
	}
	if err := s.Store.InsertInstanceSamples(ctx, samples); err != nil {
		return err
	}
	return s.Store.DeleteInstanceSamplesBefore(ctx, now.Add(-Retention))
}
