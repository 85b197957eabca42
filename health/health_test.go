package health_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/health"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// readings stands in for a driver's measurements.
type readings map[string]drivers.Usage

func (r readings) Usage(context.Context) (map[string]drivers.Usage, error) { return r, nil }

func newInstance(t *testing.T, st *storage.Store) *storage.Instance {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.SeedDefaults(ctx))
	tt, _, err := storage.ListObjects[storage.TeamType](ctx, st, storage.Page{})
	require.NoError(t, err)
	its, _, _ := storage.ListObjects[storage.InstanceType](ctx, st, storage.Page{})
	stacks, _, _ := storage.ListObjects[storage.Stack](ctx, st, storage.Page{})
	tpls, _, _ := storage.ListObjects[storage.Template](ctx, st, storage.Page{})
	team := &storage.Team{ID: domain.NewID(), Name: "t", Slug: "t-" + domain.NewID()[18:], TeamTypeID: tt[0].ID}
	require.NoError(t, st.InsertTeam(ctx, team))
	app := &storage.Application{ID: domain.NewID(), TeamID: team.ID, Name: "a"}
	require.NoError(t, st.InsertApplication(ctx, app))
	in := &storage.Instance{ID: domain.NewID(), Name: "line", ApplicationID: app.ID, TeamID: team.ID, InstanceTypeID: its[0].ID,
		StackID: stacks[0].ID, TemplateID: tpls[0].ID, State: "running", DesiredState: "running", Settings: map[string]any{},
		Env: []domain.EnvVar{}, Modules: map[string]string{}}
	require.NoError(t, st.InsertInstance(ctx, in))
	return in
}

// TestSamplesAreSharedBoundedAndKeptAnHour: two samplers measuring the same instance in one period (two
// workers watching one namespace) store one sample; an instance the store does not know is skipped; samples
// older than an hour are dropped; the newest of each instance is what /metrics reads.
func TestSamplesAreSharedBoundedAndKeptAnHour(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		in := newInstance(t, st)
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		one := &health.Sampler{Store: st, Driver: readings{in.ID: {CPUPercent: 12.5, MemoryBytes: 100 << 20}, "gone": {MemoryBytes: 1}}, Log: quiet}
		two := &health.Sampler{Store: st, Driver: readings{in.ID: {CPUPercent: 99, MemoryBytes: 1}}, Log: quiet}
		start := time.Now().Add(-2 * time.Hour).Truncate(health.DefaultEvery)
		require.NoError(t, one.Sample(ctx, start))
		require.NoError(t, two.Sample(ctx, start.Add(time.Second)))
		got, err := st.InstanceSamplesSince(ctx, in.ID, start.Add(-time.Minute))
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, 12.5, got[0].CPUPercent)

		now := time.Now()
		require.NoError(t, one.Sample(ctx, now.Add(-health.DefaultEvery)))
		require.NoError(t, two.Sample(ctx, now))
		got, err = st.InstanceSamplesSince(ctx, in.ID, start.Add(-time.Minute))
		require.NoError(t, err)
		assert.Len(t, got, 2, "the two-hour-old sample is gone")
		latest, err := st.LatestInstanceSamples(ctx, now.Add(-time.Minute))
		require.NoError(t, err)
		require.Len(t, latest, 1)
		assert.Equal(t, 99.0, latest[0].CPUPercent)
		assert.Equal(t, in.TeamID, latest[0].TeamID)
	})
}
