package storage

import (
	"context"

	"github.com/flowyard/flowyard/domain"
)

// InsertApplication adds an application. A name taken in the team is a conflict.
func (s *Store) InsertApplication(ctx context.Context, a *Application) error {
	a.CreatedAt, a.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(a).Exec(ctx)
	return classify(err, "application")
}

// GetApplication returns one application.
func (s *Store) GetApplication(ctx context.Context, id string) (*Application, error) {
	a := new(Application)
	err := s.db.NewSelect().Model(a).Where("id = ?", id).Scan(ctx)
	return a, classify(err, "application")
}

// ListApplications returns a page of a team's applications.
func (s *Store) ListApplications(ctx context.Context, teamID string, p Page) ([]Application, string, error) {
	q := s.db.NewSelect().Model((*Application)(nil)).Where("team_id = ?", teamID)
	return listPage(ctx, q, "id", p, func(a *Application) string { return a.ID })
}

// UpdateApplication writes the given columns.
func (s *Store) UpdateApplication(ctx context.Context, a *Application, columns ...string) error {
	a.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(a).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "application")
}

// DeleteApplication removes an application.
func (s *Store) DeleteApplication(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*Application)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "application")
}

// InsertAudit records an audit entry.
func (s *Store) InsertAudit(ctx context.Context, e *AuditEntry) error {
	if e.ID == "" {
		e.ID = domain.NewID()
	}
	e.CreatedAt = now()
	if e.Body == nil {
		e.Body = map[string]any{}
	}
	_, err := s.db.NewInsert().Model(e).Exec(ctx)
	return err
}

// ListAudit returns a page of a team's audit log, newest last.
func (s *Store) ListAudit(ctx context.Context, teamID string, p Page) ([]AuditEntry, string, error) {
	q := s.db.NewSelect().Model((*AuditEntry)(nil)).Where("team_id = ?", teamID)
	return listPage(ctx, q, "id", p, func(e *AuditEntry) string { return e.ID })
}
