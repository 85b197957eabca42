package api

import (
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// errAccountSuspended answers a suspended account's sign-in, session and tokens.
var errAccountSuspended = &domain.Error{Kind: domain.KindForbidden, Code: "account_suspended",
	Message: "This account is suspended by a platform admin; ask one to reinstate it."}

// errEmailNotVerified answers the sign-in of an account made by sign-up whose address is not confirmed yet.
var errEmailNotVerified = &domain.Error{Kind: domain.KindForbidden, Code: "email_not_verified",
	Message: "Confirm your e-mail address first, with the link mailed to it; the sign-in page sends a new link."}

// signInRefusal says why an account may not act now, or nil when it may. Every way in asks it: a password
// sign-in (once the password is right), each request's session or token, the live streams' re-checks and a
// password reset. A new way in (single sign-on, say) asks it too, so a suspended account stays out everywhere.
func signInRefusal(u *storage.User) error {
	switch {
	case u.SuspendedAt != nil:
		return errAccountSuspended
	case u.EmailUnverified:
		return errEmailNotVerified
	}
	return nil
}
