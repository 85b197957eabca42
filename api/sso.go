package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Single sign-on with OpenID Connect, configured per e-mail domain by platform admins. This file holds the
// configurations and the providers they name; ssosignin.go the sign-in itself.

const ssoConfigsPath = "/api/v1/sso-configurations"

// providerTimeout bounds every call to an OpenID provider (discovery, keys, the code exchange).
const providerTimeout = 10 * time.Second

// providerTTL is how long a provider's discovery document is reused before it is fetched again; its signing keys
// are fetched again sooner whenever a token names a key not yet seen.
const providerTTL = time.Hour

type ssoConfigRequest struct {
	Domain       string `json:"domain"`
	IssuerURL    string `json:"issuerUrl"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

type ssoConfigPatch struct {
	Domain       *string `json:"domain,omitempty"`
	IssuerURL    *string `json:"issuerUrl,omitempty"`
	ClientID     *string `json:"clientId,omitempty"`
	ClientSecret *string `json:"clientSecret,omitempty"`
}

type ssoConfigJSON struct {
	ID        string `json:"id"`
	Domain    string `json:"domain"`
	IssuerURL string `json:"issuerUrl"`
	ClientID  string `json:"clientId"`
	// ClientSecretSet says a secret is stored; the secret itself is never shown again.
	ClientSecretSet bool      `json:"clientSecretSet"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

func ssoConfigView(cfg *storage.SSOConfig) ssoConfigJSON {
	return ssoConfigJSON{ID: cfg.ID, Domain: cfg.Domain, IssuerURL: cfg.IssuerURL, ClientID: cfg.ClientID,
		ClientSecretSet: cfg.ClientSecret != "", CreatedAt: cfg.CreatedAt, UpdatedAt: cfg.UpdatedAt}
}

func (s *Server) registerSSOConfigs() {
	item := ssoConfigsPath + "/:ssoConfigurationId"
	s.route(routeDoc{Method: "GET", Path: ssoConfigsPath, Summary: "List the single sign-on configurations, one per e-mail domain " +
		"(platform admins); each names the redirect URI to register at the provider.", Tag: "sso"}, s.listSSOConfigs)
	s.route(routeDoc{Method: "POST", Path: ssoConfigsPath, Summary: "Send the users of an e-mail domain to an OpenID provider to sign in " +
		"(platform admins). The provider's discovery document is fetched first: an issuer that does not answer or does not " +
		"match answers 422.", Tag: "sso", Body: ssoConfigRequest{}, Status: 201}, s.createSSOConfig)
	s.route(routeDoc{Method: "GET", Path: item, Summary: "One single sign-on configuration (platform admins).", Tag: "sso"}, s.getSSOConfig)
	s.route(routeDoc{Method: "PATCH", Path: item, Summary: "Change a single sign-on configuration (platform admins); a secret left out " +
		"stays. The issuer is checked again.", Tag: "sso", Body: ssoConfigPatch{}}, s.updateSSOConfig)
	s.route(routeDoc{Method: "DELETE", Path: item, Summary: "Remove a single sign-on configuration (platform admins): the domain's " +
		"users sign in with a password again.", Tag: "sso", Status: 204}, s.deleteSSOConfig)
}

// ssoConfigWithRedirect is a configuration as admins see it, with the redirect URI they register at the provider.
type ssoConfigWithRedirect struct {
	ssoConfigJSON
	RedirectURI string `json:"redirectUri"`
}

func (s *Server) ssoConfigAnswer(c *fiber.Ctx, cfg *storage.SSOConfig) ssoConfigWithRedirect {
	return ssoConfigWithRedirect{ssoConfigJSON: ssoConfigView(cfg), RedirectURI: s.ssoRedirectURI(c)}
}

func (s *Server) listSSOConfigs(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListSSOConfigs(c.UserContext(), p)
	if err != nil {
		return err
	}
	return list(c, rows, next, func(cfg *storage.SSOConfig) ssoConfigWithRedirect { return s.ssoConfigAnswer(c, cfg) })
}

func (s *Server) getSSOConfig(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	cfg, err := s.store.GetSSOConfig(c.UserContext(), c.Params("ssoConfigurationId"))
	if err != nil {
		return err
	}
	return c.JSON(s.ssoConfigAnswer(c, cfg))
}

func (s *Server) createSSOConfig(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	if s.sealer == nil {
		return errNoSealer
	}
	var req ssoConfigRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	cfg := &storage.SSOConfig{ID: domain.NewID()}
	if err := s.applySSOConfig(c.UserContext(), cfg, req, true); err != nil {
		return err
	}
	if err := s.saveSSOConfig(c, who, cfg, "sso.created", (*storage.Store).InsertSSOConfig); err != nil {
		return err
	}
	return created(c, s.ssoConfigAnswer(c, cfg))
}

func (s *Server) updateSSOConfig(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	var patch ssoConfigPatch
	if err := s.decode(c, &patch); err != nil {
		return err
	}
	cfg, err := s.store.GetSSOConfig(c.UserContext(), c.Params("ssoConfigurationId"))
	if err != nil {
		return err
	}
	if s.sealer == nil {
		return errNoSealer
	}
	req := ssoConfigRequest{Domain: deref(patch.Domain, cfg.Domain), IssuerURL: deref(patch.IssuerURL, cfg.IssuerURL),
		ClientID: deref(patch.ClientID, cfg.ClientID), ClientSecret: deref(patch.ClientSecret, "")}
	if err := s.applySSOConfig(c.UserContext(), cfg, req, patch.ClientSecret != nil); err != nil {
		return err
	}
	if err := s.saveSSOConfig(c, who, cfg, "sso.updated", (*storage.Store).UpdateSSOConfig); err != nil {
		return err
	}
	return c.JSON(s.ssoConfigAnswer(c, cfg))
}

func (s *Server) deleteSSOConfig(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	id := c.Params("ssoConfigurationId")
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteSSOConfig(ctx, id); err != nil {
			return err
		}
		return audit(c, tx, who, "", "sso.deleted", "sso_configuration", id, nil)
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// saveSSOConfig writes a configuration (insert or update) and its audit entry in one transaction.
func (s *Server) saveSSOConfig(c *fiber.Ctx, who *caller, cfg *storage.SSOConfig, event string,
	write func(*storage.Store, context.Context, *storage.SSOConfig) error) error {
	return s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := write(tx, ctx, cfg); err != nil {
			return ssoDomainTaken(err)
		}
		return audit(c, tx, who, "", event, "sso_configuration", cfg.ID, map[string]any{"domain": cfg.Domain, "issuerUrl": cfg.IssuerURL})
	})
}

func deref(p *string, fallback string) string {
	if p == nil {
		return fallback
	}
	return *p
}

var errNoSealer = domain.Unavailable("secrets_unavailable", "The platform has no master key to seal secrets with.")

// ssoDomainTaken names the clash of a domain configured twice.
func ssoDomainTaken(err error) error {
	if domain.IsKind(err, domain.KindConflict) {
		return &domain.Error{Kind: domain.KindConflict, Code: "sso_domain_taken", Message: "That e-mail domain has a single sign-on configuration already.",
			Validations: []domain.FieldError{{Field: "domain", Detail: "has a configuration already"}}}
	}
	return err
}

// applySSOConfig validates a configuration's fields, checks that the issuer answers as an OpenID provider, and
// copies them into cfg (sealing a new secret when withSecret). Nothing is stored here.
func (s *Server) applySSOConfig(ctx context.Context, cfg *storage.SSOConfig, req ssoConfigRequest, withSecret bool) error {
	dom, domErr := validateEmailDomain("domain", req.Domain)
	issuer, issuerErr := validateIssuerURL("issuerUrl", req.IssuerURL)
	var secretErr *domain.FieldError
	if withSecret && strings.TrimSpace(req.ClientSecret) == "" {
		secretErr = &domain.FieldError{Field: "clientSecret", Detail: "must not be empty"}
	}
	if err := domain.Collect(domErr, issuerErr, validateClientID(req.ClientID), secretErr); err != nil {
		return err
	}
	if _, err := s.providers.discover(ctx, issuer); err != nil {
		return err
	}
	cfg.Domain, cfg.IssuerURL, cfg.ClientID = dom, issuer, strings.TrimSpace(req.ClientID)
	if withSecret {
		cfg.ClientSecret = s.sealer.Seal(req.ClientSecret)
	}
	return nil
}

// validateEmailDomain accepts what follows the @ of an e-mail address, in lower case.
func validateEmailDomain(field, s string) (string, *domain.FieldError) {
	s = strings.ToLower(strings.TrimSpace(s))
	if _, err := domain.ValidateEmail(field, "user@"+s); err != nil || s == "" || strings.ContainsAny(s, "@ ") {
		return s, &domain.FieldError{Field: field, Detail: "must be an e-mail domain, such as example.com"}
	}
	return s, nil
}

// validateIssuerURL accepts an https URL, or an http one on this machine (a provider under test or in
// development): an ID token's issuer must be one the browser and the platform reach without anyone between them
// reading or changing what they say.
func validateIssuerURL(field, s string) (string, *domain.FieldError) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	bad := &domain.FieldError{Field: field, Detail: "must be the provider's issuer, an https URL such as https://login.example.com"}
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(s) > 2048 {
		return s, bad
	}
	if u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname()) {
		return s, nil
	}
	return s, bad
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateClientID(s string) *domain.FieldError {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 512 || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return &domain.FieldError{Field: "clientId", Detail: "must be the client ID the provider gave Flowyard"}
	}
	return nil
}

// providers caches OpenID providers' discovery documents (and so their key sets) by issuer. It is a cache: every
// replica builds its own, and a sign-in needs nothing another replica holds.
type providers struct {
	client *http.Client
	mu     sync.Mutex
	byURL  map[string]cachedProvider
}

type cachedProvider struct {
	p       *oidc.Provider
	fetched time.Time
}

func newProviders() *providers {
	return &providers{client: &http.Client{Timeout: providerTimeout}, byURL: map[string]cachedProvider{}}
}

// context carries the providers' HTTP client to go-oidc and x/oauth2.
func (ps *providers) context(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, ps.client)
}

// get returns the provider of an issuer, from the cache while it is fresh.
func (ps *providers) get(ctx context.Context, issuer string) (*oidc.Provider, error) {
	ps.mu.Lock()
	cached, ok := ps.byURL[issuer]
	ps.mu.Unlock()
	if ok && time.Since(cached.fetched) < providerTTL {
		return cached.p, nil
	}
	return ps.discover(ctx, issuer)
}

// discover fetches an issuer's discovery document now and caches the provider. An issuer that does not answer,
// answers something else than a discovery document, or names another issuer answers 422 with what went wrong.
func (ps *providers) discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ps.context(ctx), issuer)
	var mismatch *oidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return nil, &domain.Error{Kind: domain.KindUnprocessable, Code: "sso_issuer_mismatch",
			Message: "The provider's discovery document names another issuer; use exactly the issuer it names.", Detail: err.Error(),
			Validations: []domain.FieldError{{Field: "issuerUrl", Detail: "the provider's issuer is " + mismatch.Discovered}}}
	case err != nil:
		return nil, &domain.Error{Kind: domain.KindUnprocessable, Code: "sso_issuer_unreachable",
			Message: "The issuer's discovery document (/.well-known/openid-configuration) could not be read; check the URL and that Flowyard can reach the provider.",
			Detail:  err.Error(), Validations: []domain.FieldError{{Field: "issuerUrl", Detail: "did not answer as an OpenID provider"}}}
	}
	if p.Endpoint().AuthURL == "" || p.Endpoint().TokenURL == "" {
		return nil, domain.Unprocessable("sso_issuer_unreachable", "The provider's discovery document names no authorization or token endpoint.",
			domain.FieldError{Field: "issuerUrl", Detail: "is not an OpenID provider for the authorization code flow"})
	}
	ps.mu.Lock()
	ps.byURL[issuer] = cachedProvider{p: p, fetched: time.Now()}
	ps.mu.Unlock()
	return p, nil
}
