package domain

import "golang.org/x/crypto/bcrypt"

// passwordCost is bcrypt's work factor: about 100 ms per hash on the project's 2-core machines.
const passwordCost = 11

// HashPassword returns the bcrypt hash of a password.
func HashPassword(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	return string(b), err
}

// dummyHash is compared against when the account does not exist, so an unknown e-mail costs the same time
// as a wrong password and the two cannot be told apart.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("flowyard-dummy-password"), passwordCost)

// CheckPassword reports whether password matches hash. An empty hash (unknown user) never matches but takes
// as long as a real comparison.
func CheckPassword(hash, password string) bool {
	if len(password) > MaxPasswordLength {
		return false
	}
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
