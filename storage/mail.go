package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// OutgoingMail is one e-mail waiting for delivery (the outbox). Body is sealed: it holds single-use links.
type OutgoingMail struct {
	bun.BaseModel `bun:"table:mail_outbox"`
	ID            string `bun:",pk"`
	Recipient     string
	Subject       string
	Body          string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
}

// InsertMail queues an e-mail, due at once.
func (s *Store) InsertMail(ctx context.Context, m *OutgoingMail) error {
	m.CreatedAt = now()
	m.NextAttemptAt = m.CreatedAt
	_, err := s.db.NewInsert().Model(m).Exec(ctx)
	return err
}

// ClaimDueMail hands out up to limit e-mails due at `at`, each pushed lease into the future and counted as an
// attempt, so that another process delivering the same outbox skips it while this one tries. A claim is a
// conditional update on the attempt count read, so two processes never both claim one attempt.
func (s *Store) ClaimDueMail(ctx context.Context, at time.Time, lease time.Duration, limit int) ([]OutgoingMail, error) {
	var due []OutgoingMail
	err := s.db.NewSelect().Model(&due).Where("next_attempt_at <= ?", at.UTC()).Order("next_attempt_at", "id").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, err
	}
	claimed := due[:0]
	for _, m := range due {
		res, err := s.db.NewUpdate().Model((*OutgoingMail)(nil)).
			Set("next_attempt_at = ?", at.UTC().Add(lease)).Set("attempts = attempts + 1").
			Where("id = ? AND attempts = ?", m.ID, m.Attempts).Exec(ctx)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			m.Attempts++
			claimed = append(claimed, m)
		}
	}
	return claimed, nil
}

// DeleteMail removes a delivered (or abandoned) e-mail.
func (s *Store) DeleteMail(ctx context.Context, id string) error {
	_, err := s.db.NewDelete().Model((*OutgoingMail)(nil)).Where("id = ?", id).Exec(ctx)
	return err
}

// RetryMailAt records a failed attempt and when to try again.
func (s *Store) RetryMailAt(ctx context.Context, id string, at time.Time, lastError string) error {
	_, err := s.db.NewUpdate().Model((*OutgoingMail)(nil)).
		Set("next_attempt_at = ?", at.UTC()).Set("last_error = ?", lastError).Where("id = ?", id).Exec(ctx)
	return err
}

// ListMail returns the e-mails waiting in the outbox, oldest first.
func (s *Store) ListMail(ctx context.Context) ([]OutgoingMail, error) {
	var rows []OutgoingMail
	err := s.db.NewSelect().Model(&rows).Order("created_at", "id").Scan(ctx)
	return rows, err
}
