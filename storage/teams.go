package storage

import (
	"context"

	"github.com/flowyard/flowyard/domain"
)

// InsertTeam adds a team. A taken slug is a conflict.
func (s *Store) InsertTeam(ctx context.Context, t *Team) error {
	t.CreatedAt, t.UpdatedAt = now(), now()
	_, err := s.db.NewInsert().Model(t).Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("slug_taken", "A team with that slug already exists.")
	}
	return err
}

// GetTeam returns one team.
func (s *Store) GetTeam(ctx context.Context, id string) (*Team, error) {
	t := new(Team)
	err := s.db.NewSelect().Model(t).Where("id = ?", id).Scan(ctx)
	return t, classify(err, "team")
}

// UpdateTeam writes the given columns of a team.
func (s *Store) UpdateTeam(ctx context.Context, t *Team, columns ...string) error {
	t.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(t).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("slug_taken", "A team with that slug already exists.")
	}
	return mustAffect(res, err, "team")
}

// DeleteTeam removes a team with its memberships and applications.
func (s *Store) DeleteTeam(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*Team)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "team")
}

// TeamWithRole is a team seen by one of its members.
type TeamWithRole struct {
	Team
	Role domain.Role
}

// ListTeamsOfUser returns the teams a user belongs to, with the user's role.
func (s *Store) ListTeamsOfUser(ctx context.Context, userID string, p Page) ([]TeamWithRole, string, error) {
	q := s.db.NewSelect().Model((*Team)(nil)).ColumnExpr("team.*, m.role").
		Join("JOIN memberships AS m ON m.team_id = team.id").
		Where("m.user_id = ?", userID)
	return listPage(ctx, q, "team.id", p, func(t *TeamWithRole) string { return t.ID })
}

// ListAllTeams returns a page of every team (platform admins).
func (s *Store) ListAllTeams(ctx context.Context, p Page) ([]Team, string, error) {
	return listPage(ctx, s.db.NewSelect().Model((*Team)(nil)), "id", p, func(t *Team) string { return t.ID })
}

// GetMembership returns a user's membership of a team.
func (s *Store) GetMembership(ctx context.Context, teamID, userID string) (*Membership, error) {
	m := new(Membership)
	err := s.db.NewSelect().Model(m).Where("team_id = ? AND user_id = ?", teamID, userID).Scan(ctx)
	return m, classify(err, "member")
}

// InsertMembership adds a user to a team. An existing membership is a conflict.
func (s *Store) InsertMembership(ctx context.Context, m *Membership) error {
	m.CreatedAt = now()
	_, err := s.db.NewInsert().Model(m).Exec(ctx)
	if isUniqueViolation(err) {
		return domain.Conflict("already_member", "That user is already a member of the team.")
	}
	return err
}

// UpdateMembershipRole changes a member's role.
func (s *Store) UpdateMembershipRole(ctx context.Context, teamID, userID string, role domain.Role) error {
	res, err := s.db.NewUpdate().Model((*Membership)(nil)).Set("role = ?", role).
		Where("team_id = ? AND user_id = ?", teamID, userID).Exec(ctx)
	return mustAffect(res, err, "member")
}

// DeleteMembership removes a user from a team.
func (s *Store) DeleteMembership(ctx context.Context, teamID, userID string) error {
	res, err := s.db.NewDelete().Model((*Membership)(nil)).Where("team_id = ? AND user_id = ?", teamID, userID).Exec(ctx)
	return mustAffect(res, err, "member")
}

// CountMembers counts a team's members, or only those of one role when role is not RoleNone.
func (s *Store) CountMembers(ctx context.Context, teamID string, role domain.Role) (int, error) {
	q := s.db.NewSelect().Model((*Membership)(nil)).Where("team_id = ?", teamID)
	if role != domain.RoleNone {
		q = q.Where("role = ?", role)
	}
	return count(q.Count(ctx))
}

// ListMembers returns a page of a team's members with their user details.
func (s *Store) ListMembers(ctx context.Context, teamID string, p Page) ([]Member, string, error) {
	q := s.db.NewSelect().TableExpr("memberships AS m").
		ColumnExpr("m.user_id, u.email, u.name, m.role, m.created_at").
		Join("JOIN users AS u ON u.id = m.user_id").
		Where("m.team_id = ?", teamID)
	return listPage(ctx, q, "m.user_id", p, func(m *Member) string { return m.UserID })
}

// LockTeam holds the team's row until the transaction ends, so that counting what a team holds and adding to it
// (a limit check and its insert) happen one request at a time for that team. Postgres, at READ COMMITTED, would
// otherwise let concurrent transactions each count the same total and all insert; SQLite takes its write lock.
func (s *Store) LockTeam(ctx context.Context, teamID string) error {
	_, err := s.db.NewUpdate().Table("teams").Set("id = id").Where("id = ?", teamID).Exec(ctx)
	return err
}

// HoldTeam keeps the team's row from changing until the transaction ends without making the team's other holders
// wait, and returns the team's type as it is now: on Postgres a shared row lock, which a move of the team to
// another type (an update of the row) waits for, and which waits for such a move in progress, then reads its
// result. Adding to a team whose type sets no limit needs no more. SQLite takes its write lock (LockTeam).
func (s *Store) HoldTeam(ctx context.Context, teamID string) (string, error) {
	q := s.db.NewSelect().Table("teams").Column("team_type_id").Where("id = ?", teamID)
	if s.Dialect() == "pg" {
		q = q.For("SHARE")
	} else if err := s.LockTeam(ctx, teamID); err != nil {
		return "", err
	}
	var typeID string
	err := q.Scan(ctx, &typeID)
	return typeID, classify(err, "team")
}
