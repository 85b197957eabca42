package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type createTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Scopes    []string   `json:"scopes,omitempty"`
}

func (s *Server) registerAuth() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/login", Summary: "Sign in with e-mail and password; sets the session cookie, or answers 202 secondFactorRequired when two-factor sign-in is on (then POST " + secondFactorPath + ").", Tag: "auth", Public: true, Body: loginRequest{}}, s.login)
	s.route(routeDoc{Method: "POST", Path: logoutPath, Summary: "Sign out.", Tag: "auth", Public: true, Status: 204}, s.logout)
	s.route(routeDoc{Method: "GET", Path: currentUserPath, Summary: "The caller.", Tag: "auth"}, s.getCurrentUser)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/user/tokens", Summary: "The caller's personal access tokens.", Tag: "auth"}, s.listUserTokens)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/user/tokens", Summary: "Create a personal access token (shown once).", Tag: "auth", Body: createTokenRequest{}, Status: 201}, s.createUserToken)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/user/tokens/:tokenId", Summary: "Revoke a personal access token.", Tag: "auth", Status: 204}, s.deleteUserToken)
}

func (s *Server) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	email, _ := domain.ValidateEmail("email", req.Email)
	at, client := time.Now(), s.clientAddress(c)
	if wait := s.limiter.loginAttempt(email, client, at); wait > 0 {
		return domain.TooMany("too_many_sign_ins", "Too many failed sign-ins; wait as long as Retry-After says and try again.", wait)
	}
	var u *storage.User
	err := error(domain.NotFound("user"))
	if domain.Storable(email) { // text the store refuses names no one, and must not reach it
		u, err = s.store.GetUserByEmail(c.UserContext(), email)
	}
	if err != nil && !domain.IsKind(err, domain.KindNotFound) {
		return err
	}
	hash := ""
	if err == nil {
		hash = u.PasswordHash
	}
	// Unknown e-mail and wrong password take the same time and get the same answer.
	passwordRight := domain.CheckPassword(hash, req.Password)
	if err := s.ssoRefusesPassword(c.UserContext(), email, u, passwordRight); err != nil {
		s.limiter.loginFailed(email, client, time.Now())
		return err
	}
	if !passwordRight {
		s.limiter.loginFailed(email, client, time.Now())
		return domain.Unauthorized("The e-mail or password is not right.")
	}
	s.limiter.loginSucceeded(email)
	if err := signInRefusal(u); err != nil {
		return err
	}
	return s.signInAfterPassword(c, u)
}

// startSession signs u in on this browser: a new session and its cookie. Every way in (password, second
// factor, single sign-on, invitation, confirmation) ends here, so a suspended or unconfirmed account is
// refused here too, whatever the way did before.
func (s *Server) startSession(c *fiber.Ctx, u *storage.User) error {
	if err := signInRefusal(u); err != nil {
		return err
	}
	token, hashed := domain.NewToken(domain.TokenPrefixSession)
	expires := time.Now().Add(s.cfg.SessionTTL)
	if err := s.store.InsertSession(c.UserContext(), &storage.Session{TokenHash: hashed, UserID: u.ID, ExpiresAt: expires}); err != nil {
		return err
	}
	c.Cookie(s.hostOnlyCookie(c, sessionCookie, token, expires))
	return nil
}

func (s *Server) logout(c *fiber.Ctx) error {
	if cookie := c.Cookies(s.cookieName(sessionCookie)); cookie != "" {
		// The session's editor sessions end with it (editor_grants cascade).
		if err := s.store.DeleteSession(c.UserContext(), domain.HashToken(cookie)); err != nil {
			return err
		}
	}
	// Cleared with the attributes it was set with: a browser ignores a __Host- cookie without them.
	c.Cookie(s.hostOnlyCookie(c, sessionCookie, "", time.Unix(0, 0)))
	return noContent(c)
}

func (s *Server) getCurrentUser(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	return c.JSON(userView(who.user))
}

func (s *Server) listUserTokens(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListTokensByOwner(c.UserContext(), tokenKindUser, "user", who.user.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, tokenView)
}

func (s *Server) createUserToken(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	var req createTokenRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var expiry *domain.FieldError
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		expiry = &domain.FieldError{Field: "expiresAt", Detail: "must be in the future"}
	}
	if err := domain.Collect(domain.ValidateName("name", req.Name), expiry, validateScopes(req.Scopes)); err != nil {
		return err
	}
	token, hash := domain.NewToken(domain.TokenPrefixUser)
	t := &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: tokenKindUser, Name: req.Name,
		OwnerType: "user", OwnerID: who.user.ID, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt}
	if err := s.store.InsertToken(c.UserContext(), t); err != nil {
		return err
	}
	v := tokenView(t)
	v.Token = token
	return created(c, v)
}

// validateScopes accepts only scopes Flowyard knows; today a token acts with its user's full rights, and
// "read" is the one narrowing scope.
func validateScopes(scopes []string) *domain.FieldError {
	for _, sc := range scopes {
		if sc != "read" {
			return &domain.FieldError{Field: "scopes", Detail: `the only scope is "read"`}
		}
	}
	return nil
}

func (s *Server) deleteUserToken(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteTokenOfOwner(c.UserContext(), c.Params("tokenId"), "user", who.user.ID); err != nil {
		return err
	}
	return noContent(c)
}
