package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// Paths a user who must change the password may still reach (holdToPasswordChange).
const (
	passwordChangePath = "/api/v1/user/password"
	logoutPath         = "/api/v1/auth/logout"
	currentUserPath    = "/api/v1/user"
)

// resetTTL is how long a password-reset link works.
const resetTTL = time.Hour

type changePasswordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}

type completeResetRequest struct {
	NewPassword string `json:"newPassword"`
}

func (s *Server) registerPasswords() {
	s.route(routeDoc{Method: "POST", Path: passwordChangePath, Summary: "Change the caller's password (the current one is asked for). " +
		"Ends the caller's other sessions; personal access tokens stay.", Tag: "auth", Body: changePasswordRequest{}, Status: 204}, s.changePassword)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/password-reset", Summary: "Ask for a password-reset link by e-mail. " +
		"The answer is the same whether or not an account has the address; rate-limited per address and per client (429).",
		Tag: "auth", Public: true, Body: emailRequest{}, Status: 202}, s.requestPasswordReset)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/auth/password-reset/:token", Summary: "Choose a new password with a reset link " +
		"(works once, for an hour). Ends every session of the account.", Tag: "auth", Public: true, Body: completeResetRequest{}, Status: 204}, s.completePasswordReset)
}

func (s *Server) changePassword(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	var req changePasswordRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(domain.ValidateNewPassword("newPassword", req.NewPassword), samePassword(req)); err != nil {
		return err
	}
	if !domain.CheckPassword(who.user.PasswordHash, req.CurrentPassword) {
		return domain.Unprocessable("wrong_password", "The current password is not right.",
			domain.FieldError{Field: "currentPassword", Detail: "is not your current password"})
	}
	err = s.setPassword(c, who.user, req.NewPassword, who.sessionHash, "user.password.changed")
	if err != nil {
		return err
	}
	return noContent(c)
}

func samePassword(req changePasswordRequest) *domain.FieldError {
	if req.NewPassword != "" && req.NewPassword == req.CurrentPassword {
		return &domain.FieldError{Field: "newPassword", Detail: "must differ from the current password"}
	}
	return nil
}

// setPassword stores a new password for u, keeping only the session keepSession ("" for none).
func (s *Server) setPassword(c *fiber.Ctx, u *storage.User, password, keepSession, event string) error {
	hash, err := domain.HashPassword(password)
	if err != nil {
		return err
	}
	return s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		return replacePassword(ctx, c, tx, u.ID, hash, keepSession, event)
	})
}

// replacePassword stores a password hash in tx and ends every session of the user but keepSession ("" for all)
// and every pending reset link: whoever knew the old password, or held a link, is out.
func replacePassword(ctx context.Context, c *fiber.Ctx, tx *storage.Store, userID, hash, keepSession, event string) error {
	return runSteps(
		func() error { return tx.SetPassword(ctx, userID, hash) },
		func() error { return tx.DeleteSessionsOfUser(ctx, userID, keepSession) },
		func() error { return tx.DeletePasswordResets(ctx, userID) },
		func() error {
			return audit(c, tx, &caller{user: &storage.User{ID: userID}}, "", event, "user", userID, nil)
		},
	)
}

// requestPasswordReset mails a reset link when an account has the address, and answers the same either way.
// Without an SMTP server the link is only logged for the operator: it is never answered, since whoever asks
// need not own the address.
func (s *Server) requestPasswordReset(c *fiber.Ctx) error {
	err := s.forAccountOf(c, s.limiter.resetRequest, func(ctx context.Context, tx *storage.Store, u *storage.User) error {
		if signInRefusal(u) != nil {
			return nil // a suspended or unconfirmed account gets no link, and the answer does not say so
		}
		_, _, err := s.queueResetLink(ctx, tx, u)
		return err
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"message": "If an account has that address, a link to reset its password is on its way."})
}

// queueResetLink stores a reset link for u and queues its e-mail in tx; without an SMTP server the link is
// logged and returned with mailed=false.
func (s *Server) queueResetLink(ctx context.Context, tx *storage.Store, u *storage.User) (link string, mailed bool, err error) {
	token, hash := domain.NewToken(domain.TokenPrefixReset)
	expires := time.Now().Add(resetTTL).UTC().Truncate(time.Second)
	if err := tx.InsertPasswordReset(ctx, &storage.PasswordReset{TokenHash: hash, UserID: u.ID, ExpiresAt: expires}); err != nil {
		return "", false, err
	}
	link = s.cfg.PublicURL + "/reset-password/" + token
	msg, err := mail.PasswordResetMessage(u.Email, mail.PasswordReset{Link: link, Expires: expires})
	if err != nil {
		return "", false, err
	}
	mailed, err = s.queueMail(ctx, tx, msg, link)
	return link, mailed, err
}

var errResetLinkInvalid = &domain.Error{Kind: domain.KindNotFound, Code: "reset_link_invalid",
	Message: "This password-reset link is not valid: it was used, has expired (after an hour) or was not copied whole; ask for a new one."}

func (s *Server) completePasswordReset(c *fiber.Ctx) error {
	var req completeResetRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(domain.ValidateNewPassword("newPassword", req.NewPassword)); err != nil {
		return err
	}
	hash, err := domain.HashPassword(req.NewPassword)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		reset, err := tx.TakePasswordReset(ctx, domain.HashToken(c.Params("token")), time.Now())
		if domain.IsKind(err, domain.KindNotFound) {
			return errResetLinkInvalid
		}
		if err != nil {
			return err
		}
		if err := accountMayReset(ctx, tx, reset.UserID); err != nil {
			return err
		}
		return replacePassword(ctx, c, tx, reset.UserID, hash, "", "user.password.reset")
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// accountMayReset refuses a reset link of an account suspended after the link was sent (suspension deletes the
// pending links, so this holds only against a race).
func accountMayReset(ctx context.Context, tx *storage.Store, userID string) error {
	u, err := tx.GetUserByID(ctx, userID)
	if err != nil {
		return err
	}
	return signInRefusal(u)
}
