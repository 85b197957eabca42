package mail_test

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	flowmail "github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/mail/mailtest"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

func newOutbox(t *testing.T, st *storage.Store, smtpURL string) *flowmail.Outbox {
	t.Helper()
	sender, err := flowmail.NewSMTP(smtpURL, "Flowyard <flowyard@example.com>")
	require.NoError(t, err)
	sealer, err := domain.NewSealer(strings.Repeat("k", 32))
	require.NoError(t, err)
	return flowmail.NewOutbox(st, sealer, sender, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func invitation(t *testing.T) flowmail.Message {
	t.Helper()
	m, err := flowmail.InvitationMessage("bob@example.com", flowmail.Invitation{TeamName: `<b>Ops & "Co"</b>`, InviterName: "Alice",
		Role: "member", Link: "http://flowyard.test/invitations/abc?x=1&y=2", Expires: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)})
	require.NoError(t, err)
	return m
}

// parts reads the plain-text and HTML parts of a multipart/alternative message.
func parts(t *testing.T, raw string) map[string]string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	require.NoError(t, err)
	media, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", media)
	out := map[string]string{}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart() // decodes quoted-printable
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[ct] = string(b)
	}
}

func TestInvitationRendersTextAndEscapedHTML(t *testing.T) {
	m := invitation(t)
	assert.Equal(t, `Alice invites you to <b>Ops & "Co"</b> on Flowyard`, m.Subject)
	assert.Contains(t, m.Text, "http://flowyard.test/invitations/abc?x=1&y=2")
	assert.Contains(t, m.Text, "2 January 2030 03:04 UTC")
	assert.Contains(t, m.HTML, "&lt;b&gt;Ops &amp; &#34;Co&#34;&lt;/b&gt;", "the team name is escaped in HTML")
	assert.NotContains(t, m.HTML, "<b>Ops")
	reset, err := flowmail.PasswordResetMessage("bob@example.com", flowmail.PasswordReset{Link: "http://x/reset", Expires: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, "Reset your Flowyard password", reset.Subject)
	assert.Contains(t, reset.Text, "http://x/reset")
}

// TestSignUpMessagesEscapeTheChosenName: the confirmation e-mail greets the name someone typed at sign-up, escaped
// in HTML; the notice to an address that has an account carries no confirmation link.
func TestSignUpMessagesEscapeTheChosenName(t *testing.T) {
	m, err := flowmail.VerificationMessage("eve@example.com", flowmail.Verification{Name: `<img src=x onerror=alert(1)>`,
		Link: "http://flowyard.test/verify-email/fye_abc", Expires: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Equal(t, "Confirm your e-mail address for Flowyard", m.Subject)
	assert.Contains(t, m.Text, "http://flowyard.test/verify-email/fye_abc")
	assert.Contains(t, m.HTML, `href="http://flowyard.test/verify-email/fye_abc"`)
	assert.NotContains(t, m.HTML, "<img", "the name is escaped in HTML")
	exists, err := flowmail.AccountExistsMessage("eve@example.com", flowmail.AccountExists{SignInLink: "http://flowyard.test/signin"})
	require.NoError(t, err)
	assert.Contains(t, exists.Text, "http://flowyard.test/signin")
	assert.NotContains(t, exists.Text+exists.HTML, "verify-email")
}

// TestOutboxDeliversToARealSMTPServer queues a message in a transaction and reads it back from an SMTP server
// that requires a login.
func TestOutboxDeliversToARealSMTPServer(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		srv := mailtest.Start(t, "")
		box := newOutbox(t, st, srv.URL())
		require.NoError(t, st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error { return box.Enqueue(ctx, tx, invitation(t)) }))
		row := onlyRow(t, st)
		assert.NotContains(t, row.Body, "invitations/abc", "the link is stored sealed")

		n, err := box.DeliverDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		got := srv.Wait(t, 1, 5*time.Second)
		assert.Equal(t, "flowyard@example.com", got.From)
		assert.Equal(t, []string{"bob@example.com"}, got.To)
		dec := new(mime.WordDecoder)
		subject, err := dec.DecodeHeader(got.Header("Subject"))
		require.NoError(t, err)
		assert.Equal(t, `Alice invites you to <b>Ops & "Co"</b> on Flowyard`, subject)
		p := parts(t, got.Raw)
		assert.Contains(t, p["text/plain"], "http://flowyard.test/invitations/abc?x=1&y=2")
		assert.Contains(t, p["text/html"], `href="http://flowyard.test/invitations/abc?x=1&amp;y=2"`)
		left, err := st.ListMail(ctx)
		require.NoError(t, err)
		assert.Empty(t, left, "a delivered e-mail leaves the outbox")
	})
}

// TestOutboxKeepsMailWhileTheServerIsDown: the SMTP server is not running at first; the message stays queued
// with the error and a later due time, and is delivered once the server is up and the retry is due.
func TestOutboxKeepsMailWhileTheServerIsDown(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		addr := mailtest.FreeAddr(t)
		box := newOutbox(t, st, "smtp://"+mailtest.User+":"+mailtest.Password+"@"+addr)
		require.NoError(t, st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error { return box.Enqueue(ctx, tx, invitation(t)) }))

		n, err := box.DeliverDue(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)
		row := onlyRow(t, st)
		assert.Equal(t, 1, row.Attempts)
		assert.NotEmpty(t, row.LastError)
		assert.True(t, row.NextAttemptAt.After(time.Now()), "the retry waits a backoff")

		n, err = box.DeliverDue(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "not retried before its time")

		srv := mailtest.Start(t, addr)
		require.NoError(t, st.RetryMailAt(ctx, row.ID, time.Now(), row.LastError)) // the backoff has passed
		n, err = box.DeliverDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		got := srv.Wait(t, 1, 5*time.Second)
		assert.Contains(t, parts(t, got.Raw)["text/plain"], "invitations/abc")
	})
}

// TestOutboxRefusesWrongCredentials: a server refusing the login keeps the message queued.
func TestOutboxRefusesWrongCredentials(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		srv := mailtest.Start(t, "")
		box := newOutbox(t, st, "smtp://"+mailtest.User+":wrong@"+srv.Addr)
		require.NoError(t, st.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error { return box.Enqueue(ctx, tx, invitation(t)) }))
		n, err := box.DeliverDue(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.Empty(t, srv.Messages())
		assert.Equal(t, 1, onlyRow(t, st).Attempts)
	})
}

// TestTwoOutboxesNeverSendOneMessageTwice: two processes delivering the same outbox claim each e-mail once.
func TestTwoOutboxesNeverSendOneMessageTwice(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		srv := mailtest.Start(t, "")
		a, b := newOutbox(t, st, srv.URL()), newOutbox(t, st, srv.URL())
		for range 5 {
			require.NoError(t, a.Enqueue(ctx, st, invitation(t)))
		}
		done := make(chan int, 2)
		for _, box := range []*flowmail.Outbox{a, b} {
			go func() { n, _ := box.DeliverDue(ctx); done <- n }()
		}
		assert.Equal(t, 5, <-done+<-done)
		assert.Len(t, srv.Messages(), 5)
	})
}

func onlyRow(t *testing.T, st *storage.Store) storage.OutgoingMail {
	t.Helper()
	rows, err := st.ListMail(context.Background())
	require.NoError(t, err)
	require.Len(t, rows, 1)
	return rows[0]
}
