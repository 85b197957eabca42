package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// sessionCookie is the platform's session cookie (its name takes the __Host- prefix with Secure cookies:
// cookieName). It is host-only: no editor origin, no instance, no other host ever gets it.
const sessionCookie = "flowyard_session"

// Token kinds stored in the tokens table.
const (
	tokenKindUser = "user"
)

// errCrossOrigin refuses a change a page of another origin sent with the user's cookie (cross-site request forgery).
var errCrossOrigin = &domain.Error{Kind: domain.KindForbidden, Code: "cross_origin", Message: "Flowyard accepts changes only from its own pages."}

// caller is who sent a request.
type caller struct {
	user        *storage.User
	tokenID     string // the personal access token used, if any
	sessionHash string // the digest of the session cookie used, if any
	readOnly    bool   // a token with the "read" scope may only read
}

func (c *caller) domainCaller() domain.Caller {
	if c == nil || c.user == nil {
		return domain.Caller{}
	}
	return domain.Caller{UserID: c.user.ID, Admin: c.user.Admin}
}

// authenticate resolves the session cookie or bearer token into a caller. A request without credentials
// goes on anonymous (routes decide); a request with bad credentials answers 401 at once.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if p := c.Path(); p == "/healthz" || p == "/readyz" {
		return c.Next() // probes need no caller, and must answer even when the store cannot check one
	}
	if strings.HasPrefix(c.Path(), runtimePathPrefix) {
		// Runtime routes accept only an instance's runtime token and check it themselves (runtime.go).
		return c.Next()
	}
	ctx := c.UserContext()
	if bearer, ok := bearerToken(c); ok && (isDeviceCredential(bearer) || isOneTimeCodeSetup(c, bearer)) {
		// Device and provisioning tokens reach only the device routes, which check them (devicelive.go), and a
		// one-time code only the registration route (onboarding.go).
		return c.Next()
	}
	if bearer, ok := bearerToken(c); ok {
		who, err := s.callerFromToken(ctx, bearer)
		if err != nil {
			return err
		}
		if who.readOnly && c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			return &domain.Error{Kind: domain.KindForbidden, Code: "read_only_token", Message: "This token may only read."}
		}
		c.Locals("caller", who)
		// A token is not held to two-factor enrolment (README): a user made it and can revoke it.
		return s.holdToPasswordChange(c, who.user)
	}
	if cookie := c.Cookies(s.cookieName(sessionCookie)); cookie != "" {
		u, err := s.store.GetSessionUser(ctx, domain.HashToken(cookie), time.Now())
		if err == nil && !s.sameOriginRequest(c) {
			// The browser adds the cookie to requests other pages send too: an instance's own pages are served
			// on the same site (another port or subdomain), where SameSite=Lax does not hold the cookie back.
			return errCrossOrigin
		}
		if err == nil {
			if refused := signInRefusal(u); refused != nil {
				return refused
			}
			c.Locals("caller", &caller{user: u, sessionHash: domain.HashToken(cookie)})
			return s.holdSession(c, u)
		}
		if !domain.IsKind(err, domain.KindNotFound) {
			return err
		}
		// An expired or unknown cookie is treated as none, so a stale browser can still reach the login route.
	}
	return c.Next()
}

// errPasswordChangeRequired answers a user who must choose a password first (the generated first admin).
var errPasswordChangeRequired = &domain.Error{Kind: domain.KindForbidden, Code: "password_change_required",
	Message: "Change your password first: POST /api/v1/user/password with the current one and a new one."}

// holdToPasswordChange lets a user who must change the password reach only the password change and sign-out
// (the dashboard's pages are served before authentication, so it can show the form).
func (s *Server) holdToPasswordChange(c *fiber.Ctx, u *storage.User) error {
	if err := passwordHold(c, u); err != nil {
		return err
	}
	return c.Next()
}

func passwordHold(c *fiber.Ctx, u *storage.User) error {
	if u.PasswordChangeRequired && !allowedWhileHeld(c, passwordHoldRoutes) {
		return errPasswordChangeRequired
	}
	return nil
}

// holdSession holds a signed-in browser to what its account must do first: change the password, then, while the
// platform requires it, turn on two-factor sign-in.
func (s *Server) holdSession(c *fiber.Ctx, u *storage.User) error {
	if err := passwordHold(c, u); err != nil {
		return err
	}
	held, err := s.heldToTwoFactor(c.UserContext(), u)
	if err != nil {
		return err
	}
	if held && !allowedWhileHeld(c, twoFactorHoldRoutes) {
		return errTwoFactorRequired
	}
	return c.Next()
}

// heldRoute is a route a held user may still reach, to do what is asked of them.
type heldRoute struct{ method, path string }

var passwordHoldRoutes = []heldRoute{{fiber.MethodPost, passwordChangePath}, {fiber.MethodPost, logoutPath}}

func allowedWhileHeld(c *fiber.Ctx, routes []heldRoute) bool {
	return slices.Contains(routes, heldRoute{c.Method(), c.Path()})
}

func bearerToken(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

func (s *Server) callerFromToken(ctx context.Context, token string) (*caller, error) {
	if !strings.HasPrefix(token, domain.TokenPrefixUser) {
		return nil, domain.Unauthorized("The bearer token is not valid.")
	}
	u, tok, err := s.store.GetUserByToken(ctx, domain.HashToken(token), tokenKindUser, time.Now())
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, domain.Unauthorized("The bearer token is not valid, has expired or was revoked.")
	}
	if err != nil {
		return nil, err
	}
	if err := signInRefusal(u); err != nil {
		return nil, err
	}
	return &caller{user: u, tokenID: tok.ID, readOnly: slices.Contains(tok.Scopes, "read")}, nil
}

// callerOf returns the signed-in caller or a 401.
func callerOf(c *fiber.Ctx) (*caller, error) {
	who, _ := c.Locals("caller").(*caller)
	if who == nil || who.user == nil {
		return nil, domain.Unauthorized("Sign in or send a bearer token.")
	}
	return who, nil
}

// requireAdmin lets only platform admins through.
func requireAdmin(c *fiber.Ctx) (*caller, error) {
	who, err := callerOf(c)
	if err != nil {
		return nil, err
	}
	if !who.user.Admin {
		return nil, domain.Forbidden()
	}
	return who, nil
}

// requireAny lets any signed-in user perform an action that needs no team role.
func requireAny(c *fiber.Ctx, a domain.Action) (*caller, error) {
	who, err := callerOf(c)
	if err != nil {
		return nil, err
	}
	if !domain.Allowed(who.domainCaller(), domain.RoleNone, a) {
		return nil, domain.Forbidden()
	}
	return who, nil
}

// teamAccess checks that the caller may perform action in team. Someone outside the team gets the same
// 404 as for a missing subject (what names it), so a probe learns nothing.
func (s *Server) teamAccess(c *fiber.Ctx, teamID string, action domain.Action, what string) (*caller, domain.Role, error) {
	who, err := callerOf(c)
	if err != nil {
		return nil, domain.RoleNone, err
	}
	role := domain.RoleNone
	m, err := s.store.GetMembership(c.UserContext(), teamID, who.user.ID)
	switch {
	case err == nil:
		role = m.Role
	case !domain.IsKind(err, domain.KindNotFound):
		return nil, domain.RoleNone, err
	case !who.user.Admin:
		return nil, domain.RoleNone, domain.NotFound(what)
	}
	if !domain.Allowed(who.domainCaller(), role, action) {
		return nil, role, domain.Forbidden()
	}
	return who, role, nil
}
