package domain

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MinNewPasswordLength is the shortest password a user may choose. Sign-in accepts any stored password, so
// accounts made before the policy keep working until their holder changes the password.
const MinNewPasswordLength = 12

//go:embed common_passwords.txt
var commonPasswordList string

var commonPasswords = func() map[string]bool {
	set := map[string]bool{}
	for _, line := range strings.Split(commonPasswordList, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			set[strings.ToLower(line)] = true
		}
	}
	return set
}()

// ValidateNewPassword checks a password a user chooses (a new account, a change, a reset): at least
// MinNewPasswordLength characters, at most MaxPasswordLength, and not one of the most common passwords.
func ValidateNewPassword(field, s string) *FieldError {
	n := utf8.RuneCountInString(s)
	if n < MinNewPasswordLength || n > MaxPasswordLength {
		return &FieldError{Field: field, Detail: fmt.Sprintf("must be %d to %d characters", MinNewPasswordLength, MaxPasswordLength)}
	}
	if commonPasswords[strings.ToLower(s)] {
		return &FieldError{Field: field, Detail: "is one of the most common passwords; choose another"}
	}
	return nil
}
