package api

import (
	"testing"

	"github.com/flowyard/flowyard/domain"
)

// FuzzDecodeJSON feeds arbitrary bodies to the strict decoder: it must never panic, and every refusal must be
// a client error (400), never an internal one.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"a","slug":"ab"}`, `{"name":5}`, `{"x":1}`, `[[[[`, `{"name":"a"} {}`, `"\u0000"`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createTeamRequest
		err := decodeJSON(body, &req, DefaultMaxJSONDepth)
		if err == nil {
			return
		}
		de, ok := domain.AsError(err)
		if !ok || de.Kind != domain.KindInvalid {
			t.Fatalf("decode error is not a 400 domain error: %T %v", err, err)
		}
	})
}
