package domain

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"
)

var (
	slugPattern         = regexp.MustCompile(`^[a-z0-9-]{2,63}$`)
	instanceNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envNamePattern      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	slugStrip           = regexp.MustCompile(`[^a-z0-9-]+`)
)

// reservedInstanceNames cannot name an instance: they clash with platform host names (FlowFuse's list).
var reservedInstanceNames = map[string]bool{
	"app": true, "www": true, "node-red": true, "nodered": true, "forge": true, "support": true, "help": true,
	"accounts": true, "account": true, "status": true, "billing": true, "mqtt": true, "broker": true,
	"egress": true, "npm": true, "registry": true, "api": true, "admin": true, "editor": true, "flowyard": true,
}

// Length limits for free text.
const (
	MaxNameLength        = 100
	MaxDescriptionLength = 2000
	MaxPasswordLength    = 128
)

// ValidateSlug checks a team slug.
func ValidateSlug(field, s string) *FieldError {
	if !slugPattern.MatchString(s) {
		return &FieldError{Field: field, Detail: "must be 2-63 characters of lower-case letters, digits and hyphens"}
	}
	return nil
}

// Slugify derives a slug from a display name.
func Slugify(name string) string {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.ReplaceAll(s, " ", "-")
	s = slugStrip.ReplaceAllString(s, "")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// ValidateInstanceName checks an instance name: a DNS label, platform-unique, not reserved.
func ValidateInstanceName(field, s string) *FieldError {
	if !instanceNamePattern.MatchString(s) {
		return &FieldError{Field: field, Detail: "must start with a lower-case letter and hold at most 63 lower-case letters, digits and hyphens"}
	}
	if reservedInstanceNames[s] {
		return &FieldError{Field: field, Detail: fmt.Sprintf("%q is reserved", s)}
	}
	return nil
}

// ValidateName checks a display name: required, bounded, printable, no URL scheme.
func ValidateName(field, s string) *FieldError {
	switch {
	case strings.TrimSpace(s) == "":
		return &FieldError{Field: field, Detail: "is required"}
	case utf8.RuneCountInString(s) > MaxNameLength:
		return &FieldError{Field: field, Detail: fmt.Sprintf("must be at most %d characters", MaxNameLength)}
	case strings.Contains(s, "://"):
		return &FieldError{Field: field, Detail: "must not contain a URL"}
	case strings.ContainsFunc(s, isControl):
		return &FieldError{Field: field, Detail: "must not contain control characters"}
	case !utf8.ValidString(s):
		return &FieldError{Field: field, Detail: "must be UTF-8 text"}
	}
	return nil
}

// ValidateDescription checks optional free text.
func ValidateDescription(field, s string) *FieldError {
	switch {
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		return &FieldError{Field: field, Detail: fmt.Sprintf("must be at most %d characters", MaxDescriptionLength)}
	case !Storable(s):
		return &FieldError{Field: field, Detail: "must be UTF-8 text without NUL characters"}
	}
	return nil
}

// Storable reports whether s can be stored as text in both stores: PostgreSQL refuses NUL characters and
// invalid UTF-8 in text columns, so input holding them must be refused as bad input, never reach the store.
func Storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// ValidateEmail checks an e-mail address and returns it normalised (trimmed, lower-case).
func ValidateEmail(field, s string) (string, *FieldError) {
	s = strings.ToLower(strings.TrimSpace(s))
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > 254 || !strings.Contains(s[strings.LastIndex(s, "@")+1:], ".") && !strings.HasSuffix(s, "@localhost") {
		return s, &FieldError{Field: field, Detail: "must be an e-mail address"}
	}
	return s, nil
}

// ValidateEnvName checks an environment variable name. FF_ and FLOWYARD_ names belong to the platform.
func ValidateEnvName(field, s string) *FieldError {
	if !envNamePattern.MatchString(s) || len(s) > 128 {
		return &FieldError{Field: field, Detail: "must be letters, digits and underscores, not starting with a digit"}
	}
	if strings.HasPrefix(s, "FF_") || strings.HasPrefix(s, "FLOWYARD_") {
		return &FieldError{Field: field, Detail: "names starting with FF_ or FLOWYARD_ are reserved for the platform"}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Collect gathers non-nil field errors into one Invalid error, or nil.
func Collect(errs ...*FieldError) error {
	var fields []FieldError
	for _, e := range errs {
		if e != nil {
			fields = append(fields, *e)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return Invalid(fields...)
}
