package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// InsertInstance adds an instance. A taken name is a conflict.
func (s *Store) InsertInstance(ctx context.Context, in *Instance) error {
	in.CreatedAt, in.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(in).Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("name_taken", "An instance with that name already exists on this platform.")
	}
	return classify(err, "instance")
}

// GetInstance returns one instance.
func (s *Store) GetInstance(ctx context.Context, id string) (*Instance, error) {
	in := new(Instance)
	err := s.db.NewSelect().Model(in).Where("id = ?", id).Scan(ctx)
	return in, classify(err, "instance")
}

// ListInstances returns a page of an application's instances.
func (s *Store) ListInstances(ctx context.Context, applicationID string, p Page) ([]Instance, string, error) {
	q := s.db.NewSelect().Model((*Instance)(nil)).Where("application_id = ?", applicationID)
	return listPage(ctx, q, "id", p, func(in *Instance) string { return in.ID })
}

// ListInstancesByDesiredState lists every instance that should be in one of the states (for reconciliation).
func (s *Store) ListInstancesByDesiredState(ctx context.Context, states ...domain.InstanceState) ([]Instance, error) {
	var out []Instance
	err := s.db.NewSelect().Model(&out).Where("desired_state IN (?)", bun.List(states)).Order("id").Scan(ctx)
	return out, err
}

// CountTeamInstances counts a team's instances, or those of one instance type when typeID is not empty.
func (s *Store) CountTeamInstances(ctx context.Context, teamID, typeID string) (int, error) {
	q := s.db.NewSelect().Model((*Instance)(nil)).Where("team_id = ?", teamID)
	if typeID != "" {
		q = q.Where("instance_type_id = ?", typeID)
	}
	return count(q.Count(ctx))
}

// UpdateInstance writes the given columns.
func (s *Store) UpdateInstance(ctx context.Context, in *Instance, columns ...string) error {
	in.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(in).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "instance")
}

// SetInstanceState moves an instance to state with a reason, but only from one of the allowed previous states
// (none = any), so a replayed activity never undoes a later transition. It reports whether the row moved.
func (s *Store) SetInstanceState(ctx context.Context, id string, state domain.InstanceState, reason string, from ...domain.InstanceState) (bool, error) {
	q := s.db.NewUpdate().Model((*Instance)(nil)).Set("state = ?", state).Set("state_reason = ?", reason).
		Set("updated_at = ?", now()).Where("id = ?", id)
	if len(from) > 0 {
		q = q.Where("state IN (?)", bun.List(from))
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// RecordInstanceCrash counts a crash and returns how many happened in a row.
func (s *Store) RecordInstanceCrash(ctx context.Context, id string, at time.Time) (int, error) {
	in := new(Instance)
	_, err := s.db.NewUpdate().Model(in).Set("crash_count = crash_count + 1").Set("last_crash_at = ?", at.UTC()).
		Set("updated_at = ?", now()).Where("id = ?", id).Returning("crash_count").Exec(ctx, in)
	return in.CrashCount, classify(err, "instance")
}

// DeleteInstance removes an instance row and what cascades from it.
func (s *Store) DeleteInstance(ctx context.Context, id string) error {
	_, err := s.db.NewDelete().Model((*Instance)(nil)).Where("id = ?", id).Exec(ctx)
	return err
}

// Storage kinds kept for a running Node-RED by its storage plugin.
const (
	StorageFlows       = "flows"
	StorageCredentials = "credentials"
	StorageSettings    = "settings"
	StorageSessions    = "sessions"
)

type instanceStorage struct {
	bun.BaseModel `bun:"table:instance_storage"`
	InstanceID    string `bun:",pk"`
	Kind          string `bun:",pk"`
	Body          string
	UpdatedAt     time.Time
}

// GetInstanceStorage returns one stored document of an instance, or "" when none was stored.
func (s *Store) GetInstanceStorage(ctx context.Context, instanceID, kind string) (string, error) {
	row := new(instanceStorage)
	err := s.db.NewSelect().Model(row).Where("instance_id = ? AND kind = ?", instanceID, kind).Scan(ctx)
	if domain.IsKind(classify(err, "x"), domain.KindNotFound) {
		return "", nil
	}
	return row.Body, err
}

// PutInstanceStorage stores (upserts) one document of an instance.
func (s *Store) PutInstanceStorage(ctx context.Context, instanceID, kind, body string) error {
	row := &instanceStorage{InstanceID: instanceID, Kind: kind, Body: body, UpdatedAt: now()}
	_, err := s.db.NewInsert().Model(row).On("CONFLICT (instance_id, kind) DO UPDATE").
		Set("body = EXCLUDED.body").Set("updated_at = EXCLUDED.updated_at").Exec(ctx)
	return err
}

// LibraryEntry is one Node-RED library file of an instance.
type LibraryEntry struct {
	bun.BaseModel `bun:"table:instance_library"`
	InstanceID    string         `bun:",pk"`
	Type          string         `bun:",pk"`
	Name          string         `bun:",pk"`
	Meta          map[string]any `bun:",type:text"`
	Body          string
	UpdatedAt     time.Time
}

// GetLibraryEntry returns one library entry.
func (s *Store) GetLibraryEntry(ctx context.Context, instanceID, typ, name string) (*LibraryEntry, error) {
	e := new(LibraryEntry)
	err := s.db.NewSelect().Model(e).Where("instance_id = ? AND type = ? AND name = ?", instanceID, typ, name).Scan(ctx)
	return e, classify(err, "library entry")
}

// ListLibraryEntries returns the entries of a type whose names start with prefix.
func (s *Store) ListLibraryEntries(ctx context.Context, instanceID, typ, prefix string) ([]LibraryEntry, error) {
	var out []LibraryEntry
	err := s.db.NewSelect().Model(&out).Where("instance_id = ? AND type = ?", instanceID, typ).
		Where("substr(name, 1, ?) = ?", len(prefix), prefix).Order("name").Limit(1000).Scan(ctx)
	return out, err
}

// PutLibraryEntry stores (upserts) a library entry.
func (s *Store) PutLibraryEntry(ctx context.Context, e *LibraryEntry) error {
	e.UpdatedAt = now()
	_, err := s.db.NewInsert().Model(e).On("CONFLICT (instance_id, type, name) DO UPDATE").
		Set("meta = EXCLUDED.meta").Set("body = EXCLUDED.body").Set("updated_at = EXCLUDED.updated_at").Exec(ctx)
	return err
}
