package api

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/gofiber/fiber/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Two-factor sign-in with TOTP (RFC 6238): a user enrols an authenticator app, confirms it with a first code and
// gets recovery codes; from then on a password sign-in asks for a code (secondfactor.go). Personal access tokens
// are not affected: they are made by a signed-in user and are their own credential.

const (
	twoFactorPath     = "/api/v1/user/two-factor"
	totpIssuer        = "Flowyard"
	totpPeriod        = 30 // seconds a code stands for
	totpSkew          = 1  // steps accepted before and after the current one, for clocks that drift (RFC 6238 §5.2)
	recoveryCodeCount = 10
)

var totpOptions = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

type twoFactorCodeRequest struct {
	Code string `json:"code"`
}

// twoFactorProof is what turning two-factor sign-in off or renewing recovery codes asks for: one of a current
// code, a recovery code, or the password.
type twoFactorProof struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recoveryCode,omitempty"`
	Password     string `json:"password,omitempty"`
}

func (s *Server) registerTwoFactor() {
	s.route(routeDoc{Method: "GET", Path: twoFactorPath, Summary: "The caller's two-factor sign-in: on or off, an enrolment " +
		"awaiting its first code, recovery codes left.", Tag: "auth"}, s.getTwoFactor)
	s.route(routeDoc{Method: "POST", Path: twoFactorPath, Summary: "Begin enrolling an authenticator: answers its secret, otpauth URI " +
		"and QR code (an SVG data URL). Nothing changes at sign-in until a first code confirms it.", Tag: "auth", Status: 201}, s.enrolTwoFactor)
	s.route(routeDoc{Method: "POST", Path: twoFactorPath + "/confirm", Summary: "Confirm the enrolment with a first code: two-factor " +
		"sign-in is on, and the answer holds the recovery codes, shown only this once.", Tag: "auth", Body: twoFactorCodeRequest{}}, s.confirmTwoFactor)
	s.route(routeDoc{Method: "POST", Path: twoFactorPath + "/recovery-codes", Summary: "Replace the recovery codes (with a current " +
		"code, a recovery code or the password); the new ones are shown only this once.", Tag: "auth", Body: twoFactorProof{}}, s.renewRecoveryCodes)
	s.route(routeDoc{Method: "POST", Path: twoFactorPath + "/disable", Summary: "Turn two-factor sign-in off (with a current code, a " +
		"recovery code or the password).", Tag: "auth", Body: twoFactorProof{}, Status: 204}, s.disableTwoFactor)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/users/:userId/two-factor", Summary: "Turn a user's two-factor sign-in off, for a " +
		"user who lost the authenticator and the recovery codes (platform admins).", Tag: "users", Status: 204}, s.resetTwoFactor)
}

type twoFactorJSON struct {
	Enabled           bool `json:"enabled"`
	Pending           bool `json:"pending"` // enrolled, awaiting the first code
	RecoveryCodesLeft int  `json:"recoveryCodesLeft"`
}

func (s *Server) getTwoFactor(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	t, err := s.store.GetTOTP(ctx, who.user.ID)
	if domain.IsKind(err, domain.KindNotFound) {
		return c.JSON(twoFactorJSON{})
	}
	if err != nil {
		return err
	}
	left, err := s.store.CountRecoveryCodes(ctx, who.user.ID)
	if err != nil {
		return err
	}
	return c.JSON(twoFactorJSON{Enabled: t.ConfirmedAt != nil, Pending: t.ConfirmedAt == nil, RecoveryCodesLeft: left})
}

func (s *Server) enrolTwoFactor(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	if s.sealer == nil {
		return errNoSealer
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: who.user.Email, Period: totpPeriod,
		Digits: totpOptions.Digits, Algorithm: totpOptions.Algorithm})
	if err != nil {
		return err
	}
	qrCode, err := qrDataURL(key.URL())
	if err != nil {
		return err
	}
	if err := s.store.ReplaceUnconfirmedTOTP(c.UserContext(), who.user.ID, s.sealer.Seal(key.Secret())); err != nil {
		return err
	}
	return created(c, fiber.Map{"secret": key.Secret(), "uri": key.URL(), "qrCode": qrCode})
}

var errWrongCode = &domain.Error{Kind: domain.KindUnprocessable, Code: "wrong_code",
	Message: "The code is not right, or was used already; wait for the next one.", Validations: []domain.FieldError{{Field: "code", Detail: "is not right"}}}

func (s *Server) confirmTwoFactor(c *fiber.Ctx) error {
	who, err := callerOf(c)
	if err != nil {
		return err
	}
	var req twoFactorCodeRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	ctx := c.UserContext()
	t, err := s.store.GetTOTP(ctx, who.user.ID)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && t.ConfirmedAt != nil {
		return domain.Conflict("no_enrolment", "There is no authenticator waiting for its first code: begin with POST "+twoFactorPath+".")
	}
	if err != nil {
		return err
	}
	step, ok, err := s.matchTOTP(t, req.Code)
	if err != nil {
		return err
	}
	if !ok {
		return errWrongCode
	}
	var codes []string
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		if err := tx.ConfirmTOTP(ctx, who.user.ID, step); err != nil {
			return err
		}
		if codes, err = newRecoveryCodes(ctx, tx, who.user.ID); err != nil {
			return err
		}
		return audit(c, tx, who, "", "user.two_factor.enabled", "user", who.user.ID, nil)
	})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"recoveryCodes": codes})
}

func (s *Server) renewRecoveryCodes(c *fiber.Ctx) error {
	who, err := s.proveSecondFactor(c)
	if err != nil {
		return err
	}
	codes, err := newRecoveryCodes(c.UserContext(), s.store, who.user.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"recoveryCodes": codes})
}

func (s *Server) disableTwoFactor(c *fiber.Ctx) error {
	who, err := s.proveSecondFactor(c)
	if err != nil {
		return err
	}
	if err := s.removeTwoFactor(c, who, who.user.ID, "user.two_factor.disabled"); err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) resetTwoFactor(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	userID := c.Params("userId")
	if _, err := s.store.GetUserByID(c.UserContext(), userID); err != nil {
		return err
	}
	if err := s.removeTwoFactor(c, who, userID, "user.two_factor.reset"); err != nil {
		return err
	}
	return noContent(c)
}

// removeTwoFactor turns a user's two-factor sign-in off, with an audit entry when there was one to turn off.
func (s *Server) removeTwoFactor(c *fiber.Ctx, who *caller, userID, event string) error {
	return s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		had, err := tx.DeleteTOTP(ctx, userID)
		if err != nil || !had {
			return err
		}
		return audit(c, tx, who, "", event, "user", userID, nil)
	})
}

var errTwoFactorOff = domain.Conflict("two_factor_off", "Two-factor sign-in is not on for this account.")

// proveSecondFactor lets a signed-in user with two-factor sign-in on change it, when the body proves they hold
// a second factor or the password: a stolen session alone is not enough. Wrong attempts count toward the same
// delays as codes at sign-in.
func (s *Server) proveSecondFactor(c *fiber.Ctx) (*caller, error) {
	who, err := callerOf(c)
	if err != nil {
		return nil, err
	}
	var proof twoFactorProof
	if err := s.decode(c, &proof); err != nil {
		return nil, err
	}
	if err := proof.validate(); err != nil {
		return nil, err
	}
	t, err := s.store.GetTOTP(c.UserContext(), who.user.ID)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && t.ConfirmedAt == nil {
		return nil, errTwoFactorOff
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.limitedCheck(c, who.user.ID, func(ctx context.Context, tx *storage.Store) (bool, error) {
		if proof.Password != "" {
			return domain.CheckPassword(who.user.PasswordHash, proof.Password), nil
		}
		return s.useSecondFactor(ctx, tx, t, proof.Code, proof.RecoveryCode)
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, domain.Unprocessable("wrong_proof", "The code, recovery code or password is not right.")
	}
	return who, nil
}

func (p twoFactorProof) validate() error {
	given := 0
	for _, v := range []string{p.Code, p.RecoveryCode, p.Password} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return domain.InvalidField("code", "send exactly one of code, recoveryCode and password")
	}
	return nil
}

// limitedCheck runs a second-factor check for a user within the sign-in limits (the delays that grow with an
// account's failures, and the failures per client address), keyed apart from password sign-ins. A check that
// passes commits what it used up (a code's step, a recovery code); one that fails changes nothing.
func (s *Server) limitedCheck(c *fiber.Ctx, userID string, check func(ctx context.Context, tx *storage.Store) (bool, error)) (bool, error) {
	key, client := "two-factor:"+userID, s.clientAddress(c)
	if wait := s.limiter.loginAttempt(key, client, time.Now()); wait > 0 {
		return false, domain.TooMany("too_many_sign_ins", "Too many wrong codes; wait as long as Retry-After says and try again.", wait)
	}
	var ok bool
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		var err error
		if ok, err = check(ctx, tx); err == nil && !ok {
			return errCheckFailed // roll back whatever the check used up
		}
		return err
	})
	if errors.Is(err, errCheckFailed) {
		s.limiter.loginFailed(key, client, time.Now())
		return false, nil
	}
	if err == nil {
		s.limiter.loginSucceeded(key)
	}
	return ok, err
}

var errCheckFailed = errors.New("second factor not right")

// useSecondFactor checks a current code, or uses up a recovery code, of a user with two-factor sign-in on.
func (s *Server) useSecondFactor(ctx context.Context, tx *storage.Store, t *storage.UserTOTP, code, recoveryCode string) (bool, error) {
	if recoveryCode != "" {
		return tx.TakeRecoveryCode(ctx, t.UserID, domain.HashRecoveryCode(recoveryCode))
	}
	step, ok, err := s.matchTOTP(t, code)
	if err != nil || !ok {
		return false, err
	}
	return tx.UseTOTPStep(ctx, t.UserID, step) // false for a code whose step was used already: a replay
}

// matchTOTP finds the time step, around now, whose code is the one given.
func (s *Server) matchTOTP(t *storage.UserTOTP, code string) (int64, bool, error) {
	if s.sealer == nil {
		return 0, false, errNoSealer
	}
	secret, err := s.sealer.Open(t.Secret)
	if err != nil {
		return 0, false, err
	}
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	at := time.Now()
	if s.cfg.CodeClock != nil {
		at = s.cfg.CodeClock()
	}
	now := at.Unix() / totpPeriod
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOptions)
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true, nil
		}
	}
	return 0, false, nil
}

// newRecoveryCodes stores fresh recovery codes for a user (in place of any earlier ones) and returns them.
func newRecoveryCodes(ctx context.Context, tx *storage.Store, userID string) ([]string, error) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([]string, recoveryCodeCount)
	for i := range codes {
		codes[i], hashes[i] = domain.NewRecoveryCode()
	}
	return codes, tx.ReplaceRecoveryCodes(ctx, userID, hashes)
}

// qrDataURL draws an otpauth URI as a QR code in an SVG data URL. The library's own image (otp.Key.Image)
// scales the code into a fixed size with whatever margin is left over, often none; scanners want a quiet zone
// of four modules around it, which this one has, and an SVG stays sharp at any size.
func qrDataURL(uri string) (string, error) {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	const quiet = 4
	n := code.Bounds().Dx()
	var path strings.Builder
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if r, _, _, _ := code.At(x, y).RGBA(); r == 0 {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	size := n + 2*quiet
	svg := fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`, size, size, size, size, path.String())
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg)), nil
}
