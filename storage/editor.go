package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// Kinds of editor grants.
const (
	EditorCode    = "code"    // single-use, exchanged on the editor's origin for a session
	EditorSession = "session" // the editor origin's own cookie
)

// EditorGrant is a code or a session of one editor origin (an instance's, or a device's in developer mode),
// bound to the platform session that asked for it; only the digest of its token is stored.
type EditorGrant struct {
	bun.BaseModel `bun:"table:editor_grants"`
	TokenHash     string `bun:",pk"`
	Kind          string
	InstanceID    string `bun:",nullzero"` // or
	DeviceID      string `bun:",nullzero"`
	SessionHash   string // the platform session's digest
	Access        string // "edit" or "view"
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

// InsertEditorGrant stores a grant, and drops the grants that have expired (each lives for minutes or hours, so
// the table stays as small as the editors open now).
func (s *Store) InsertEditorGrant(ctx context.Context, g *EditorGrant) error {
	g.CreatedAt = now()
	if _, err := s.db.NewDelete().Model((*EditorGrant)(nil)).Where("expires_at <= ?", g.CreatedAt).Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewInsert().Model(g).Exec(ctx)
	return classify(err, "editor grant")
}

// TakeEditorCode uses up an unexpired code: it is deleted in the statement that finds it, so a code works once
// even when two requests race, and a code shown on the wrong instance's origin is spent all the same.
func (s *Store) TakeEditorCode(ctx context.Context, hash string, at time.Time) (*EditorGrant, error) {
	return s.takeGrantCode(ctx, hash, EditorCode, at)
}

// takeGrantCode uses up an unexpired code of the kind (TakeEditorCode).
func (s *Store) takeGrantCode(ctx context.Context, hash, kind string, at time.Time) (*EditorGrant, error) {
	g := new(EditorGrant)
	err := s.db.NewSelect().Model(g).Where("token_hash = ? AND kind = ? AND expires_at > ?", hash, kind, at.UTC()).Scan(ctx)
	if err != nil {
		return nil, classify(err, "editor "+kind)
	}
	res, err := s.db.NewDelete().Model((*EditorGrant)(nil)).Where("token_hash = ? AND kind = ?", hash, kind).Exec(ctx)
	if err := mustAffect(res, err, "editor "+kind); err != nil {
		return nil, err
	}
	return g, nil
}

// Target is the ID of the instance or device whose editor the grant opens.
func (g *EditorGrant) Target() string {
	if g.DeviceID != "" {
		return g.DeviceID
	}
	return g.InstanceID
}

// GetEditorGrant returns an unexpired grant of the kind for the instance or device named by targetID.
func (s *Store) GetEditorGrant(ctx context.Context, hash, kind, targetID string, at time.Time) (*EditorGrant, error) {
	g := new(EditorGrant)
	err := s.db.NewSelect().Model(g).Where("token_hash = ? AND kind = ? AND (instance_id = ? OR device_id = ?) AND expires_at > ?",
		hash, kind, targetID, targetID, at.UTC()).Scan(ctx)
	return g, classify(err, "editor "+kind)
}

// DeleteEditorGrant ends a grant.
func (s *Store) DeleteEditorGrant(ctx context.Context, hash string) error {
	_, err := s.db.NewDelete().Model((*EditorGrant)(nil)).Where("token_hash = ?", hash).Exec(ctx)
	return err
}
