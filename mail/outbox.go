package mail

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Delivery tuning: an attempt holds its e-mail for claimLease; failures back off from firstRetry doubling up
// to maxRetry; mail still undelivered after giveUpAfter (the life of an invitation) is dropped with an error
// in the log, since its links have expired.
const (
	claimLease  = 2 * time.Minute
	firstRetry  = 10 * time.Second
	maxRetry    = time.Hour
	giveUpAfter = 7 * 24 * time.Hour
	batchSize   = 20
)

// Outbox queues e-mails in the store and delivers them.
type Outbox struct {
	Store  *storage.Store
	Sealer *domain.Sealer
	Sender Sender
	Log    *slog.Logger
	Every  time.Duration // how often the outbox is looked at; default 5s
	wake   chan struct{}
}

// NewOutbox builds an outbox delivering through sender.
func NewOutbox(st *storage.Store, sealer *domain.Sealer, sender Sender, log *slog.Logger) *Outbox {
	return &Outbox{Store: st, Sealer: sealer, Sender: sender, Log: log, Every: 5 * time.Second, wake: make(chan struct{}, 1)}
}

// Enqueue stores a message in tx (the caller's transaction): it is delivered only if that transaction commits.
// Call Wake after the commit to deliver it without waiting for the next round.
func (o *Outbox) Enqueue(ctx context.Context, tx *storage.Store, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.InsertMail(ctx, &storage.OutgoingMail{ID: domain.NewID(), Recipient: m.To, Subject: m.Subject, Body: o.Sealer.Seal(string(body))})
}

// Wake asks Run to look at the outbox now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers due mail until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		if _, err := o.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error("mail outbox", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
		}
	}
}

// DeliverDue tries every due e-mail once and reports how many were delivered.
func (o *Outbox) DeliverDue(ctx context.Context) (int, error) {
	due, err := o.Store.ClaimDueMail(ctx, time.Now(), claimLease, batchSize)
	if err != nil {
		return 0, err
	}
	sent := 0
	for i := range due {
		ok, err := o.deliver(ctx, &due[i])
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

// deliver tries one e-mail: delivered or abandoned it leaves the outbox, else it is due again after a backoff.
func (o *Outbox) deliver(ctx context.Context, row *storage.OutgoingMail) (bool, error) {
	var m Message
	plain, err := o.Sealer.Open(row.Body)
	if err == nil {
		err = json.Unmarshal([]byte(plain), &m)
	}
	if err != nil {
		o.Log.Error("dropping an e-mail that cannot be opened (was the secret key changed?)", "id", row.ID, "to", row.Recipient, "error", err)
		return false, o.Store.DeleteMail(ctx, row.ID)
	}
	sendErr := o.Sender.Send(ctx, m)
	if sendErr == nil {
		o.Log.Info("e-mail sent", "id", row.ID, "to", row.Recipient, "subject", row.Subject, "attempts", row.Attempts)
		return true, o.Store.DeleteMail(ctx, row.ID)
	}
	if time.Since(row.CreatedAt) > giveUpAfter {
		o.Log.Error("giving up on an e-mail", "id", row.ID, "to", row.Recipient, "attempts", row.Attempts, "error", sendErr)
		return false, o.Store.DeleteMail(ctx, row.ID)
	}
	next := time.Now().Add(backoff(row.Attempts))
	o.Log.Warn("e-mail not sent; will retry", "id", row.ID, "to", row.Recipient, "attempts", row.Attempts, "retryAt", next, "error", sendErr)
	return false, o.Store.RetryMailAt(ctx, row.ID, next, sendErr.Error())
}

// backoff is the wait after the n-th failed attempt (n from 1).
func backoff(attempts int) time.Duration {
	d := firstRetry
	for i := 1; i < attempts && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}
