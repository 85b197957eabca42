// Package oidctest runs a real OpenID provider on 127.0.0.1 for tests: zitadel/oidc's op package, over a small
// in-memory storage of users, one or more clients, authorization requests and codes. Its sign-in page asks for
// nothing but the address (the users are the test's), and knobs make the tokens it issues wrong in the ways a
// relying party must refuse.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account at the provider.
type User struct {
	Email         string
	EmailVerified bool
	Name          string
}

// Tamper makes the provider issue ID tokens that are wrong in one way; the zero value issues good ones.
type Tamper struct {
	Nonce    string        // the nonce the ID token carries instead of the request's
	Audience []string      // the audience instead of the client (the token re-signed by the provider)
	Lifetime time.Duration // the ID token's lifetime instead of 5 minutes (negative: expired when issued)
	Issuer   string        // the issuer the token endpoint signs as instead of its own
}

// Provider is the running provider.
type Provider struct {
	URL string // the issuer: http://127.0.0.1:<port>

	op       *op.Provider
	key      *rsa.PrivateKey
	keyID    string
	mu       sync.Mutex
	users    map[string]User // by e-mail, the subject too
	clients  map[string]*client
	requests map[string]*authRequest
	codes    map[string]string // code → request ID
	tamper   Tamper
}

// Start runs a provider until the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &Provider{URL: "http://" + ln.Addr().String(), key: key, keyID: randomID(), users: map[string]User{},
		clients: map[string]*client{}, requests: map[string]*authRequest{}, codes: map[string]string{}}
	cfg := &op.Config{CodeMethodS256: true, AuthMethodPost: true}
	if _, err := rand.Read(cfg.CryptoKey[:]); err != nil {
		t.Fatalf("crypto key: %v", err)
	}
	p.op, err = op.NewProvider(cfg, &storage{p}, p.issuerOf, op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", p.login)
	mux.Handle("/", p.readdressed(p.op))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// issuerOf names the issuer of every answer: the provider's own, but for the token endpoint while Tamper.Issuer
// is set.
func (p *Provider) issuerOf(bool) (op.IssuerFromRequest, error) {
	return func(r *http.Request) string {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tamper.Issuer != "" && r.URL.Path == p.op.TokenEndpoint().Relative() {
			return p.tamper.Issuer
		}
		return p.URL
	}, nil
}

// readdressed re-signs the ID token of the token endpoint's answers for Tamper.Audience, while it is set: a
// token the provider issued to another of its clients, as an attacker would slip it in. (The op package always
// adds the requesting client to a token's audience.)
func (p *Provider) readdressed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		audience := p.tampered().Audience
		if audience == nil || r.URL.Path != p.op.TokenEndpoint().Relative() {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var answer map[string]any
		var claims map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		raw, _ := answer["id_token"].(string)
		if _, err := oidc.ParseToken(raw, &claims); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		claims["aud"] = audience
		signer, err := op.SignerFromKey(signingKey{id: p.keyID, key: p.key})
		if err == nil {
			answer["id_token"], err = crypto.Sign(claims, signer)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
}

// AddUser registers (or replaces) an account.
func (p *Provider) AddUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[u.Email] = u
}

// AddClient registers a confidential web client with its redirect URIs.
func (p *Provider) AddClient(id, secret string, redirectURIs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = &client{p: p, id: id, secret: secret, redirectURIs: redirectURIs}
}

// SetTamper makes the next tokens wrong (Tamper{} makes them right again).
func (p *Provider) SetTamper(t Tamper) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = t
}

func (p *Provider) tampered() Tamper {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tamper
}

// login is the provider's sign-in page: a form with the address (the login hint filled in), and its post, which
// signs the address in and sends the browser on to the provider's callback.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("id")
	p.mu.Lock()
	req, ok := p.requests[id]
	p.mu.Unlock()
	if !ok {
		http.Error(w, "unknown authorization request", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Test provider</title><h1>Test provider</h1><form method="post" action="/login">`+
			`<input type="hidden" name="id" value="%s"><label>Address <input name="email" value="%s"></label>`+
			`<button type="submit">Sign in at the provider</button></form>`, html.EscapeString(id), html.EscapeString(req.LoginHint))
		return
	}
	email := r.FormValue("email")
	p.mu.Lock()
	_, known := p.users[email]
	if known {
		req.subject, req.done, req.authTime = email, true, time.Now()
	}
	p.mu.Unlock()
	if !known {
		http.Error(w, "no such user at the provider", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, p.op.AuthorizationEndpoint().Absolute(p.URL)+"/callback?id="+url.QueryEscape(id), http.StatusFound)
}

// SignIn walks a browser's single sign-on from startURL (the relying party's start) through the provider's
// sign-in page as email, and returns the relying party's answer to the callback, not followed. before, when
// given, may change the callback URL first (a forged state).
func (p *Provider) SignIn(t testing.TB, browser *http.Client, startURL, email string, before func(*url.URL)) *http.Response {
	t.Helper()
	noFollow := *browser
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	next, _ := url.Parse(startURL)
	for range 10 {
		if strings.HasPrefix(next.String(), p.URL+"/login") {
			id := next.Query().Get("id")
			next = location(t, post(t, &noFollow, p.URL+"/login", url.Values{"id": {id}, "email": {email}}))
			continue
		}
		if !strings.HasPrefix(next.String(), p.URL) && next.Query().Has("code") && before != nil {
			before(next)
		}
		res, err := noFollow.Get(next.String())
		if err != nil {
			t.Fatalf("GET %s: %v", next, err)
		}
		if !strings.HasPrefix(next.String(), p.URL) && next.Query().Has("state") || res.StatusCode/100 != 3 {
			return res
		}
		res.Body.Close()
		next = location(t, res)
	}
	t.Fatalf("the sign-in from %s did not end", startURL)
	return nil
}

func post(t testing.TB, c *http.Client, to string, form url.Values) *http.Response {
	t.Helper()
	res, err := c.PostForm(to, form)
	if err != nil {
		t.Fatalf("POST %s: %v", to, err)
	}
	res.Body.Close()
	return res
}

func location(t testing.TB, res *http.Response) *url.URL {
	t.Helper()
	loc, err := res.Location()
	if err != nil {
		t.Fatalf("%s answered %d without a redirect", res.Request.URL, res.StatusCode)
	}
	return loc
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// authRequest is an authorization request the provider holds until its code is exchanged.
type authRequest struct {
	oidc.AuthRequest
	p        *Provider
	id       string
	subject  string
	done     bool
	authTime time.Time
}

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAMR() []string                   { return []string{"pwd"} }
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.ClientID }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}

func (a *authRequest) GetNonce() string {
	if n := a.p.tampered().Nonce; n != "" {
		return n
	}
	return a.Nonce
}

func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }

// client is a confidential web client of the provider.
type client struct {
	p            *Provider
	id, secret   string
	redirectURIs []string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType                                 { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string                                    { return c.p.URL + "/login?id=" + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType                          { return op.AccessTokenTypeBearer }
func (c *client) DevMode() bool                                                { return true } // http redirect URIs on loopback
func (c *client) IsScopeAllowed(string) bool                                   { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool                         { return true } // the address in the ID token itself
func (c *client) ClockSkew() time.Duration                                     { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string     { return keep }
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string { return keep }

func (c *client) IDTokenLifetime() time.Duration {
	if l := c.p.tampered().Lifetime; l != 0 {
		return l
	}
	return 5 * time.Minute
}

func keep(scopes []string) []string { return scopes }

// storage is op.Storage over the provider's maps: what the authorization code flow needs, and refusals for the
// rest.
type storage struct{ p *Provider }

var errUnsupported = errors.New("not supported by the test provider")

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	a := &authRequest{AuthRequest: *req, p: s.p, id: randomID()}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.requests[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if a, ok := s.p.requests[id]; ok {
		return a, nil
	}
	return nil, errors.New("no such authorization request")
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	id := s.p.codes[code]
	s.p.mu.Unlock()
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once a code is exchanged: the code works once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	delete(s.p.requests, id)
	for code, of := range s.p.codes {
		if of == id {
			delete(s.p.codes, code)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return randomID(), time.Now().Add(5 * time.Minute), nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errUnsupported
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrUnsupportedGrantType()
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{id: s.p.keyID, key: s.p.key}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{id: s.p.keyID, key: &s.p.key.PublicKey}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if c, ok := s.p.clients[id]; ok {
		return c, nil
	}
	return nil, errors.New("no such client")
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.GetClientByClientID(ctx, id)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(c.(*client).secret), []byte(secret)) != 1 {
		return errors.New("wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes puts the user's address and name in the ID token (and the userinfo answer).
func (s *storage) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, subject, _ string, scopes []string) error {
	s.p.mu.Lock()
	u, ok := s.p.users[subject]
	s.p.mu.Unlock()
	if !ok {
		return errors.New("no such user")
	}
	info.Subject = subject
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.AppendClaims("email_verified", u.EmailVerified) // false is said, not left out
		case oidc.ScopeProfile:
			info.Name = u.Name
		}
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	return s.SetUserinfoFromScopes(ctx, info, subject, "", []string{oidc.ScopeEmail, oidc.ScopeProfile})
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errUnsupported
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}

func (s *storage) Health(context.Context) error { return nil }

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	key *rsa.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }
