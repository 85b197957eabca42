package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The platform setting requireTwoFactor holds every signed-in browser whose account has no confirmed two-factor
// sign-in to enrolling one (auth.go's holdSession), the way a generated password is held to its change.

// errTwoFactorRequired answers a held user on any route but those needed to enrol.
var errTwoFactorRequired = &domain.Error{Kind: domain.KindForbidden, Code: "two_factor_required",
	Message: "This platform requires two-factor sign-in: turn it on first (POST " + twoFactorPath + ", then POST " + twoFactorPath + "/confirm)."}

// twoFactorHoldRoutes are what a user held to enrolling may reach: enrolment, who they are, the settings (the
// dashboard reads them), and what the password hold allows (a user held to both changes the password first).
var twoFactorHoldRoutes = append([]heldRoute{
	{fiber.MethodGet, currentUserPath},
	{fiber.MethodGet, settingsPath},
	{fiber.MethodGet, twoFactorPath},
	{fiber.MethodPost, twoFactorPath},
	{fiber.MethodPost, twoFactorPath + "/confirm"},
}, passwordHoldRoutes...)

// heldToTwoFactor says whether the platform holds a user to enrolling two-factor sign-in now.
func (s *Server) heldToTwoFactor(ctx context.Context, u *storage.User) (bool, error) {
	settings, err := s.platformSettings(ctx)
	if err != nil || !settings.RequireTwoFactor {
		return false, err
	}
	return s.lacksTwoFactor(ctx, u)
}

// lacksTwoFactor says whether a user would be held while two-factor sign-in is required: no confirmed
// authenticator, and an address outside every single sign-on domain (the provider decides how its users prove
// who they are).
func (s *Server) lacksTwoFactor(ctx context.Context, u *storage.User) (bool, error) {
	t, err := s.store.GetTOTP(ctx, u.ID)
	if err == nil && t.ConfirmedAt != nil {
		return false, nil
	}
	if err != nil && !domain.IsKind(err, domain.KindNotFound) {
		return false, err
	}
	return s.notSingleSignOn(ctx, u.Email)
}

// errRequireTwoFactorYourself refuses to require two-factor sign-in from an admin who would be held by it at once.
var errRequireTwoFactorYourself = domain.Conflict("two_factor_off",
	"Turn on your own two-factor sign-in first (/account/two-factor): requiring it would otherwise hold you too.")

// checkRequireTwoFactor lets an admin turn the requirement on only once it would not hold them.
func (s *Server) checkRequireTwoFactor(ctx context.Context, who *caller, req settingsPatch) error {
	if req.RequireTwoFactor == nil || !*req.RequireTwoFactor {
		return nil
	}
	lacks, err := s.lacksTwoFactor(ctx, who.user)
	if err == nil && lacks {
		return errRequireTwoFactorYourself
	}
	return err
}

// notSingleSignOn says whether an address is outside every single sign-on domain.
func (s *Server) notSingleSignOn(ctx context.Context, email string) (bool, error) {
	_, err := s.ssoConfigForEmail(ctx, email)
	if errors.Is(err, errSSONotConfigured) {
		return true, nil
	}
	return false, err
}
