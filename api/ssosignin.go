package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Signing in through an OpenID provider: the authorization code flow with PKCE, a state and a nonce. What the
// callback needs to check (state, nonce, PKCE verifier, which configuration) travels in a cookie sealed with
// the platform's key, so the replica that gets the callback need not be the one that sent the browser away.

const (
	ssoPathPrefix  = "/api/v1/auth/sso"
	ssoCookie      = "flowyard_sso"
	ssoAttemptTTL  = 10 * time.Minute // how long a browser may spend at its provider
	ssoCookieUsage = "sso-sign-in"    // sealed into the cookie, so no other sealed value can pass for one
)

// ssoAttempt is a sign-in sent to a provider and not back yet.
type ssoAttempt struct {
	Usage       string    `json:"usage"`
	ConfigID    string    `json:"configId"`
	State       string    `json:"state"`
	Nonce       string    `json:"nonce"`
	Verifier    string    `json:"verifier"`
	RedirectURI string    `json:"redirectUri"`
	Next        string    `json:"next"`
	Expires     time.Time `json:"expires"`
}

func (s *Server) registerSSOSignIn() {
	s.route(routeDoc{Method: "GET", Path: ssoPathPrefix + "/lookup", Summary: "Whether an e-mail address signs in through single " +
		"sign-on (?email=); if so, startUrl begins it. Tells about the address's domain only, never whether an account has it.",
		Tag: "auth", Public: true}, s.lookupSSO)
	s.route(routeDoc{Method: "GET", Path: ssoPathPrefix + "/start", Summary: "Begin a single sign-on (?email=, optional ?next= path to " +
		"land on): redirects the browser to the domain's OpenID provider.", Tag: "auth", Public: true, Status: 303}, s.startSSO)
	s.route(routeDoc{Method: "GET", Path: ssoPathPrefix + "/callback", Summary: "Where the OpenID provider sends the browser back: " +
		"checks state, PKCE, the ID token (issuer, audience, expiry, nonce) and a verified address of the domain, creates the " +
		"account on its first sign-in, signs in and redirects. A browser is redirected to /signin?sso_error=<code> on failure.",
		Tag: "auth", Public: true, Status: 303}, s.ssoCallback)
}

var errSSONotConfigured = &domain.Error{Kind: domain.KindNotFound, Code: "sso_not_configured",
	Message: "That e-mail domain does not sign in through single sign-on; sign in with your password."}

// ssoConfigForEmail returns the single sign-on configuration of an address's domain, or not found.
func (s *Server) ssoConfigForEmail(ctx context.Context, email string) (*storage.SSOConfig, error) {
	at := strings.LastIndex(email, "@")
	if at < 0 || !domain.Storable(email) {
		return nil, errSSONotConfigured
	}
	cfg, err := s.store.GetSSOConfigByDomain(ctx, email[at+1:])
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, errSSONotConfigured
	}
	return cfg, err
}

// ssoRefusesPassword keeps the users of a single sign-on domain to their provider. Only a platform admin with
// the right password passes (break-glass, when the provider is down or misconfigured); every other attempt at
// such an address gets the same answer, so it tells neither whether the password was right nor who is an admin.
func (s *Server) ssoRefusesPassword(ctx context.Context, email string, u *storage.User, passwordRight bool) error {
	cfg, err := s.ssoConfigForEmail(ctx, email)
	if errors.Is(err, errSSONotConfigured) {
		return nil
	}
	if err != nil {
		return err
	}
	if passwordRight && u != nil && u.Admin {
		return nil
	}
	return &domain.Error{Kind: domain.KindUnauthorized, Code: "sso_required",
		Message: "Addresses of " + cfg.Domain + " sign in through their organisation's single sign-on, not with a password.",
		Detail:  "Start at GET " + ssoPathPrefix + "/start?email=<address>; platform admins may still sign in with their password."}
}

func (s *Server) lookupSSO(c *fiber.Ctx) error {
	email, emailErr := domain.ValidateEmail("email", c.Query("email"))
	if err := domain.Collect(emailErr); err != nil {
		return err
	}
	cfg, err := s.ssoConfigForEmail(c.UserContext(), email)
	if errors.Is(err, errSSONotConfigured) {
		return c.JSON(fiber.Map{"sso": false})
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"sso": true, "domain": cfg.Domain, "startUrl": ssoPathPrefix + "/start?email=" + url.QueryEscape(email)})
}

func (s *Server) startSSO(c *fiber.Ctx) error {
	return s.answerBrowser(c, s.redirectToProvider(c))
}

// redirectToProvider sends the browser to the provider of the address's domain with a fresh state, nonce and
// PKCE challenge, and keeps them in the sealed cookie.
func (s *Server) redirectToProvider(c *fiber.Ctx) error {
	if s.sealer == nil {
		return errNoSealer
	}
	email, emailErr := domain.ValidateEmail("email", c.Query("email"))
	if err := domain.Collect(emailErr); err != nil {
		return err
	}
	cfg, err := s.ssoConfigForEmail(c.UserContext(), email)
	if err != nil {
		return err
	}
	provider, err := s.providerOf(c.UserContext(), cfg)
	if err != nil {
		return err
	}
	attempt := ssoAttempt{Usage: ssoCookieUsage, ConfigID: cfg.ID, State: domain.NewSecret(32), Nonce: domain.NewSecret(32),
		Verifier: oauth2.GenerateVerifier(), RedirectURI: s.ssoRedirectURI(c), Next: localPath(c.Query("next")), Expires: time.Now().Add(ssoAttemptTTL)}
	oc, err := s.oauthConfig(cfg, provider, attempt.RedirectURI)
	if err != nil {
		return err
	}
	sealed, err := json.Marshal(attempt)
	if err != nil {
		return err
	}
	s.setSSOCookie(c, s.sealer.Seal(string(sealed)), attempt.Expires)
	return c.Redirect(oc.AuthCodeURL(attempt.State, oidc.Nonce(attempt.Nonce), oauth2.S256ChallengeOption(attempt.Verifier),
		oauth2.SetAuthURLParam("login_hint", email)), fiber.StatusSeeOther)
}

func (s *Server) setSSOCookie(c *fiber.Ctx, value string, expires time.Time) {
	c.Cookie(&fiber.Cookie{Name: ssoCookie, Value: value, Path: ssoPathPrefix, Expires: expires, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: s.cfg.SecureCookies || c.Protocol() == "https"})
}

// ssoRedirectURI is where providers send browsers back: the address admins register at their provider.
func (s *Server) ssoRedirectURI(c *fiber.Ctx) string {
	base := s.cfg.PublicURL
	if base == "" {
		base = c.BaseURL()
	}
	return strings.TrimSuffix(base, "/") + ssoPathPrefix + "/callback"
}

// localPath keeps a path on this site to land on after signing in ("" for anything else), so the sign-in
// cannot be made to end on another site.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return ""
	}
	return next
}

var errProviderUnavailable = domain.Unavailable("sso_provider_unavailable",
	"Your organisation's sign-in provider does not answer; try again shortly, or ask a platform admin.")

// providerOf returns the provider of a configuration. A provider that does not answer now is a 503: the
// configuration was checked when saved.
func (s *Server) providerOf(ctx context.Context, cfg *storage.SSOConfig) (*oidc.Provider, error) {
	p, err := s.providers.get(ctx, cfg.IssuerURL)
	if err != nil {
		e := *errProviderUnavailable
		if de, ok := domain.AsError(err); ok {
			e.Detail = de.Detail
		}
		return nil, &e
	}
	return p, nil
}

func (s *Server) oauthConfig(cfg *storage.SSOConfig, p *oidc.Provider, redirectURI string) (*oauth2.Config, error) {
	secret, err := s.sealer.Open(cfg.ClientSecret)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirectURI,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}, nil
}

func (s *Server) ssoCallback(c *fiber.Ctx) error {
	err := s.finishSSO(c)
	s.setSSOCookie(c, "", time.Unix(0, 0)) // an attempt is checked once, whatever came of it
	return s.answerBrowser(c, err)
}

// answerBrowser answers a browser's error by sending it back to the sign-in page, which says what went wrong;
// other clients get the envelope.
func (s *Server) answerBrowser(c *fiber.Ctx, err error) error {
	if err == nil || c.Accepts(fiber.MIMEApplicationJSON, fiber.MIMETextHTML) != fiber.MIMETextHTML {
		return err
	}
	status, env := s.toEnvelope(err)
	if status >= 500 {
		rid, _ := c.Locals("requestid").(string)
		s.log.Error("single sign-on failed", "requestId", rid, "err", err)
	}
	return c.Redirect("/signin?sso_error="+url.QueryEscape(env.Code), fiber.StatusSeeOther)
}

func ssoError(kind domain.Kind, code, message string, cause error) *domain.Error {
	e := &domain.Error{Kind: kind, Code: code, Message: message}
	if cause != nil {
		e.Detail = cause.Error()
	}
	return e
}

var errSSOState = &domain.Error{Kind: domain.KindInvalid, Code: "sso_state_invalid",
	Message: "This sign-in did not start here, was already used, or took longer than 10 minutes; start it again."}

// finishSSO checks what the provider sent back and signs the user in.
func (s *Server) finishSSO(c *fiber.Ctx) error {
	attempt, err := s.openSSOAttempt(c)
	if err != nil {
		return err
	}
	if reason := c.Query("error"); reason != "" {
		return ssoError(domain.KindUnauthorized, "sso_denied", "Your organisation's sign-in provider did not sign you in.",
			errors.New(reason+": "+c.Query("error_description")))
	}
	cfg, err := s.store.GetSSOConfig(c.UserContext(), attempt.ConfigID)
	if domain.IsKind(err, domain.KindNotFound) {
		return errSSONotConfigured
	}
	if err != nil {
		return err
	}
	claims, err := s.verifiedClaims(c.UserContext(), cfg, attempt, c.Query("code"))
	if err != nil {
		return err
	}
	u, err := s.ssoUser(c, cfg, claims)
	if err != nil {
		return err
	}
	if err := s.startSession(c, u); err != nil {
		return err
	}
	next := attempt.Next
	if next == "" {
		next = "/"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// openSSOAttempt reads the sealed cookie and checks the state the provider sent back against it.
func (s *Server) openSSOAttempt(c *fiber.Ctx) (*ssoAttempt, error) {
	if s.sealer == nil {
		return nil, errNoSealer
	}
	plain, err := s.sealer.Open(c.Cookies(ssoCookie))
	if err != nil {
		return nil, errSSOState
	}
	var attempt ssoAttempt
	if json.Unmarshal([]byte(plain), &attempt) != nil || attempt.Usage != ssoCookieUsage || time.Now().After(attempt.Expires) ||
		subtle.ConstantTimeCompare([]byte(attempt.State), []byte(c.Query("state"))) != 1 {
		return nil, errSSOState
	}
	return &attempt, nil
}

// ssoClaims are the ID token's claims Flowyard reads.
type ssoClaims struct {
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"` // a boolean, or "true" from some providers
	Name          string `json:"name"`
}

// verifiedClaims exchanges the code (with the PKCE verifier) and verifies the ID token: signature, issuer,
// audience and expiry (go-oidc), then the nonce, a verified address, and that the address is of the
// configuration's domain, so a provider speaks only for its own domain.
func (s *Server) verifiedClaims(ctx context.Context, cfg *storage.SSOConfig, attempt *ssoAttempt, code string) (*ssoClaims, error) {
	provider, err := s.providerOf(ctx, cfg)
	if err != nil {
		return nil, err
	}
	oc, err := s.oauthConfig(cfg, provider, attempt.RedirectURI)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.providers.context(ctx), providerTimeout)
	defer cancel()
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(attempt.Verifier))
	if err != nil {
		return nil, ssoError(domain.KindUnauthorized, "sso_exchange_failed", "The provider did not accept the sign-in it sent back.", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return nil, ssoError(domain.KindUnauthorized, "sso_token_expired", "The provider's ID token has expired; sign in again.", err)
	case err != nil:
		return nil, ssoError(domain.KindUnauthorized, "sso_token_invalid", "The provider's ID token is not valid for Flowyard.", err)
	case subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(attempt.Nonce)) != 1:
		return nil, ssoError(domain.KindUnauthorized, "sso_nonce_mismatch", "The provider's ID token was not issued for this sign-in.", nil)
	}
	var claims ssoClaims
	if err := idToken.Claims(&claims); err != nil {
		return nil, ssoError(domain.KindUnauthorized, "sso_token_invalid", "The provider's ID token could not be read.", err)
	}
	return &claims, checkSSOAddress(cfg, &claims)
}

// checkSSOAddress accepts a verified address of the configuration's domain, normalised in claims.Email.
func checkSSOAddress(cfg *storage.SSOConfig, claims *ssoClaims) error {
	if claims.EmailVerified != true && claims.EmailVerified != "true" {
		return ssoError(domain.KindForbidden, "sso_email_unverified", "Your provider has not verified your e-mail address, so Flowyard cannot sign you in with it.", nil)
	}
	email, err := domain.ValidateEmail("email", claims.Email)
	if err != nil || !strings.HasSuffix(email, "@"+cfg.Domain) || !domain.Storable(email) {
		return ssoError(domain.KindForbidden, "sso_email_other_domain", "The provider signed you in with an address outside "+cfg.Domain+".", nil)
	}
	claims.Email = email
	return nil
}

// ssoUser returns the account of the signed-in address, creating it (without a password) on its first sign-in.
func (s *Server) ssoUser(c *fiber.Ctx, cfg *storage.SSOConfig, claims *ssoClaims) (*storage.User, error) {
	ctx := c.UserContext()
	u, err := s.store.GetUserByEmail(ctx, claims.Email)
	if !domain.IsKind(err, domain.KindNotFound) {
		return u, err
	}
	name := strings.TrimSpace(claims.Name)
	if domain.ValidateName("name", name) != nil {
		name = claims.Email
	}
	u = &storage.User{ID: domain.NewID(), Email: claims.Email, Name: name}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.InsertUser(ctx, u); err != nil {
			return err
		}
		return audit(c, tx, &caller{user: u}, "", "user.created", "user", u.ID, map[string]any{"via": "sso", "domain": cfg.Domain})
	})
	if domain.IsKind(err, domain.KindConflict) { // a first sign-in in another tab made it meanwhile
		return s.store.GetUserByEmail(ctx, claims.Email)
	}
	return u, err
}
