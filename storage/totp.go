package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// UserTOTP is a user's authenticator: a TOTP secret, sealed with the platform's key. It asks for codes at sign-in
// only once confirmed (ConfirmedAt set by a first right code).
type UserTOTP struct {
	bun.BaseModel `bun:"table:user_totp"`
	UserID        string `bun:",pk"`
	Secret        string // sealed
	ConfirmedAt   *time.Time
	LastStep      int64 // the time step of the latest code accepted
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// RecoveryCode is one single-use recovery code of a user, stored as its digest.
type RecoveryCode struct {
	bun.BaseModel `bun:"table:recovery_codes"`
	CodeHash      string `bun:",pk"`
	UserID        string
	CreatedAt     time.Time
}

// SecondFactorChallenge is a sign-in waiting for its second factor; only the digest of its cookie is stored.
type SecondFactorChallenge struct {
	bun.BaseModel `bun:"table:second_factor_challenges"`
	TokenHash     string `bun:",pk"`
	UserID        string
	Attempts      int
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

const totpWhat = "two-factor authenticator"

// GetTOTP returns a user's authenticator, confirmed or not.
func (s *Store) GetTOTP(ctx context.Context, userID string) (*UserTOTP, error) {
	t := new(UserTOTP)
	err := s.db.NewSelect().Model(t).Where("user_id = ?", userID).Scan(ctx)
	return t, classify(err, totpWhat)
}

// ReplaceUnconfirmedTOTP stores a new, unconfirmed authenticator secret for a user, in place of an unconfirmed
// one; a confirmed one stays and answers 409 totp_enabled (it must be turned off first).
func (s *Store) ReplaceUnconfirmedTOTP(ctx context.Context, userID, sealedSecret string) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.db.NewDelete().Model((*UserTOTP)(nil)).Where("user_id = ? AND confirmed_at IS NULL", userID).Exec(ctx); err != nil {
			return err
		}
		t := &UserTOTP{UserID: userID, Secret: sealedSecret, CreatedAt: now(), UpdatedAt: now()}
		_, err := tx.db.NewInsert().Model(t).Exec(ctx)
		if isUniqueViolation(err) {
			return domain.Conflict("totp_enabled", "Two-factor sign-in is on already; turn it off before setting up another authenticator.")
		}
		return err
	})
}

// ConfirmTOTP turns an unconfirmed authenticator on, recording the step of the code that confirmed it. It is
// not found when the user has none waiting (none at all, or one confirmed already).
func (s *Store) ConfirmTOTP(ctx context.Context, userID string, step int64) error {
	at := now()
	res, err := s.db.NewUpdate().Model((*UserTOTP)(nil)).Set("confirmed_at = ?", at).Set("last_step = ?", step).Set("updated_at = ?", at).
		Where("user_id = ? AND confirmed_at IS NULL", userID).Exec(ctx)
	return mustAffect(res, err, totpWhat)
}

// UseTOTPStep records that a code of step was accepted, only if no code of that step or a later one was: it
// reports false for a replayed code. The condition is in the update itself, so two requests with one code,
// on any replicas, cannot both pass.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	return affectedOne(s.db.NewUpdate().Model((*UserTOTP)(nil)).Set("last_step = ?", step).Set("updated_at = ?", now()).
		Where("user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?", userID, step).Exec(ctx))
}

// DeleteTOTP turns a user's two-factor sign-in off: the authenticator, its recovery codes and any sign-in
// waiting for a code go. It reports whether there was an authenticator.
func (s *Store) DeleteTOTP(ctx context.Context, userID string) (bool, error) {
	var had bool
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		var err error
		if had, err = affectedOne(tx.db.NewDelete().Model((*UserTOTP)(nil)).Where("user_id = ?", userID).Exec(ctx)); err != nil {
			return err
		}
		if _, err := tx.db.NewDelete().Model((*RecoveryCode)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
			return err
		}
		_, err = tx.db.NewDelete().Model((*SecondFactorChallenge)(nil)).Where("user_id = ?", userID).Exec(ctx)
		return err
	})
	return had, err
}

// ReplaceRecoveryCodes stores a user's recovery codes (digests) in place of any earlier ones.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.db.NewDelete().Model((*RecoveryCode)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
			return err
		}
		rows := make([]RecoveryCode, len(hashes))
		for i, h := range hashes {
			rows[i] = RecoveryCode{CodeHash: h, UserID: userID, CreatedAt: now()}
		}
		_, err := tx.db.NewInsert().Model(&rows).Exec(ctx)
		return err
	})
}

// TakeRecoveryCode uses up one of a user's recovery codes: it reports whether the user had it, and deletes it in
// the same statement, so a code works once even when two requests race.
func (s *Store) TakeRecoveryCode(ctx context.Context, userID, hash string) (bool, error) {
	return affectedOne(s.db.NewDelete().Model((*RecoveryCode)(nil)).Where("user_id = ? AND code_hash = ?", userID, hash).Exec(ctx))
}

// CountRecoveryCodes counts a user's unused recovery codes.
func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	return count(s.db.NewSelect().Model((*RecoveryCode)(nil)).Where("user_id = ?", userID).Count(ctx))
}

// InsertSecondFactorChallenge stores a sign-in waiting for its second factor, and drops the user's expired ones.
func (s *Store) InsertSecondFactorChallenge(ctx context.Context, ch *SecondFactorChallenge) error {
	ch.CreatedAt = now()
	if _, err := s.db.NewDelete().Model((*SecondFactorChallenge)(nil)).
		Where("user_id = ? AND expires_at <= ?", ch.UserID, ch.CreatedAt).Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewInsert().Model(ch).Exec(ctx)
	return err
}

// GetSecondFactorChallenge returns an unexpired challenge by its digest.
func (s *Store) GetSecondFactorChallenge(ctx context.Context, hash string, at time.Time) (*SecondFactorChallenge, error) {
	ch := new(SecondFactorChallenge)
	err := s.db.NewSelect().Model(ch).Where("token_hash = ? AND expires_at > ?", hash, at.UTC()).Scan(ctx)
	return ch, classify(err, "sign-in")
}

// FailSecondFactorChallenge counts a wrong code against a challenge, and ends the challenge once it has had
// maxAttempts. It reports whether the challenge still stands.
func (s *Store) FailSecondFactorChallenge(ctx context.Context, hash string, maxAttempts int) (bool, error) {
	if _, err := s.db.NewUpdate().Model((*SecondFactorChallenge)(nil)).Set("attempts = attempts + 1").
		Where("token_hash = ?", hash).Exec(ctx); err != nil {
		return false, err
	}
	ended, err := affectedOne(s.db.NewDelete().Model((*SecondFactorChallenge)(nil)).
		Where("token_hash = ? AND attempts >= ?", hash, maxAttempts).Exec(ctx))
	return !ended, err
}

// TakeSecondFactorChallenge uses a challenge up: it reports whether it was still there, and deletes it in the
// same statement, so one challenge yields at most one session.
func (s *Store) TakeSecondFactorChallenge(ctx context.Context, hash string) (bool, error) {
	return affectedOne(s.db.NewDelete().Model((*SecondFactorChallenge)(nil)).Where("token_hash = ?", hash).Exec(ctx))
}
