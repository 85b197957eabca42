// Package apitest runs the API over real HTTP on a fresh store, for tests.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// Env is a running API and its store.
type Env struct {
	URL    string
	Store  *storage.Store
	Server *api.Server
}

// Start serves the API on 127.0.0.1 with a fresh, seeded store of the dialect.
func Start(t testing.TB, dialect string, mutate ...func(*api.Deps)) *Env {
	t.Helper()
	st := storagetest.New(t, dialect)
	if err := st.SeedDefaults(context.Background()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return Serve(t, st, mutate...)
}

// Serve serves the API on 127.0.0.1 over a store (several Serve calls on stores of one database are replicas).
// Its public URL is its own address unless mutate sets another.
func Serve(t testing.TB, st *storage.Store, mutate ...func(*api.Deps)) *Env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	deps := api.Deps{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: api.Config{BodyLimit: 1 << 20, PublicURL: "http://" + ln.Addr().String()}}
	for _, m := range mutate {
		m(&deps)
	}
	srv := api.New(deps)
	go func() { _ = srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &Env{URL: "http://" + ln.Addr().String(), Store: st, Server: srv}
}

// Client is one caller: a cookie jar and optionally a bearer token and headers of its own.
type Client struct {
	t      testing.TB
	base   string
	http   *http.Client
	Bearer string
	Header http.Header // sent with every request (X-Forwarded-For, say), when set
}

// Client returns a new anonymous caller.
func (e *Env) Client(t testing.TB) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{t: t, base: e.URL, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// Jar is the caller's cookie jar, as a browser signed in at the API holds it.
func (c *Client) Jar() http.CookieJar { return c.http.Jar }

// HTTP is the caller's HTTP client (its cookie jar included), for requests that are not JSON calls: a browser's
// redirects, say.
func (c *Client) HTTP() *http.Client { return c.http }

// Response is a decoded answer.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

// Do sends a request with a JSON body (nil for none, a string for raw bytes).
func (c *Client) Do(method, path string, body any) *Response {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	default:
		buf, _ := json.Marshal(b)
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	for k, vs := range c.Header {
		req.Header[k] = append(req.Header[k], vs...)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := &Response{Status: resp.StatusCode, Header: resp.Header}
	if isEventStream(resp) {
		return out // an event stream never ends: its status and headers are the answer (see Stream)
	}
	raw, _ := io.ReadAll(resp.Body)
	out.Raw = raw
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// Must sends a request and fails the test unless the status is want.
func (c *Client) Must(want int, method, path string, body any) *Response {
	c.t.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r
}

// Login signs the client in.
func (c *Client) Login(email, password string) {
	c.t.Helper()
	c.Must(http.StatusOK, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password})
}

// String reads a string field of a JSON object.
func (r *Response) String(key string) string {
	s, _ := r.Body[key].(string)
	return s
}
