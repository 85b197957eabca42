package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Invitation states. Pending is the only one that can change; an expired pending invitation stays pending
// until it is replaced (ExpirePendingInvitation) and is treated as expired by its expiry time.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationDeclined = "declined"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// Invitation asks someone, by e-mail, to join a team with a role. Only the digest of its token is stored.
type Invitation struct {
	bun.BaseModel `bun:"table:invitations,alias:inv"`
	ID            string `bun:",pk"`
	TeamID        string
	Email         string
	Role          domain.Role
	TokenHash     string
	Status        string
	InvitedBy     *string
	ExpiresAt     time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// InsertInvitation stores a pending invitation; a pending one for the same address and team is a conflict.
func (s *Store) InsertInvitation(ctx context.Context, inv *Invitation) error {
	inv.CreatedAt, inv.UpdatedAt, inv.Status = now(), now(), InvitationPending
	_, err := s.db.NewInsert().Model(inv).Exec(ctx)
	return classify(err, "invitation")
}

// GetInvitationByTokenHash returns the invitation a link names, in any state.
func (s *Store) GetInvitationByTokenHash(ctx context.Context, hash string) (*Invitation, error) {
	inv := new(Invitation)
	err := s.db.NewSelect().Model(inv).Where("token_hash = ?", hash).Scan(ctx)
	return inv, classify(err, "invitation")
}

// GetPendingInvitation returns a team's pending invitation (expired or not) by ID.
func (s *Store) GetPendingInvitation(ctx context.Context, teamID, id string) (*Invitation, error) {
	inv := new(Invitation)
	err := s.db.NewSelect().Model(inv).Where("id = ? AND team_id = ? AND status = ?", id, teamID, InvitationPending).Scan(ctx)
	return inv, classify(err, "invitation")
}

// ListPendingInvitations returns a page of a team's unexpired pending invitations.
func (s *Store) ListPendingInvitations(ctx context.Context, teamID string, at time.Time, p Page) ([]Invitation, string, error) {
	q := s.db.NewSelect().Model((*Invitation)(nil)).
		Where("team_id = ? AND status = ? AND expires_at > ?", teamID, InvitationPending, at.UTC())
	return listPage(ctx, q, "id", p, func(i *Invitation) string { return i.ID })
}

// CountPendingInvitations counts a team's unexpired pending invitations, which hold a place under the
// member limit.
func (s *Store) CountPendingInvitations(ctx context.Context, teamID string, at time.Time) (int, error) {
	return count(s.db.NewSelect().Model((*Invitation)(nil)).
		Where("team_id = ? AND status = ? AND expires_at > ?", teamID, InvitationPending, at.UTC()).Count(ctx))
}

// ExpirePendingInvitation marks an address's expired pending invitation to a team expired, so that a new one
// may be sent; it reports whether an unexpired pending invitation remains.
func (s *Store) ExpirePendingInvitation(ctx context.Context, teamID, email string, at time.Time) (stillPending bool, err error) {
	_, err = s.db.NewUpdate().Model((*Invitation)(nil)).Set("status = ?", InvitationExpired).Set("updated_at = ?", now()).
		Where("team_id = ? AND email = ? AND status = ? AND expires_at <= ?", teamID, email, InvitationPending, at.UTC()).Exec(ctx)
	if err != nil {
		return false, err
	}
	n, err := count(s.db.NewSelect().Model((*Invitation)(nil)).
		Where("team_id = ? AND email = ? AND status = ?", teamID, email, InvitationPending).Count(ctx))
	return n > 0, err
}

// FinishInvitation moves a pending invitation to a final state. It fails with a conflict when the invitation
// is no longer pending (another request used it first), so a link works once.
func (s *Store) FinishInvitation(ctx context.Context, id, status string) error {
	res, err := s.db.NewUpdate().Model((*Invitation)(nil)).Set("status = ?", status).Set("updated_at = ?", now()).
		Where("id = ? AND status = ?", id, InvitationPending).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return domain.Conflict("invitation_used", "This invitation has already been used.")
	}
	return nil
}
