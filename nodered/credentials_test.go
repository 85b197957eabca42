package nodered

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCredentialsRoundTrip(t *testing.T) {
	creds := map[string]any{
		"broker1": map[string]any{"user": "mqttuser", "password": "p<w>&\"ünïcode\u2028"},
		"req1":    map[string]any{"user": "alice", "password": "s3cr3t-pw"},
	}
	blob, err := EncryptCredentials("secret-a", creds)
	if err != nil {
		t.Fatal(err)
	}
	var envelope map[string]string
	if err := json.Unmarshal(blob, &envelope); err != nil || len(envelope) != 1 || len(envelope["$"]) <= ivHexLen {
		t.Fatalf("envelope %s is not {\"$\": iv+ciphertext} (%v)", blob, err)
	}
	got, err := DecryptCredentials("secret-a", blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, creds) {
		t.Fatalf("round trip: got %v, want %v", got, creds)
	}
	if _, err := DecryptCredentials("secret-b", blob); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong secret: got %v, want ErrWrongSecret", err)
	}
	again, err := EncryptCredentials("secret-a", creds)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) == string(blob) {
		t.Fatal("two encryptions gave the same blob: the IV is not random")
	}
}

// TestDecryptNodeRedFixture decrypts a flows_cred.json that node-red 4.1.15
// wrote (secret "nr-wrote-this"), so the format stays checked without Node-RED.
func TestDecryptNodeRedFixture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "flows_cred.node-red-4.1.15.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptCredentials("nr-wrote-this", raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"req1":    map[string]any{"user": "alice", "password": "s3cr3t-pw"},
		"broker1": map[string]any{"user": "mqttuser", "password": "mqtt-pw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decrypted %v, want %v", got, want)
	}
}

func TestCredentialsPlaintextIsCompactJSON(t *testing.T) {
	// Node-RED encrypts JSON.stringify(creds): compact, "<" not escaped.
	blob, err := EncryptCredentials("s", map[string]any{"n1": map[string]any{"password": "<&>"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := decryptPlaintext("s", blob)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"n1":{"password":"<&>"}}`; string(plain) != want {
		t.Fatalf("plaintext %s, want %s", plain, want)
	}
}

func TestDecryptCredentialsEmptyAndPlain(t *testing.T) {
	for _, blob := range []string{"", "  ", "null", "{}", " { } "} {
		got, err := DecryptCredentials("any", json.RawMessage(blob))
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("DecryptCredentials(%q) = %v, %v; want empty map", blob, got, err)
		}
	}
	// credentialSecret:false stores credentials unencrypted.
	got, err := DecryptCredentials("any", json.RawMessage(`{"n1":{"user":"u","port":1883}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"n1": map[string]any{"user": "u", "port": json.Number("1883")}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plain: got %v, want %v", got, want)
	}
}

func TestDecryptCredentialsMalformed(t *testing.T) {
	for _, blob := range []string{
		`[1,2]`, `{"$": 5}`, `{"$": "abc"}`, `{"$": "zz` + strings.Repeat("0", 30) + `AAAA"}`,
		`{"$": "` + strings.Repeat("0", 32) + `!!!"}`, `not json`,
	} {
		_, err := DecryptCredentials("s", json.RawMessage(blob))
		if !errors.Is(err, ErrMalformedCredentials) {
			t.Errorf("DecryptCredentials(%s): got %v, want ErrMalformedCredentials", blob, err)
		}
	}
}

func TestReencryptCredentials(t *testing.T) {
	blob, err := EncryptCredentials("old", map[string]any{"n1": map[string]any{"token": "t", "big": json.Number("12345678901234567890")}})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := ReencryptCredentials("old", "new", blob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecryptCredentials("old", moved); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("old secret still opens the re-encrypted blob: %v", err)
	}
	oldPlain, _ := decryptPlaintext("old", blob)
	newPlain, err := decryptPlaintext("new", moved)
	if err != nil {
		t.Fatal(err)
	}
	if string(oldPlain) != string(newPlain) {
		t.Fatalf("plaintext changed: %s -> %s", oldPlain, newPlain)
	}
	if _, err := ReencryptCredentials("wrong", "new", blob); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("re-encrypt with a wrong secret: got %v, want ErrWrongSecret", err)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func FuzzDecryptCredentials(f *testing.F) {
	valid, err := EncryptCredentials("seed-secret", map[string]any{"n1": map[string]any{"user": "u", "password": "p"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("seed-secret", []byte(valid))
	f.Add("seed-secret", []byte(`{}`))
	f.Add("", []byte(`{"$":"00000000000000000000000000000000"}`))
	f.Fuzz(func(t *testing.T, secret string, blob []byte) {
		creds, err := DecryptCredentials(secret, blob)
		if err != nil {
			if !errors.Is(err, ErrWrongSecret) && !errors.Is(err, ErrMalformedCredentials) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if creds == nil {
			t.Fatal("nil map without an error")
		}
		// Whatever decrypts must survive a round trip under any secret.
		again, err := EncryptCredentials(secret+"x", creds)
		if err != nil {
			t.Fatalf("re-encrypt decrypted credentials: %v", err)
		}
		back, err := DecryptCredentials(secret+"x", again)
		if err != nil {
			t.Fatalf("decrypt re-encrypted credentials: %v", err)
		}
		if !reflect.DeepEqual(jsonText(back), jsonText(creds)) {
			t.Fatalf("round trip changed credentials: %v -> %v", creds, back)
		}
	})
}
