package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// InsertUser adds a user. A taken e-mail is a conflict.
func (s *Store) InsertUser(ctx context.Context, u *User) error {
	u.CreatedAt, u.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(u).Exec(ctx)
	return classify(err, "user")
}

// GetUserByID returns one user.
func (s *Store) GetUserByID(ctx context.Context, id string) (*User, error) {
	u := new(User)
	err := s.db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx)
	return u, classify(err, "user")
}

// GetUserByEmail returns the user with that (normalised) e-mail.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*User, error) {
	u := new(User)
	err := s.db.NewSelect().Model(u).Where("email = ?", email).Scan(ctx)
	return u, classify(err, "user")
}

// ListUsers returns a page of all users.
func (s *Store) ListUsers(ctx context.Context, p Page) ([]User, string, error) {
	return listPage(ctx, s.db.NewSelect().Model((*User)(nil)), "id", p, func(u *User) string { return u.ID })
}

// CountUsers counts all users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	return count(s.db.NewSelect().Model((*User)(nil)).Count(ctx))
}

// InsertSession stores a session by the hash of its cookie value.
func (s *Store) InsertSession(ctx context.Context, sess *Session) error {
	sess.CreatedAt = now()
	_, err := s.db.NewInsert().Model(sess).Exec(ctx)
	return err
}

// GetSessionUser returns the user of an unexpired session.
func (s *Store) GetSessionUser(ctx context.Context, tokenHash string, at time.Time) (*User, error) {
	u := new(User)
	err := s.db.NewSelect().Model(u).
		Join("JOIN sessions AS sess ON sess.user_id = u.id").
		Where("sess.token_hash = ? AND sess.expires_at > ?", tokenHash, at.UTC()).
		Scan(ctx)
	return u, classify(err, "session")
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := s.db.NewDelete().Model((*Session)(nil)).Where("token_hash = ?", tokenHash).Exec(ctx)
	return err
}

// InsertToken stores a token by its hash.
func (s *Store) InsertToken(ctx context.Context, t *Token) error {
	t.CreatedAt = now()
	if t.Scopes == nil {
		t.Scopes = []string{}
	}
	_, err := s.db.NewInsert().Model(t).Exec(ctx)
	return classify(err, "token")
}

// GetTokenByHash returns an unexpired token of one of the given kinds.
func (s *Store) GetTokenByHash(ctx context.Context, hash string, at time.Time, kinds ...string) (*Token, error) {
	t := new(Token)
	err := s.db.NewSelect().Model(t).
		Where("token_hash = ?", hash).
		Where("kind IN (?)", bun.List(kinds)).
		Where("expires_at IS NULL OR expires_at > ?", at.UTC()).
		Scan(ctx)
	return t, classify(err, "token")
}

// ListTokensByOwner lists the tokens an owner holds, of one kind.
func (s *Store) ListTokensByOwner(ctx context.Context, kind, ownerType, ownerID string, p Page) ([]Token, string, error) {
	q := s.db.NewSelect().Model((*Token)(nil)).Where("kind = ? AND owner_type = ? AND owner_id = ?", kind, ownerType, ownerID)
	return listPage(ctx, q, "id", p, func(t *Token) string { return t.ID })
}

// DeleteTokenOfOwner revokes one token, only if the owner holds it.
func (s *Store) DeleteTokenOfOwner(ctx context.Context, id, ownerType, ownerID string) error {
	res, err := s.db.NewDelete().Model((*Token)(nil)).
		Where("id = ? AND owner_type = ? AND owner_id = ?", id, ownerType, ownerID).Exec(ctx)
	return mustAffect(res, err, "token")
}

// DeleteTokensOfOwner revokes every token of an owner.
func (s *Store) DeleteTokensOfOwner(ctx context.Context, ownerType, ownerID string) error {
	_, err := s.db.NewDelete().Model((*Token)(nil)).Where("owner_type = ? AND owner_id = ?", ownerType, ownerID).Exec(ctx)
	return err
}

// TokenOwner is a user token joined with its user, read in one query on every bearer-authenticated request.
type TokenOwner struct {
	User  User  `bun:"embed:u_"`
	Token Token `bun:"embed:t_"`
}

// GetUserByToken returns the user holding an unexpired token of the kind, and the token.
func (s *Store) GetUserByToken(ctx context.Context, hash, kind string, at time.Time) (*User, *Token, error) {
	var row TokenOwner
	err := s.db.NewSelect().TableExpr("tokens AS t").
		ColumnExpr("u.id AS u_id, u.email AS u_email, u.name AS u_name, u.password_hash AS u_password_hash, u.admin AS u_admin, u.password_change_required AS u_password_change_required, u.created_at AS u_created_at, u.updated_at AS u_updated_at").
		ColumnExpr("t.id AS t_id, t.kind AS t_kind, t.name AS t_name, t.owner_type AS t_owner_type, t.owner_id AS t_owner_id, t.scopes AS t_scopes, t.expires_at AS t_expires_at").
		ColumnExpr("u.suspended_at AS u_suspended_at, u.email_unverified AS u_email_unverified").
		Join("JOIN users AS u ON u.id = t.owner_id").
		Where("t.token_hash = ? AND t.kind = ? AND t.owner_type = 'user'", hash, kind).
		Where("t.expires_at IS NULL OR t.expires_at > ?", at.UTC()).
		Scan(ctx, &row)
	if err != nil {
		return nil, nil, classify(err, "token")
	}
	return &row.User, &row.Token, nil
}

// SetPassword stores a new password hash and lifts the requirement to change it.
func (s *Store) SetPassword(ctx context.Context, userID, hash string) error {
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("password_hash = ?", hash).Set("password_change_required = FALSE").
		Set("updated_at = ?", now()).Where("id = ?", userID).Exec(ctx)
	return mustAffect(res, err, "user")
}

// DeleteSessionsOfUser ends every session of a user but the one whose hash is kept ("" for none).
func (s *Store) DeleteSessionsOfUser(ctx context.Context, userID, keep string) error {
	_, err := s.db.NewDelete().Model((*Session)(nil)).Where("user_id = ? AND token_hash <> ?", userID, keep).Exec(ctx)
	return err
}

// PasswordReset is a password-reset link; only the digest of its token is stored.
type PasswordReset struct {
	bun.BaseModel `bun:"table:password_resets"`
	TokenHash     string `bun:",pk"`
	UserID        string
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

// InsertPasswordReset stores a reset link.
func (s *Store) InsertPasswordReset(ctx context.Context, r *PasswordReset) error {
	r.CreatedAt = now()
	_, err := s.db.NewInsert().Model(r).Exec(ctx)
	return err
}

// TakePasswordReset uses up an unexpired reset link: it is deleted in the same statement that finds it, so a
// link works once even when two requests race.
func (s *Store) TakePasswordReset(ctx context.Context, hash string, at time.Time) (*PasswordReset, error) {
	r := new(PasswordReset)
	return r, takeLink(ctx, s, r, hash, at, "password reset")
}

// takeLink reads the unexpired single-use link (a row of a table with token_hash and expires_at) into row and
// deletes it in the same transaction; a missing, expired or already taken one is not found.
func takeLink[T any](ctx context.Context, s *Store, row *T, hash string, at time.Time, what string) error {
	err := s.db.NewSelect().Model(row).Where("token_hash = ? AND expires_at > ?", hash, at.UTC()).Scan(ctx)
	if err != nil {
		return classify(err, what)
	}
	res, err := s.db.NewDelete().Model((*T)(nil)).Where("token_hash = ?", hash).Exec(ctx)
	return mustAffect(res, err, what)
}

// DeletePasswordResets removes every reset link of a user (the password changed).
func (s *Store) DeletePasswordResets(ctx context.Context, userID string) error {
	_, err := s.db.NewDelete().Model((*PasswordReset)(nil)).Where("user_id = ?", userID).Exec(ctx)
	return err
}
