package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Snapshot is a point-in-time copy of an instance: flows, credentials (encrypted in Node-RED's format with
// CredentialSecret), the effective settings and env, and the modules the flows need.
type Snapshot struct {
	bun.BaseModel    `bun:"table:snapshots,alias:snap"`
	ID               string `bun:",pk"`
	InstanceID       string `bun:",nullzero"`
	ApplicationID    string
	TeamID           string
	Name             string
	Description      string
	Auto             bool              // taken by the platform (before a rollback, on a schedule), subject to retention
	Flows            string            // a JSON array, as the instance stored it
	Credentials      string            // {"$": "..."} encrypted with CredentialSecret, or {} when there are none
	CredentialSecret string            // sealed with the platform's master key
	Settings         map[string]any    `bun:",type:text"`
	Env              []domain.EnvVar   `bun:",type:text"`
	Modules          map[string]string `bun:",type:text"`
	NodeRedVersion   string
	SizeBytes        int64
	CreatedBy        *string
	CreatedAt        time.Time

	// Context is the instance's persistent context ({"<scope>": {…}}), captured only when the taker asked;
	// nil: not captured.
	Context *string
	// HasContext says whether Context was captured, also where Context itself is not read.
	HasContext bool `bun:",scanonly"`
}

// snapshotHeavyColumns are left out when only a snapshot's description is needed.
var snapshotHeavyColumns = []string{"flows", "credentials", "credential_secret", "context"}

// hasContextColumn fills Snapshot.HasContext where the context itself is left out.
const hasContextColumn = "context IS NOT NULL AS has_context"

// InsertSnapshot adds a snapshot unless one with its ID exists, and reports whether it did: a retried
// activity that already stored its snapshot stores nothing twice.
func (s *Store) InsertSnapshot(ctx context.Context, snap *Snapshot) (bool, error) {
	snap.CreatedAt = now()
	if snap.Settings == nil {
		snap.Settings = map[string]any{}
	}
	if snap.Env == nil {
		snap.Env = []domain.EnvVar{}
	}
	if snap.Modules == nil {
		snap.Modules = map[string]string{}
	}
	snap.SizeBytes = int64(len(snap.Flows) + len(snap.Credentials))
	if snap.Context != nil {
		snap.SizeBytes += int64(len(*snap.Context))
	}
	snap.HasContext = snap.Context != nil
	res, err := s.db.NewInsert().Model(snap).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, classify(err, "snapshot")
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// GetSnapshot returns a snapshot with its content.
func (s *Store) GetSnapshot(ctx context.Context, id string) (*Snapshot, error) {
	snap := new(Snapshot)
	err := s.db.NewSelect().Model(snap).Where("id = ?", id).Scan(ctx)
	snap.HasContext = snap.Context != nil
	return snap, classify(err, "snapshot")
}

// GetSnapshotMeta returns a snapshot without its flows, credentials and secret.
func (s *Store) GetSnapshotMeta(ctx context.Context, id string) (*Snapshot, error) {
	snap := new(Snapshot)
	err := s.db.NewSelect().Model(snap).ExcludeColumn(snapshotHeavyColumns...).ColumnExpr(hasContextColumn).Where("id = ?", id).Scan(ctx)
	return snap, classify(err, "snapshot")
}

// ListSnapshots returns a page of an instance's snapshots, oldest first, without their content.
func (s *Store) ListSnapshots(ctx context.Context, instanceID string, p Page) ([]Snapshot, string, error) {
	q := s.db.NewSelect().Model((*Snapshot)(nil)).ExcludeColumn(snapshotHeavyColumns...).ColumnExpr(hasContextColumn).Where("instance_id = ?", instanceID)
	return listPage(ctx, q, "id", p, func(snap *Snapshot) string { return snap.ID })
}

// UpdateSnapshot writes the given columns (name and description: a snapshot's content never changes).
func (s *Store) UpdateSnapshot(ctx context.Context, snap *Snapshot, columns ...string) error {
	res, err := s.db.NewUpdate().Model(snap).Column(columns...).WherePK().Exec(ctx)
	return mustAffect(res, err, "snapshot")
}

// DeleteSnapshot removes a snapshot.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*Snapshot)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "snapshot")
}

// SnapshotTargetOf names what has the snapshot as its target ("device pump-1", "device group line-2"), at most
// limit of them, sorted.
func (s *Store) SnapshotTargetOf(ctx context.Context, snapshotID string, limit int) ([]string, error) {
	var names []string
	devices := s.db.NewSelect().Model((*Device)(nil)).ColumnExpr("'device ' || name AS label").Where("target_snapshot_id = ?", snapshotID)
	groups := s.db.NewSelect().Model((*DeviceGroup)(nil)).ColumnExpr("'device group ' || name AS label").Where("target_snapshot_id = ?", snapshotID)
	err := s.db.NewSelect().TableExpr("(?) AS targets", devices.UnionAll(groups)).Column("label").
		OrderExpr("label ASC").Limit(int64(limit)).Scan(ctx, &names)
	return names, err
}

// PruneAutoSnapshots deletes an instance's automatic snapshots beyond the newest keep, and returns the IDs it
// deleted. It spares the IDs in except (a snapshot being restored, say) and snapshots that a device or device
// group targets or a device runs. Snapshots taken by hand are never pruned.
func (s *Store) PruneAutoSnapshots(ctx context.Context, instanceID string, keep int, except ...string) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Snapshot)(nil)).Column("id").Where("instance_id = ? AND auto = ?", instanceID, true).
		OrderExpr("id DESC").Scan(ctx, &ids)
	if err != nil || len(ids) <= keep {
		return nil, err
	}
	candidates := ids[keep:]
	var used []string
	err = s.db.NewSelect().Model((*Device)(nil)).ColumnExpr("target_snapshot_id").Where("target_snapshot_id IN (?)", bun.List(candidates)).
		UnionAll(s.db.NewSelect().Model((*Device)(nil)).ColumnExpr("active_snapshot_id").Where("active_snapshot_id IN (?)", bun.List(candidates))).
		UnionAll(s.db.NewSelect().Model((*DeviceGroup)(nil)).ColumnExpr("target_snapshot_id").Where("target_snapshot_id IN (?)", bun.List(candidates))).
		Scan(ctx, &used)
	if err != nil {
		return nil, err
	}
	spared := make(map[string]bool, len(except)+len(used))
	for _, id := range append(except, used...) {
		spared[id] = true
	}
	var doomed []string
	for _, id := range candidates {
		if !spared[id] {
			doomed = append(doomed, id)
		}
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	_, err = s.db.NewDelete().Model((*Snapshot)(nil)).Where("id IN (?)", bun.List(doomed)).Exec(ctx)
	return doomed, err
}
