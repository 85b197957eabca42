package domain

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// Sealer encrypts secrets at rest (credential secrets, runtime tokens) with the platform's master key:
// AES-256-GCM, key = SHA-256(master key), stored as "v1:" + base64(nonce || ciphertext).
type Sealer struct{ aead cipher.AEAD }

// ErrUnseal means a sealed value was altered or sealed with another key.
var ErrUnseal = errors.New("sealed value cannot be opened with this key")

// NewSealer derives the sealing key from the master key.
func NewSealer(masterKey string) (*Sealer, error) {
	if len(masterKey) < 32 {
		return nil, errors.New("the master key must be at least 32 characters")
	}
	key := sha256.Sum256([]byte(masterKey))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a secret.
func (s *Sealer) Seal(plain string) string {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "v1:" + base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), nil))
}

// Open decrypts a value made by Seal.
func (s *Sealer) Open(sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	if err != nil || !strings.HasPrefix(sealed, "v1:") || len(raw) < s.aead.NonceSize() {
		return "", ErrUnseal
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], nil)
	if err != nil {
		return "", ErrUnseal
	}
	return string(plain), nil
}
