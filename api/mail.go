package api

import (
	"context"

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
