package domain

import (
	"crypto/rand"
	"strings"
)

// NewRecoveryCode returns a two-factor recovery code, written as four groups of four characters (80 random bits),
// and the digest to store in its place.
func NewRecoveryCode() (code, hash string) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	plain := crockford.EncodeToString(b[:])
	return plain[0:4] + "-" + plain[4:8] + "-" + plain[8:12] + "-" + plain[12:16], HashToken(plain)
}

// HashRecoveryCode is the digest of a recovery code as typed: any case, with or without its dashes and spaces.
func HashRecoveryCode(typed string) string {
	return HashToken(strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(typed))))
}
