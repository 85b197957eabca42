package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// queueMail puts a message carrying a single-use link in the outbox, inside tx, so that it is sent if and
// only if what it announces is stored. Without an SMTP server the link is logged for the operator instead, and
// reported back (mailed=false) so the route may show it to a caller entitled to it. Call s.mailQueued after
// the transaction commits.
func (s *Server) queueMail(ctx context.Context, tx *storage.Store, m mail.Message, link string) (mailed bool, err error) {
	if s.mail == nil {
		s.log.Warn("no SMTP server configured: hand this link to its recipient yourself", "to", m.To, "subject", m.Subject, "link", link)
		return false, nil
	}
	return true, s.mail.Enqueue(ctx, tx, m)
}

// mailQueued delivers queued mail now rather than at the outbox's next round.
func (s *Server) mailQueued() {
	if s.mail != nil {
		s.mail.Wake()
	}
}

// emailRequest names an address to mail a link to (a password reset, a new confirmation link).
type emailRequest struct {
	Email string `json:"email"`
}

// forAccountOf serves a request that names an address and may mail it a link: the address is validated, the
// request counted by limit (per address, whether or not an account has it, and per client), and send runs in a
// transaction with the account that has the address; with none, nothing runs, so that the caller answers alike.
func (s *Server) forAccountOf(c *fiber.Ctx, limit func(email, ip string, at time.Time) error,
	send func(ctx context.Context, tx *storage.Store, u *storage.User) error) error {
	var req emailRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	email, emailErr := domain.ValidateEmail("email", req.Email)
	if err := domain.Collect(emailErr); err != nil {
		return err
	}
	if err := limit(email, s.clientAddress(c), time.Now()); err != nil {
		return err
	}
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		u, err := tx.GetUserByEmail(ctx, email)
		if domain.IsKind(err, domain.KindNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return send(ctx, tx, u)
	})
	if err != nil {
		return err
	}
	s.mailQueued()
	return nil
}
