package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// SnapshotSchedule says when an instance takes automatic snapshots (Every, a Go duration, or Cron, five
// fields; exactly one is set) and how many automatic snapshots it keeps.
type SnapshotSchedule struct {
	bun.BaseModel `bun:"table:snapshot_schedules,alias:ss"`
	InstanceID    string `bun:",pk"`
	TeamID        string
	Every         string
	Cron          string
	Keep          int `bun:"keep_count"`
	CreatedBy     *string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// PutSnapshotSchedule creates the instance's schedule or replaces its timing and retention.
func (s *Store) PutSnapshotSchedule(ctx context.Context, sch *SnapshotSchedule) error {
	sch.UpdatedAt = now()
	if sch.CreatedAt.IsZero() {
		sch.CreatedAt = sch.UpdatedAt
	}
	_, err := s.db.NewInsert().Model(sch).On("CONFLICT (instance_id) DO UPDATE").
		Set("every = EXCLUDED.every").Set("cron = EXCLUDED.cron").Set("keep_count = EXCLUDED.keep_count").
		Set("updated_at = EXCLUDED.updated_at").Returning("created_at, created_by").Exec(ctx)
	return classify(err, "snapshot schedule")
}

// GetSnapshotSchedule returns the instance's schedule (not found when it has none).
func (s *Store) GetSnapshotSchedule(ctx context.Context, instanceID string) (*SnapshotSchedule, error) {
	sch := new(SnapshotSchedule)
	err := s.db.NewSelect().Model(sch).Where("instance_id = ?", instanceID).Scan(ctx)
	return sch, classify(err, "snapshot schedule")
}

// DeleteSnapshotSchedule removes the instance's schedule and reports whether there was one.
func (s *Store) DeleteSnapshotSchedule(ctx context.Context, instanceID string) (bool, error) {
	res, err := s.db.NewDelete().Model((*SnapshotSchedule)(nil)).Where("instance_id = ?", instanceID).Exec(ctx)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// AutoSnapshotRetention is how many automatic snapshots the instance keeps: its schedule's keep when it has
// a schedule, else def.
func (s *Store) AutoSnapshotRetention(ctx context.Context, instanceID string, def int) (int, error) {
	var keep []int
	err := s.db.NewSelect().Model((*SnapshotSchedule)(nil)).Column("keep_count").Where("instance_id = ?", instanceID).Scan(ctx, &keep)
	if err != nil || len(keep) == 0 {
		return def, err
	}
	return keep[0], nil
}
