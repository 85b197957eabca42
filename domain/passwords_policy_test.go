package domain

import (
	"strings"
	"testing"
)

func TestNewPasswordPolicy(t *testing.T) {
	for pw, ok := range map[string]bool{
		"correct horse battery":  true,
		"exactly-12ch":           true,
		"eleven-char":            false,
		"":                       false,
		"Password1234":           false, // common, whatever its case
		"qwerty123456":           false,
		"1q2w3e4r5t6y":           false,
		strings.Repeat("x", 128): true,
		strings.Repeat("x", 129): false,
		"ñandú-çédille":          true, // counted in characters, not bytes
	} {
		if err := ValidateNewPassword("password", pw); (err == nil) != ok {
			t.Errorf("ValidateNewPassword(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
	if len(commonPasswords) < 100 {
		t.Fatalf("the embedded list holds %d passwords", len(commonPasswords))
	}
}
