package domain

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for callers that must answer it, such as the HTTP API.
type Kind int

// Error kinds. The API maps each to one status code.
const (
	KindInternal        Kind = iota
	KindInvalid              // malformed input: 400
	KindUnprocessable        // well-formed but not acceptable in context: 422
	KindUnauthorized         // no or bad credentials: 401
	KindForbidden            // known caller without the role: 403
	KindNotFound             // missing, or not the caller's: 404
	KindConflict             // clashes with current state: 409
	KindLimit                // a team limit would be exceeded: 409
	KindTooLarge             // body or item over a cap: 413
	KindRateLimited          // too many attempts: 429
	KindPaymentRequired      // billing blocks the action: 402
	KindUnavailable          // a dependency is down: 503
)

// FieldError names one invalid field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is a typed error that carries what a client needs: a stable code, a sentence, and per-field detail.
type Error struct {
	Kind        Kind
	Code        string
	Message     string
	Detail      string
	Validations []FieldError
	// RetryAfter, when set, tells the client how long to wait before trying again (a rate limit).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Message + " " + e.Detail
	}
	return e.Message
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsClientError reports whether err is a domain error the caller caused (a 4xx), not a failure of the platform
// or of a dependency. Decoders of outside input must answer bad input with such errors only.
func IsClientError(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind != KindInternal && e.Kind != KindUnavailable
}

// IsKind reports whether err is a domain error of kind k.
func IsKind(err error, k Kind) bool {
	e, ok := AsError(err)
	return ok && e.Kind == k
}

// NotFound is the one answer for both "does not exist" and "not yours".
func NotFound(what string) *Error {
	return &Error{Kind: KindNotFound, Code: "not_found", Message: fmt.Sprintf("The %s was not found.", what)}
}

// Invalid reports malformed input with per-field detail.
func Invalid(fields ...FieldError) *Error {
	return &Error{Kind: KindInvalid, Code: "invalid_request", Message: "The request is not valid.", Validations: fields}
}

// InvalidField is Invalid for one field.
func InvalidField(field, detail string) *Error {
	return Invalid(FieldError{Field: field, Detail: detail})
}

// Unprocessable reports input that is well-formed but cannot be applied.
func Unprocessable(code, message string, fields ...FieldError) *Error {
	return &Error{Kind: KindUnprocessable, Code: code, Message: message, Validations: fields}
}

// Conflict reports a clash with the current state.
func Conflict(code, message string) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: message}
}

// LimitExceeded reports that a team limit would be exceeded; the code names the limit.
func LimitExceeded(limit string, max int) *Error {
	return &Error{Kind: KindLimit, Code: "limit_" + limit, Message: fmt.Sprintf("The team's %s limit (%d) would be exceeded.", limit, max)}
}

// Forbidden reports a caller without the role an action needs.
func Forbidden() *Error {
	return &Error{Kind: KindForbidden, Code: "forbidden", Message: "Your role does not allow this action."}
}

// Unauthorized reports missing or bad credentials.
func Unauthorized(message string) *Error {
	return &Error{Kind: KindUnauthorized, Code: "unauthorized", Message: message}
}

// RateLimited reports too many attempts.
func RateLimited(message string) *Error {
	return &Error{Kind: KindRateLimited, Code: "rate_limited", Message: message}
}

// TooMany reports that a limit on attempts or work in progress holds: code names the limit, retryAfter says
// when the next attempt may succeed.
func TooMany(code, message string, retryAfter time.Duration) *Error {
	return &Error{Kind: KindRateLimited, Code: code, Message: message, RetryAfter: retryAfter}
}

// Unavailable reports a dependency that does not answer.
func Unavailable(code, message string) *Error {
	return &Error{Kind: KindUnavailable, Code: code, Message: message}
}
