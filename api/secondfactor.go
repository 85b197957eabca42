package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The second step of a password sign-in for a user with two-factor sign-in on. A right password yields no
// session, only a short-lived, single-use challenge named by a cookie; a right code (or recovery code) for it
// yields the session.

const (
	secondFactorPath     = "/api/v1/auth/login/second-factor"
	secondFactorCookie   = "flowyard_second_factor"
	secondFactorTTL      = 5 * time.Minute
	secondFactorAttempts = 5 // wrong codes a challenge takes before the password must be given again
)

type secondFactorRequest struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recoveryCode,omitempty"`
}

func (s *Server) registerSecondFactor() {
	s.route(routeDoc{Method: "POST", Path: secondFactorPath, Summary: "Finish a sign-in that answered 202 secondFactorRequired: a " +
		"current code of the authenticator, or a recovery code (used up). Works within 5 minutes of the password, for 5 " +
		"wrong codes; a code is accepted once. Sets the session cookie.", Tag: "auth", Public: true, Body: secondFactorRequest{}}, s.finishSecondFactor)
}

// signInAfterPassword finishes a sign-in whose password was right: a session at once, or, for a user with
// two-factor sign-in on, a challenge that asks for a code (202).
func (s *Server) signInAfterPassword(c *fiber.Ctx, u *storage.User) error {
	t, err := s.store.GetTOTP(c.UserContext(), u.ID)
	if err != nil && !domain.IsKind(err, domain.KindNotFound) {
		return err
	}
	if err == nil && t.ConfirmedAt != nil {
		return s.askSecondFactor(c, u)
	}
	if err := s.startSession(c, u); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": userView(u)})
}

func (s *Server) askSecondFactor(c *fiber.Ctx, u *storage.User) error {
	token, hash := domain.NewToken(domain.TokenPrefixSecondFactor)
	expires := time.Now().Add(secondFactorTTL)
	if err := s.store.InsertSecondFactorChallenge(c.UserContext(), &storage.SecondFactorChallenge{TokenHash: hash, UserID: u.ID, ExpiresAt: expires}); err != nil {
		return err
	}
	s.setSecondFactorCookie(c, token, expires)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"secondFactorRequired": true, "expiresAt": expires.UTC(),
		"message": "Enter the code your authenticator app shows, or one of your recovery codes: POST " + secondFactorPath + "."})
}

func (s *Server) setSecondFactorCookie(c *fiber.Ctx, value string, expires time.Time) {
	c.Cookie(&fiber.Cookie{Name: secondFactorCookie, Value: value, Path: secondFactorPath, Expires: expires, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode, Secure: s.cfg.SecureCookies || c.Protocol() == "https"})
}

var errSecondFactorExpired = &domain.Error{Kind: domain.KindUnauthorized, Code: "second_factor_expired",
	Message: "This sign-in has ended (it lasts 5 minutes and takes 5 wrong codes); sign in with your password again."}

func (s *Server) finishSecondFactor(c *fiber.Ctx) error {
	var req secondFactorRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := (twoFactorProof{Code: req.Code, RecoveryCode: req.RecoveryCode}).validate(); err != nil {
		return err
	}
	ctx, hash := c.UserContext(), domain.HashToken(c.Cookies(secondFactorCookie))
	challenge, err := s.store.GetSecondFactorChallenge(ctx, hash, time.Now())
	if domain.IsKind(err, domain.KindNotFound) {
		return errSecondFactorExpired
	}
	if err != nil {
		return err
	}
	t, err := s.store.GetTOTP(ctx, challenge.UserID)
	if err != nil {
		return err // turned off meanwhile: the challenge went with it, so this is not reached but in a race
	}
	ok, err := s.limitedCheck(c, challenge.UserID, func(ctx context.Context, tx *storage.Store) (bool, error) {
		ok, err := s.useSecondFactor(ctx, tx, t, req.Code, req.RecoveryCode)
		if err != nil || !ok {
			return false, err
		}
		if taken, err := tx.TakeSecondFactorChallenge(ctx, hash); err != nil || !taken {
			return false, err // a second right code for one challenge opens no second session
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return s.secondFactorFailed(c, hash)
	}
	return s.secondFactorPassed(c, challenge.UserID)
}

// secondFactorFailed counts a wrong code against the challenge, which ends after secondFactorAttempts.
func (s *Server) secondFactorFailed(c *fiber.Ctx, hash string) error {
	stands, err := s.store.FailSecondFactorChallenge(c.UserContext(), hash, secondFactorAttempts)
	if err != nil {
		return err
	}
	if !stands {
		s.setSecondFactorCookie(c, "", time.Unix(0, 0))
		return errSecondFactorExpired
	}
	e := *errWrongCode
	e.Kind = domain.KindUnauthorized
	return &e
}

func (s *Server) secondFactorPassed(c *fiber.Ctx, userID string) error {
	u, err := s.store.GetUserByID(c.UserContext(), userID)
	if err != nil {
		return err
	}
	s.setSecondFactorCookie(c, "", time.Unix(0, 0))
	if err := s.startSession(c, u); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": userView(u)})
}
