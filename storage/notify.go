package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/domain"
)

// Messages between the processes that share a Postgres database (LISTEN/NOTIFY), and the table where an
// answer too big for a notification waits for the process that asked. SQLite is one process: it has neither.

// MaxNotifyBytes is the largest payload Postgres accepts in a notification (less than 8000 bytes).
const MaxNotifyBytes = 7999

// ErrNoNotifications is the answer of Notify and Listen on SQLite.
var ErrNoNotifications = errors.New("notifications between processes need Postgres")

// Notifies reports whether the database carries notifications between processes (Postgres).
func (s *Store) Notifies() bool { return s.Dialect() == "pg" }

// Notify sends payload to every process listening on channel, at once: call it after the transaction whose
// changes it announces has committed.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if !s.Notifies() {
		return ErrNoNotifications
	}
	if len(payload) > MaxNotifyBytes {
		return fmt.Errorf("a notification of %d bytes is over Postgres's limit of %d", len(payload), MaxNotifyBytes)
	}
	_, err := s.root.ExecContext(ctx, "SELECT pg_notify(?, ?)", channel, payload)
	return err
}

// Listener receives the notifications of one channel on a connection of its own.
type Listener struct {
	ln      *pgdriver.Listener
	channel string
	early   []string // received while Listen confirmed the connection listens
}

// listenConfirmTimeout bounds how long Listen waits for its connection to hear itself; confirmEvery is how often
// it asks again meanwhile.
const (
	listenConfirmTimeout = 10 * time.Second
	confirmEvery         = 50 * time.Millisecond
)

// Listen opens a connection that listens on channel. When it returns, the connection listens: every
// notification sent from then on is received. (pgdriver sends LISTEN without waiting for the server to run it,
// so a notification sent right after could be missed: Listen notifies a channel of its own until it hears
// itself.) What was notified before is not received.
func (s *Store) Listen(ctx context.Context, channel string) (*Listener, error) {
	if !s.Notifies() {
		return nil, ErrNoNotifications
	}
	l := &Listener{ln: pgdriver.NewListener(s.root), channel: channel}
	confirm := "flowyard_listening_" + strings.ToLower(domain.NewID())
	if err := l.ln.Listen(ctx, channel, confirm); err != nil {
		_ = l.ln.Close()
		return nil, err
	}
	if err := l.hear(ctx, s, confirm); err != nil {
		_ = l.ln.Close()
		return nil, fmt.Errorf("the listening connection did not hear itself: %w", err)
	}
	return l, nil
}

// hear notifies confirm until the connection hears it, keeping what the channel brings meanwhile. The wait has
// no read deadline (pgdriver drops a connection whose read timed out): the notifier closes the connection when
// the time is up, which ends it.
func (l *Listener) hear(ctx context.Context, s *Store, confirm string) error {
	heard := make(chan struct{})
	defer close(heard)
	go func() {
		tick := time.NewTicker(confirmEvery)
		defer tick.Stop()
		giveUp := time.After(listenConfirmTimeout)
		for {
			_ = s.Notify(ctx, confirm, "") // a failure shows as silence
			select {
			case <-heard:
				return
			case <-tick.C:
			case <-giveUp:
				_ = l.ln.Close()
				return
			case <-ctx.Done():
				_ = l.ln.Close()
				return
			}
		}
	}()
	for {
		ch, payload, err := l.ln.Receive(ctx)
		switch {
		case err != nil:
			return err
		case ch == confirm:
			return nil
		case ch == l.channel:
			l.early = append(l.early, payload)
		}
	}
}

// Receive waits for the next notification and returns its payload. An error means the connection is gone (or
// the Listener closed): close it and listen again; what was notified meanwhile is lost. A connection that
// silently stopped answering is not noticed here: Close it from another goroutine to end the wait.
func (l *Listener) Receive(ctx context.Context) (string, error) {
	if len(l.early) > 0 {
		p := l.early[0]
		l.early = l.early[1:]
		return p, nil
	}
	for {
		ch, payload, err := l.ln.Receive(ctx)
		if err != nil || ch == l.channel {
			return payload, err
		}
	}
}

// Close closes the listening connection.
func (l *Listener) Close() error { return l.ln.Close() }

// DeviceReply is a device's answer to a command, waiting for the process that asked (Body is opaque here).
type DeviceReply struct {
	bun.BaseModel `bun:"table:device_replies"`
	ID            string `bun:",pk"` // the request's id
	DeviceID      string
	Body          string
	CreatedAt     time.Time
}

// deviceReplyTTL is how long an answer nobody read is kept.
const deviceReplyTTL = 10 * time.Minute

// InsertDeviceReply stores an answer to a request, once: a second answer to the same request is ignored. It
// also deletes answers nobody read in time.
func (s *Store) InsertDeviceReply(ctx context.Context, r *DeviceReply) error {
	r.CreatedAt = now()
	if _, err := s.db.NewDelete().Model((*DeviceReply)(nil)).Where("created_at < ?", r.CreatedAt.Add(-deviceReplyTTL)).Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewInsert().Model(r).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	return err
}

// TakeDeviceReply reads and deletes the answer to a request from a device.
func (s *Store) TakeDeviceReply(ctx context.Context, requestID, deviceID string) (*DeviceReply, error) {
	r := new(DeviceReply)
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.db.NewSelect().Model(r).Where("id = ? AND device_id = ?", requestID, deviceID).Scan(ctx); err != nil {
			return classify(err, "device reply")
		}
		_, err := tx.db.NewDelete().Model((*DeviceReply)(nil)).Where("id = ?", requestID).Exec(ctx)
		return err
	})
	return r, err
}
