package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// User administration (suspension, changes, deletion), sign-up's address confirmation, and the platform settings.

// UpdateUser writes the given columns of a user. A taken e-mail is a conflict.
func (s *Store) UpdateUser(ctx context.Context, u *User, columns ...string) error {
	u.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(u).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "user")
}

// SetUserSuspended suspends a user at the given time, or reinstates them (nil).
func (s *Store) SetUserSuspended(ctx context.Context, userID string, at *time.Time) error {
	if at != nil {
		t := at.UTC().Truncate(time.Microsecond)
		at = &t
	}
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("suspended_at = ?", at).Set("updated_at = ?", now()).
		Where("id = ?", userID).Exec(ctx)
	return mustAffect(res, err, "user")
}

// DeleteUser removes a user and every credential they hold: their personal tokens here, and through the schema
// their sessions, memberships and pending links; what they created keeps existing, its creator left empty.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	if err := s.DeleteTokensOfOwner(ctx, "user", userID); err != nil {
		return err
	}
	res, err := s.db.NewDelete().Model((*User)(nil)).Where("id = ?", userID).Exec(ctx)
	return mustAffect(res, err, "user")
}

// LockAdmins holds the rows of the active platform admins until the transaction ends, so that checking that
// another admin remains and removing one happen one request at a time (as LockTeam does for a team's limits).
func (s *Store) LockAdmins(ctx context.Context) error {
	_, err := s.db.NewUpdate().Table("users").Set("id = id").Where("admin AND suspended_at IS NULL").Exec(ctx)
	return err
}

// CountActiveAdmins counts the platform admins who are not suspended, leaving out one user ("" for none).
func (s *Store) CountActiveAdmins(ctx context.Context, except string) (int, error) {
	return count(s.db.NewSelect().Model((*User)(nil)).Where("admin AND suspended_at IS NULL AND id <> ?", except).Count(ctx))
}

// TeamIDsOfUser lists the teams a user is a member of.
func (s *Store) TeamIDsOfUser(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Membership)(nil)).Column("team_id").Where("user_id = ?", userID).Order("team_id").Scan(ctx, &ids)
	return ids, err
}

// TeamsOwnedOnlyBy returns the teams whose only owner is the user, locking every team the user owns first so
// that no other request changes their owners until the transaction ends.
func (s *Store) TeamsOwnedOnlyBy(ctx context.Context, userID string) ([]Team, error) {
	var owned []string
	err := s.db.NewSelect().Model((*Membership)(nil)).Column("team_id").Where("user_id = ? AND role = ?", userID, domain.RoleOwner).
		Order("team_id").Scan(ctx, &owned)
	if err != nil {
		return nil, err
	}
	for _, id := range owned {
		if err := s.LockTeam(ctx, id); err != nil {
			return nil, err
		}
	}
	var teams []Team
	err = s.db.NewSelect().Model(&teams).
		Join("JOIN memberships AS m ON m.team_id = team.id AND m.user_id = ? AND m.role = ?", userID, domain.RoleOwner).
		Where("NOT EXISTS (SELECT 1 FROM memberships AS o WHERE o.team_id = team.id AND o.role = ? AND o.user_id <> ?)", domain.RoleOwner, userID).
		Order("team.name", "team.id").Scan(ctx)
	return teams, err
}

// EmailVerification is a link that confirms a signed-up account's address; only the digest of its token is stored.
type EmailVerification struct {
	bun.BaseModel `bun:"table:email_verifications"`
	TokenHash     string `bun:",pk"`
	UserID        string
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

// InsertEmailVerification stores a confirmation link.
func (s *Store) InsertEmailVerification(ctx context.Context, v *EmailVerification) error {
	v.CreatedAt = now()
	_, err := s.db.NewInsert().Model(v).Exec(ctx)
	return err
}

// TakeEmailVerification uses up an unexpired confirmation link: it is deleted in the transaction that finds it,
// so a link works once even when two requests race (the caller's transaction, rolled back, leaves it usable).
func (s *Store) TakeEmailVerification(ctx context.Context, hash string, at time.Time) (*EmailVerification, error) {
	v := new(EmailVerification)
	return v, takeLink(ctx, s, v, hash, at, "confirmation link")
}

// DeleteEmailVerifications removes every confirmation link of a user.
func (s *Store) DeleteEmailVerifications(ctx context.Context, userID string) error {
	_, err := s.db.NewDelete().Model((*EmailVerification)(nil)).Where("user_id = ?", userID).Exec(ctx)
	return err
}

// MarkEmailVerified records that a user's address is confirmed.
func (s *Store) MarkEmailVerified(ctx context.Context, userID string) error {
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("email_unverified = FALSE").Set("updated_at = ?", now()).
		Where("id = ?", userID).Exec(ctx)
	return mustAffect(res, err, "user")
}

// CredentialUsers finds, for the hashes of sessions and personal access tokens, the users whose unexpired
// credential each still is: a hash missing from the answer was signed out, revoked, expired or its user deleted.
// The live streams of every replica ask it about their callers about once a second.
func (s *Store) CredentialUsers(ctx context.Context, sessionHashes, tokenHashes []string, at time.Time) (map[string]*User, error) {
	owners := map[string]string{} // credential hash -> user ID
	type pair struct {
		Hash   string
		UserID string
	}
	for _, batch := range batches(sessionHashes) {
		var rows []pair
		err := s.db.NewSelect().Model((*Session)(nil)).ColumnExpr("token_hash AS hash, user_id").
			Where("token_hash IN (?) AND expires_at > ?", bun.List(batch), at.UTC()).Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			owners[r.Hash] = r.UserID
		}
	}
	for _, batch := range batches(tokenHashes) {
		var rows []pair
		err := s.db.NewSelect().Model((*Token)(nil)).ColumnExpr("token_hash AS hash, owner_id AS user_id").
			Where("token_hash IN (?) AND kind = 'user' AND owner_type = 'user'", bun.List(batch)).
			Where("expires_at IS NULL OR expires_at > ?", at.UTC()).Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			owners[r.Hash] = r.UserID
		}
	}
	users, err := s.usersByID(ctx, owners)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*User, len(owners))
	for hash, id := range owners {
		if u, ok := users[id]; ok {
			out[hash] = u
		}
	}
	return out, nil
}

// usersByID reads the users the map's values name.
func (s *Store) usersByID(ctx context.Context, owners map[string]string) (map[string]*User, error) {
	seen := map[string]bool{}
	var ids []string
	for _, id := range owners {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	out := make(map[string]*User, len(ids))
	for _, batch := range batches(ids) {
		var users []User
		if err := s.db.NewSelect().Model(&users).Where("id IN (?)", bun.List(batch)).Scan(ctx); err != nil {
			return nil, err
		}
		for i := range users {
			out[users[i].ID] = &users[i]
		}
	}
	return out, nil
}

// batches cuts a list into pieces small enough for one IN (…) in either database.
func batches(items []string) [][]string {
	const size = 500
	var out [][]string
	for len(items) > 0 {
		n := min(size, len(items))
		out = append(out, items[:n])
		items = items[n:]
	}
	return out
}

// PlatformSetting is one platform-wide setting; Value is JSON.
type PlatformSetting struct {
	bun.BaseModel `bun:"table:platform_settings"`
	Key           string `bun:",pk"`
	Value         string
	UpdatedAt     time.Time
}

// PlatformSettings returns every stored setting by key; a setting never changed has no row.
func (s *Store) PlatformSettings(ctx context.Context) (map[string]string, error) {
	var rows []PlatformSetting
	if err := s.db.NewSelect().Model(&rows).Scan(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Key] = r.Value
	}
	return out, nil
}

// PutPlatformSetting stores a setting's JSON value, replacing the one before.
func (s *Store) PutPlatformSetting(ctx context.Context, key, value string) error {
	_, err := s.db.NewInsert().Model(&PlatformSetting{Key: key, Value: value, UpdatedAt: now()}).
		On("CONFLICT (key) DO UPDATE").Set("value = EXCLUDED.value, updated_at = EXCLUDED.updated_at").Exec(ctx)
	return err
}
