// Package mailtest runs a real SMTP server on loopback for tests (go-smtp as a server library), requiring the
// PLAIN login it was given, and keeps every message it accepts so a test can read what Flowyard sent.
package mailtest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// User and Password are the credentials the server accepts.
const (
	User     = "flowyard"
	Password = "s3cret-smtp-pass"
)

// Received is one accepted message.
type Received struct {
	From string
	To   []string
	Raw  string
}

// Server is a running SMTP server.
type Server struct {
	Addr string // host:port it listens (or will listen) on
	srv  *smtp.Server
	mu   sync.Mutex
	msgs []Received
	got  chan struct{}
}

// FreeAddr returns a loopback address nothing listens on, for a server started later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Start serves SMTP on addr ("" for any free loopback port) until the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("smtp listen: %v", err)
	}
	s := &Server{Addr: l.Addr().String(), got: make(chan struct{}, 100)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{server: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true // loopback only; TLS is the client's policy to test elsewhere
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// URL is the smtp:// URL Flowyard is configured with to reach this server.
func (s *Server) URL() string { return "smtp://" + User + ":" + Password + "@" + s.Addr }

// Messages returns what the server accepted so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait returns the n-th message (from 1), waiting up to timeout for it.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) Received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs[n-1]
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("the SMTP server got %d messages, not %d, within %s", len(s.Messages()), n, timeout)
		}
	}
}

// Header returns a header of the message.
func (r Received) Header(name string) string {
	m, err := mail.ReadMessage(strings.NewReader(r.Raw))
	if err != nil {
		return ""
	}
	return m.Header.Get(name)
}

type session struct {
	server *Server
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != User || pass != Password {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	s.server.mu.Lock()
	s.server.msgs = append(s.server.msgs, Received{From: s.from, To: s.to, Raw: b.String()})
	s.server.mu.Unlock()
	s.server.got <- struct{}{}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
