package snapshots

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
)

// maxUserSecret bounds a credential secret a user gives for export or import.
const maxUserSecret = 1024

// rekeyStored re-encrypts a credentials blob from one sealed secret to another. When both open to the same
// secret the blob is returned as it is.
func (s *Service) rekeyStored(blob, fromSealed, toSealed string) (string, error) {
	from, err := s.open(fromSealed)
	if err != nil {
		return "", err
	}
	to, err := s.open(toSealed)
	if err != nil {
		return "", err
	}
	return rekey(blob, from, to)
}

func rekey(blob, from, to string) (string, error) {
	if from == to {
		return blob, nil
	}
	out, err := nodered.ReencryptCredentials(from, to, json.RawMessage(blob))
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func (s *Service) open(sealed string) (string, error) {
	secret, err := s.Sealer.Open(sealed)
	if err != nil {
		return "", fmt.Errorf("open credential secret: %w", err)
	}
	return secret, nil
}

// checkUserSecret validates a credential secret given by a user.
func checkUserSecret(field, secret string) error {
	if secret == "" {
		return domain.InvalidField(field, "is required")
	}
	if len(secret) > maxUserSecret {
		return domain.InvalidField(field, fmt.Sprintf("must be at most %d characters", maxUserSecret))
	}
	return nil
}

// ExportCredentials returns a snapshot's credentials re-encrypted to a secret the user gives, so the export can
// be imported elsewhere with that secret. The snapshot's own secret never leaves the platform.
func (s *Service) ExportCredentials(credentials, sealedSecret, userSecret string) (json.RawMessage, error) {
	if err := checkUserSecret("credentialSecret", userSecret); err != nil {
		return nil, err
	}
	from, err := s.open(sealedSecret)
	if err != nil {
		return nil, err
	}
	out, err := nodered.ReencryptCredentials(from, userSecret, json.RawMessage(credentials))
	if err != nil {
		return nil, fmt.Errorf("re-encrypt snapshot credentials: %w", err)
	}
	return out, nil
}

// importCredentials decrypts credentials a user brings with the secret they give and re-encrypts them to the
// target's sealed secret. A wrong secret is a 422, malformed credentials a 400; either way nothing is written.
func (s *Service) importCredentials(blob json.RawMessage, userSecret, targetSealed string) (string, error) {
	trimmed := bytes.TrimSpace(blob)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	encrypted := bytes.Contains(trimmed, []byte(`"$"`))
	if encrypted {
		if err := checkUserSecret("credentialSecret", userSecret); err != nil {
			return "", err
		}
	}
	to, err := s.open(targetSealed)
	if err != nil {
		return "", err
	}
	out, err := nodered.ReencryptCredentials(userSecret, to, json.RawMessage(trimmed))
	switch {
	case errors.Is(err, nodered.ErrWrongSecret):
		return "", domain.Unprocessable("wrong_credential_secret", "The credentials do not decrypt with the credentialSecret given.",
			domain.FieldError{Field: "credentialSecret", Detail: "does not decrypt the snapshot's credentials"})
	case errors.Is(err, nodered.ErrMalformedCredentials):
		return "", domain.InvalidField("snapshot.credentials", "must be Node-RED credentials: an object, encrypted as {\"$\": \"…\"} or plain")
	case err != nil:
		return "", err
	}
	return string(out), nil
}
