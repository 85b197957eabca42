package snapshots

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
)

// FuzzImportSnapshot feeds arbitrary snapshot documents (as an export writes them) and credential secrets to
// the import checks: they never panic, refuse with client errors only, and accepted credentials come out
// encrypted to the instance's secret with the same content that went in. Seeds: testdata/fuzz/FuzzImportSnapshot.
func FuzzImportSnapshot(f *testing.F) {
	sealer, err := domain.NewSealer("a-test-master-key-that-is-long-enough-1234")
	if err != nil {
		f.Fatal(err)
	}
	const instanceSecret = "the-instance-credential-secret"
	s, target := &Service{Sealer: sealer}, sealer.Seal(instanceSecret)
	creds, err := nodered.EncryptCredentials("exported-with-this", map[string]any{"b1": map[string]any{"user": "u", "password": "p"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"name":"v1","flows":[{"id":"t","type":"tab"}],"credentials":`+string(creds)+`}`), "exported-with-this")
	f.Fuzz(func(t *testing.T, doc []byte, userSecret string) {
		var c Content
		if json.Unmarshal(doc, &c) != nil {
			return // not JSON of the document's shape: the API's strict decoder refuses it (FuzzDecodeJSON)
		}
		out, err := s.checkImport(c, userSecret, target)
		if err != nil {
			if !domain.IsClientError(err) {
				t.Fatalf("a bad import is not a client error: %T %v", err, err)
			}
			return
		}
		got, err := nodered.DecryptCredentials(instanceSecret, json.RawMessage(out))
		if err != nil {
			t.Fatalf("imported credentials do not decrypt with the instance's secret: %v", err)
		}
		in := c.Credentials
		if len(bytes.TrimSpace(in)) == 0 || bytes.Equal(bytes.TrimSpace(in), []byte("null")) {
			in = json.RawMessage(`{}`)
		}
		want, err := nodered.DecryptCredentials(userSecret, in)
		if err != nil {
			t.Fatalf("accepted credentials that do not decrypt with the secret given: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("import changed the credentials: %v -> %v", want, got)
		}
	})
}
