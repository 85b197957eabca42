package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// Sign-up: when a platform admin turns the signUp setting on, anyone may create an account, which works once the
// link mailed to its address is used with the password chosen at sign-up. Asking for the password there means
// that a link from someone else's sign-up for your address (who chose the password) confirms nothing for them.
// Every answer is the same whether or not an account has the address.

// verificationTTL is how long a confirmation link works.
const verificationTTL = 24 * time.Hour

type signUpRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

type verifyEmailRequest struct {
	Password string `json:"password"`
}

// signUpAnswer is every sign-up's and resend's answer, so that it tells nothing about who has an account.
var signUpAnswer = fiber.Map{"message": "Check your mail: if the address can be used for a new account, a link to confirm it is on its way."}

var errSignUpOff = &domain.Error{Kind: domain.KindForbidden, Code: "signup_disabled",
	Message: "Sign-up is off on this platform: ask a platform admin for an account or a team owner for an invitation."}

var errVerificationLinkInvalid = &domain.Error{Kind: domain.KindNotFound, Code: "verification_link_invalid",
	Message: "This confirmation link is not valid: it was used, has expired (after a day), was replaced by a newer one or was not copied whole; the sign-in page sends a new one."}

func (s *Server) registerSignUp() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/signup", Summary: "Create an account when the signUp setting is on (403 signup_disabled otherwise); " +
		"it works once its address is confirmed with the mailed link. The answer is the same whether or not an account has the address; " +
		"rate-limited per address and per client (429).", Tag: "auth", Public: true, Body: signUpRequest{}, Status: 202}, s.signUp)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/signup/resend", Summary: "Mail a new confirmation link to an account not confirmed yet. " +
		"The answer is the same for every address; rate-limited with sign-up (429).", Tag: "auth", Public: true, Body: emailRequest{}, Status: 202}, s.resendVerification)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/verify-email/:token", Summary: "Confirm a signed-up account's address with the mailed link " +
		"and the password chosen at sign-up; signs in. The link works once, for a day.", Tag: "auth", Public: true, Body: verifyEmailRequest{}}, s.verifyEmail)
}

func (s *Server) signUp(c *fiber.Ctx) error {
	var req signUpRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	settings, err := s.platformSettings(c.UserContext())
	if err != nil {
		return err
	}
	if !settings.SignUp {
		return errSignUpOff
	}
	// The password is hashed before the address is looked up, so every sign-up takes the same time.
	u, err := NewUser(req.Email, req.Name, req.Password, false)
	if err != nil {
		return err
	}
	u.EmailUnverified = true
	if err := s.limiter.signUpRequest(u.Email, s.clientAddress(c), time.Now()); err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		return s.signUpInTx(ctx, c, tx, u)
	})
	if err != nil {
		return err
	}
	s.mailQueued()
	return c.Status(fiber.StatusAccepted).JSON(signUpAnswer)
}

// signUpInTx creates the account, or, when the address has one already: replaces an unconfirmed one's name and
// password (the latest sign-up wins, and earlier links stop working), tells a confirmed one's holder that someone
// tried, and does nothing for a suspended one.
func (s *Server) signUpInTx(ctx context.Context, c *fiber.Ctx, tx *storage.Store, u *storage.User) error {
	existing, err := tx.GetUserByEmail(ctx, u.Email)
	switch {
	case domain.IsKind(err, domain.KindNotFound):
		if err := tx.InsertUser(ctx, u); err != nil {
			return err
		}
		if err := audit(c, tx, &caller{user: u}, "", "user.signed-up", "user", u.ID, map[string]any{"email": u.Email}); err != nil {
			return err
		}
		return s.queueVerification(ctx, tx, u)
	case err != nil:
		return err
	case existing.SuspendedAt != nil:
		return nil
	case existing.EmailUnverified:
		existing.Name, existing.PasswordHash = u.Name, u.PasswordHash
		if err := tx.UpdateUser(ctx, existing, "name", "password_hash"); err != nil {
			return err
		}
		return s.queueVerification(ctx, tx, existing)
	}
	link := s.cfg.PublicURL + "/signin"
	msg, err := mail.AccountExistsMessage(existing.Email, mail.AccountExists{SignInLink: link})
	if err != nil {
		return err
	}
	_, err = s.queueMail(ctx, tx, msg, link)
	return err
}

// queueVerification replaces the account's confirmation links with a new one and queues its e-mail in tx;
// without an SMTP server the link is logged for the operator (never answered: whoever signed up need not own
// the address).
func (s *Server) queueVerification(ctx context.Context, tx *storage.Store, u *storage.User) error {
	if err := tx.DeleteEmailVerifications(ctx, u.ID); err != nil {
		return err
	}
	token, hash := domain.NewToken(domain.TokenPrefixVerification)
	expires := time.Now().Add(verificationTTL).UTC().Truncate(time.Second)
	if err := tx.InsertEmailVerification(ctx, &storage.EmailVerification{TokenHash: hash, UserID: u.ID, ExpiresAt: expires}); err != nil {
		return err
	}
	link := s.cfg.PublicURL + "/verify-email/" + token
	msg, err := mail.VerificationMessage(u.Email, mail.Verification{Name: u.Name, Link: link, Expires: expires})
	if err != nil {
		return err
	}
	_, err = s.queueMail(ctx, tx, msg, link)
	return err
}

func (s *Server) resendVerification(c *fiber.Ctx) error {
	err := s.forAccountOf(c, s.limiter.signUpRequest, func(ctx context.Context, tx *storage.Store, u *storage.User) error {
		if !u.EmailUnverified || u.SuspendedAt != nil {
			return nil
		}
		return s.queueVerification(ctx, tx, u)
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(signUpAnswer)
}

func (s *Server) verifyEmail(c *fiber.Ctx) error {
	var req verifyEmailRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var verified *storage.User
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		v, err := tx.TakeEmailVerification(ctx, domain.HashToken(c.Params("token")), time.Now())
		if domain.IsKind(err, domain.KindNotFound) {
			return errVerificationLinkInvalid
		}
		if err != nil {
			return err
		}
		u, err := tx.GetUserByID(ctx, v.UserID)
		if err != nil {
			return err
		}
		// A wrong password rolls the transaction back: the link stays usable.
		if !domain.CheckPassword(u.PasswordHash, req.Password) {
			return domain.Unprocessable("wrong_password", "That is not the password chosen at sign-up.",
				domain.FieldError{Field: "password", Detail: "is not the password chosen at sign-up"})
		}
		u.EmailUnverified = false
		if err := signInRefusal(u); err != nil {
			return err
		}
		if err := tx.MarkEmailVerified(ctx, u.ID); err != nil {
			return err
		}
		verified = u
		return audit(c, tx, &caller{user: u}, "", "user.email-verified", "user", u.ID, nil)
	})
	if err != nil {
		return err
	}
	if err := s.startSession(c, verified); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": userView(verified)})
}
