package storage

import (
	"context"
	"time"
)

// An instance's address (<name>.<apps domain>) signs people in like its editor origin does: a single-use code
// the platform issues, exchanged there for a session of that origin. Both are rows of editor_grants, of kinds of
// their own, so neither is ever taken for an editor's code or session (every query names its kind).
const (
	AppCode    = "app_code"
	AppSession = "app_session"
	// AppAccess is the Access of every app grant: the address's endpoints, nothing of the editor.
	AppAccess = "endpoints"
)

// TokenKindEndpoint is the kind of the bearer tokens an owner creates for a protected instance's endpoints:
// owner_type 'instance', owner_id the instance.
const TokenKindEndpoint = "endpoint"

// TakeAppCode uses up an unexpired app code, like TakeEditorCode.
func (s *Store) TakeAppCode(ctx context.Context, hash string, at time.Time) (*EditorGrant, error) {
	return s.takeGrantCode(ctx, hash, AppCode, at)
}

// GetInstanceByName returns the instance of that name (names are unique on the platform: they name hosts).
func (s *Store) GetInstanceByName(ctx context.Context, name string) (*Instance, error) {
	in := new(Instance)
	err := s.db.NewSelect().Model(in).Where("name = ?", name).Scan(ctx)
	return in, classify(err, "instance")
}

// ListTeamInstances lists a team's instances across its applications, by name.
func (s *Store) ListTeamInstances(ctx context.Context, teamID string, p Page) ([]Instance, string, error) {
	q := s.db.NewSelect().Model((*Instance)(nil)).Where("team_id = ?", teamID)
	return listPage(ctx, q, "name", p, func(in *Instance) string { return in.Name })
}

// GetEndpointToken returns an unexpired endpoint token of the instance.
func (s *Store) GetEndpointToken(ctx context.Context, hash, instanceID string, at time.Time) (*Token, error) {
	t := new(Token)
	err := s.db.NewSelect().Model(t).
		Where("token_hash = ? AND kind = ? AND owner_type = 'instance' AND owner_id = ?", hash, TokenKindEndpoint, instanceID).
		Where("expires_at IS NULL OR expires_at > ?", at.UTC()).
		Scan(ctx)
	return t, classify(err, "token")
}

// DeleteEndpointToken revokes one endpoint token of the instance (only of that kind: never its runtime token).
func (s *Store) DeleteEndpointToken(ctx context.Context, id, instanceID string) error {
	res, err := s.db.NewDelete().Model((*Token)(nil)).
		Where("id = ? AND kind = ? AND owner_type = 'instance' AND owner_id = ?", id, TokenKindEndpoint, instanceID).Exec(ctx)
	return mustAffect(res, err, "token")
}
