package nodered

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrWrongSecret is returned by DecryptCredentials when the blob does not
// decrypt to a JSON object. Node-RED's format has no MAC, so a wrong
// credentialSecret shows up only as garbage that does not parse.
var ErrWrongSecret = errors.New("credentials do not decrypt with this secret")

// ErrMalformedCredentials is returned when the "$" value is not the
// hex IV followed by base64 ciphertext that Node-RED writes.
var ErrMalformedCredentials = errors.New("malformed encrypted credentials")

// ivHexLen is the length of the hex-encoded 16-byte IV that prefixes "$".
const ivHexLen = 2 * aes.BlockSize

// EncryptCredentials encrypts creds the way Node-RED writes flows_cred.json:
// {"$": hex(iv) + base64(AES-256-CTR(key=SHA-256(secret), iv, JSON(creds)))},
// with a fresh random IV on every call. A nil map encrypts as {}.
func EncryptCredentials(secret string, creds map[string]any) (json.RawMessage, error) {
	if creds == nil {
		creds = map[string]any{}
	}
	plain, err := compactJSON(creds)
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	return encryptPlaintext(secret, plain)
}

// DecryptCredentials decrypts a flows_cred.json document. An empty blob,
// JSON null or {} gives an empty map. A document without a "$" key is
// returned as is: that is how Node-RED stores credentials when
// credentialSecret is false. Numbers come back as json.Number so that
// re-encoding does not change them.
func DecryptCredentials(secret string, blob json.RawMessage) (map[string]any, error) {
	plain, err := decryptPlaintext(secret, blob)
	if err != nil {
		return nil, err
	}
	return decodeObject(plain)
}

// ReencryptCredentials decrypts blob with fromSecret and encrypts the same
// plaintext bytes with toSecret under a new IV. This is the re-key step for
// an instance whose credentialSecret changes while it is stopped.
func ReencryptCredentials(fromSecret, toSecret string, blob json.RawMessage) (json.RawMessage, error) {
	plain, err := decryptPlaintext(fromSecret, blob)
	if err != nil {
		return nil, err
	}
	return encryptPlaintext(toSecret, plain)
}

// encryptPlaintext wraps already-serialised JSON in Node-RED's envelope.
func encryptPlaintext(secret string, plain []byte) (json.RawMessage, error) {
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("credentials iv: %w", err)
	}
	stream, err := ctrStream(secret, iv)
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, len(plain))
	stream.XORKeyStream(sealed, plain)
	envelope := map[string]string{"$": hex.EncodeToString(iv) + base64.StdEncoding.EncodeToString(sealed)}
	return json.Marshal(envelope)
}

// decryptPlaintext returns the plaintext JSON object bytes inside blob.
func decryptPlaintext(secret string, blob json.RawMessage) ([]byte, error) {
	trimmed := bytes.TrimSpace(blob)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return []byte("{}"), nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &doc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrMalformedCredentials, err)
	}
	sealedJSON, encrypted := doc["$"]
	if !encrypted {
		return trimmed, nil
	}
	var sealed string
	if err := json.Unmarshal(sealedJSON, &sealed); err != nil {
		return nil, fmt.Errorf("%w: \"$\" is not a string", ErrMalformedCredentials)
	}
	return openSealed(secret, sealed)
}

// openSealed decrypts the "$" string and checks that it is a JSON object.
func openSealed(secret, sealed string) ([]byte, error) {
	if len(sealed) < ivHexLen {
		return nil, fmt.Errorf("%w: shorter than the IV", ErrMalformedCredentials)
	}
	iv, err := hex.DecodeString(sealed[:ivHexLen])
	if err != nil {
		return nil, fmt.Errorf("%w: iv: %v", ErrMalformedCredentials, err)
	}
	ciphertext, err := base64.StdEncoding.DecodeString(sealed[ivHexLen:])
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext: %v", ErrMalformedCredentials, err)
	}
	stream, err := ctrStream(secret, iv)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ciphertext))
	stream.XORKeyStream(plain, ciphertext)
	if !isJSONObject(plain) {
		return nil, ErrWrongSecret
	}
	return plain, nil
}

// ctrStream builds AES-256-CTR keyed with SHA-256 of the secret, as Node-RED does.
func ctrStream(secret string, iv []byte) (cipher.Stream, error) {
	key := sha256.Sum256([]byte(secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("credentials cipher: %w", err)
	}
	return cipher.NewCTR(block, iv), nil
}

// isJSONObject reports whether b is one valid JSON object. Wrong keys give
// random bytes, which almost never form one.
func isJSONObject(b []byte) bool {
	trimmed := bytes.TrimSpace(b)
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed)
}

func decodeObject(plain []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	out := map[string]any{}
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCredentials, err)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// compactJSON serialises v like JSON.stringify: compact and without the
// HTML escaping encoding/json does by default.
func compactJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
