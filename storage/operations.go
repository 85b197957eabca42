package storage

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// InsertOperation records a new operation. If one with the same request key exists, it is returned instead,
// so a retried request finds the operation it started.
func (s *Store) InsertOperation(ctx context.Context, op *Operation) (*Operation, bool, error) {
	op.CreatedAt, op.UpdatedAt = now(), now()
	if op.Progress == nil {
		op.Progress = map[string]any{}
	}
	_, err := s.db.NewInsert().Model(op).Exec(ctx)
	if isUniqueViolation(err) && op.RequestKey != nil {
		existing := new(Operation)
		if err := s.db.NewSelect().Model(existing).Where("request_key = ?", *op.RequestKey).Scan(ctx); err != nil {
			return nil, false, err
		}
		return existing, false, nil
	}
	return op, true, err
}

// GetOperation returns one operation.
func (s *Store) GetOperation(ctx context.Context, id string) (*Operation, error) {
	op := new(Operation)
	err := s.db.NewSelect().Model(op).Where("id = ?", id).Scan(ctx)
	return op, classify(err, "operation")
}

// ListOperationsBySubject returns a page of the operations on one subject.
func (s *Store) ListOperationsBySubject(ctx context.Context, subjectType, subjectID string, p Page) ([]Operation, string, error) {
	q := s.db.NewSelect().Model((*Operation)(nil)).Where("subject_type = ? AND subject_id = ?", subjectType, subjectID)
	return listPage(ctx, q, "id", p, func(o *Operation) string { return o.ID })
}

// UpdateOperation moves an operation to status with progress and error, but only from one of the allowed
// previous statuses, so a replayed activity never moves a finished operation back.
func (s *Store) UpdateOperation(ctx context.Context, op *Operation, from ...domain.OperationStatus) (bool, error) {
	op.UpdatedAt = now()
	if op.Status.Terminal() {
		t := op.UpdatedAt
		op.FinishedAt = &t
	}
	res, err := s.db.NewUpdate().Model(op).Column("status", "progress", "error", "run_id", "updated_at", "finished_at").
		WherePK().Where("status IN (?)", bun.List(from)).Exec(ctx)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// CountTeamOperationsInFlight counts a team's operations that are pending or running. Inside a transaction it
// first takes the team's operation lock (a Postgres advisory lock held until the transaction ends; SQLite
// transactions already hold the write lock), so a count followed by an insert in the same transaction holds
// across API replicas: two requests cannot both see room for one more.
func (s *Store) CountTeamOperationsInFlight(ctx context.Context, teamID string) (int, error) {
	if _, inTx := s.db.(bun.Tx); inTx && s.Dialect() == "pg" {
		if _, err := s.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext(?))", "team-operations:"+teamID); err != nil {
			return 0, err
		}
	}
	n, err := s.db.NewSelect().Model((*Operation)(nil)).
		Where("team_id = ? AND status IN (?)", teamID, bun.List([]domain.OperationStatus{domain.OperationPending, domain.OperationRunning})).Count(ctx)
	return int(n), err
}
