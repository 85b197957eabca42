package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// InstanceSample is one measurement of an instance's CPU (percent of one core) and memory (resident bytes).
type InstanceSample struct {
	bun.BaseModel `bun:"table:instance_samples"`
	InstanceID    string    `bun:",pk"`
	At            time.Time `bun:",pk"`
	CPUPercent    float64   `bun:"cpu_percent"`
	MemoryBytes   int64
}

// InsertInstanceSamples stores samples; a sample whose instance and time are already stored (another process
// sampled the same instance in the same period) or whose instance is gone is skipped.
func (s *Store) InsertInstanceSamples(ctx context.Context, samples []InstanceSample) error {
	for i := range samples {
		samples[i].At = samples[i].At.UTC()
		_, err := s.db.NewInsert().Model(&samples[i]).On("CONFLICT (instance_id, at) DO NOTHING").Exec(ctx)
		if err != nil && !isReferenceViolation(err) {
			return err
		}
	}
	return nil
}

// InstanceSamplesSince returns an instance's samples taken after since, oldest first.
func (s *Store) InstanceSamplesSince(ctx context.Context, instanceID string, since time.Time) ([]InstanceSample, error) {
	var out []InstanceSample
	err := s.db.NewSelect().Model(&out).Where("instance_id = ?", instanceID).Where("at > ?", since.UTC()).
		Order("at").Limit(MaxSamplesPerInstance).Scan(ctx)
	return out, err
}

// MaxSamplesPerInstance bounds one instance's series in a read (an hour at one sample every 15 s is 240).
const MaxSamplesPerInstance = 1000

// LatestInstanceSamples returns the newest sample of each instance taken after since, with its team, for
// /metrics.
func (s *Store) LatestInstanceSamples(ctx context.Context, since time.Time) ([]LatestSample, error) {
	var out []LatestSample
	newest := s.db.NewSelect().Model((*InstanceSample)(nil)).ColumnExpr("instance_id, MAX(at) AS at").
		Where("at > ?", since.UTC()).Group("instance_id")
	err := s.db.NewSelect().TableExpr("instance_samples AS s").
		ColumnExpr("s.instance_id, s.at, s.cpu_percent, s.memory_bytes, i.team_id, i.name").
		Join("JOIN (?) AS n ON n.instance_id = s.instance_id AND n.at = s.at", newest).
		Join("JOIN instances AS i ON i.id = s.instance_id").OrderExpr("s.instance_id").Scan(ctx, &out)
	return out, err
}

// LatestSample is an instance's newest sample with its team and name.
type LatestSample struct {
	InstanceID  string
	At          time.Time
	CPUPercent  float64 `bun:"cpu_percent"`
	MemoryBytes int64
	TeamID      string
	Name        string
}

// DeleteInstanceSamplesBefore removes samples older than at (the store keeps an hour).
func (s *Store) DeleteInstanceSamplesBefore(ctx context.Context, at time.Time) error {
	_, err := s.db.NewDelete().Model((*InstanceSample)(nil)).Where("at < ?", at.UTC()).Exec(ctx)
	return err
}
