package mail

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Sender delivers one message; SMTP in production, anything in tests of other parts.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// SMTP sends over an SMTP server given as smtp://user:pass@host:port (STARTTLS when the server offers it) or
// smtps://… (TLS from the first byte).
type SMTP struct {
	client *gomail.Client
	from   string
}

// sendTimeout bounds one delivery attempt, connection included.
const sendTimeout = 30 * time.Second

// NewSMTP builds a sender from the configured URL and From address (checked by config).
func NewSMTP(smtpURL, from string) (*SMTP, error) {
	u, err := url.Parse(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	host, portText, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, portText = u.Host, defaultPort(u.Scheme)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("smtp url: port %q", portText)
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(sendTimeout)}
	if u.Scheme == "smtps" {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		// PLAIN, which every submission server offers; go-mail sends it only over TLS (or to this machine), so
		// the password never crosses a network in clear text.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, err
	}
	return &SMTP{client: c, from: from}, nil
}

func defaultPort(scheme string) string {
	if scheme == "smtps" {
		return "465"
	}
	return "587"
}

// Send delivers one message as plain text with an HTML alternative.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return s.client.DialAndSendWithContext(ctx, msg)
}
