package platform

import (
	"context"
	"log/slog"

	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// startMail delivers the outbox in the background until ctx ends, and returns it for the API to queue mail in;
// nil without an SMTP server, when the API logs links instead. Every API process delivers: the outbox hands
// each e-mail to one of them at a time.
func startMail(ctx context.Context, cfg config.Config, st *storage.Store, sealer *domain.Sealer, log *slog.Logger) (*mail.Outbox, error) {
	if !cfg.MailEnabled() {
		log.Info("no SMTP server configured (--smtp-url): invitation and password-reset links are logged instead of mailed")
		return nil, nil
	}
	sender, err := mail.NewSMTP(cfg.Mail.SMTPURL, cfg.Mail.From)
	if err != nil {
		return nil, err
	}
	box := mail.NewOutbox(st, sealer, sender, log.With("component", "mail"))
	go box.Run(ctx)
	return box, nil
}
