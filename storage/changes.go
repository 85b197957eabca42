package storage

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"
)

// TeamChanges are a team's rows changed after a time, each kind oldest change first. The API's live event
// stream polls them: the workers write these rows on any replica, so the database is the one change source.
type TeamChanges struct {
	Instances  []Instance
	Operations []Operation
	Devices    []Device
	Rollouts   []Rollout
}

// Truncated reports whether some kind had more changed rows than limit, so the read missed some.
func (c *TeamChanges) Truncated(limit int) bool {
	return len(c.Instances) >= limit || len(c.Operations) >= limit || len(c.Devices) >= limit || len(c.Rollouts) >= limit
}

// TeamChangesSince reads the team's instances, operations, rollouts (by updated_at) and devices (by
// changed_at) changed after since, at most limit rows of each kind.
func (s *Store) TeamChangesSince(ctx context.Context, teamID string, since time.Time, limit int) (*TeamChanges, error) {
	c := &TeamChanges{}
	err := errors.Join(
		s.changedSince(ctx, &c.Instances, "updated_at", teamID, since, limit),
		s.changedSince(ctx, &c.Operations, "updated_at", teamID, since, limit),
		s.changedSince(ctx, &c.Devices, "changed_at", teamID, since, limit),
		s.changedSince(ctx, &c.Rollouts, "updated_at", teamID, since, limit),
	)
	return c, err
}

// changedSince scans into dst (a pointer to a slice of models) the team's rows whose column is after since;
// the (team_id, column) indexes of migration 9 serve it.
func (s *Store) changedSince(ctx context.Context, dst any, column, teamID string, since time.Time, limit int) error {
	return s.db.NewSelect().Model(dst).Where("team_id = ?", teamID).Where("? > ?", bun.Ident(column), since.UTC()).
		OrderExpr("? ASC", bun.Ident(column)).Limit(int64(limit)).Scan(ctx)
}

// TeamDevicesGoneQuiet returns the team's devices not connected to the broker whose last check-in is in
// (after, upTo]: with upTo = now - the offline window, the devices that have just turned offline by time,
// which changes no row.
func (s *Store) TeamDevicesGoneQuiet(ctx context.Context, teamID string, after, upTo time.Time, limit int) ([]Device, error) {
	var out []Device
	err := s.db.NewSelect().Model(&out).Where("team_id = ?", teamID).Where("connected = ?", false).
		Where("last_seen_at > ? AND last_seen_at <= ?", after.UTC(), upTo.UTC()).OrderExpr("last_seen_at ASC").
		Limit(int64(limit)).Scan(ctx)
	return out, err
}
