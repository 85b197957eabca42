package api

import (
	"encoding/json"
	"testing"

	"github.com/flowyard/flowyard/domain"
)

// FuzzDecodeJSON feeds arbitrary bodies to the strict decoder: it must never panic, every refusal must be
// a client error (400), never an internal one, and what it accepts reads back the same once re-encoded.
// Seeds: testdata/fuzz/FuzzDecodeJSON.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"a","slug":"ab"}`, `{"name":5}`, `{"x":1}`, `[[[[`, `{"name":"a"} {}`, `"\u0000"`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createTeamRequest
		err := decodeJSON(body, &req, DefaultMaxJSONDepth)
		if err == nil {
			var again createTeamRequest
			if err := decodeJSON([]byte(mustJSON(req)), &again, DefaultMaxJSONDepth); err != nil || again != req {
				t.Fatalf("accepted body does not round-trip: %+v -> %+v (%v)", req, again, err)
			}
			return
		}
		de, ok := domain.AsError(err)
		if !ok || de.Kind != domain.KindInvalid {
			t.Fatalf("decode error is not a 400 domain error: %T %v", err, err)
		}
	})
}

// FuzzDeployFlows feeds arbitrary bodies of PUT /instances/{id}/flows to the parser the route uses: it never
// panics, refuses with client errors only, and what it accepts is sent on to Node-RED re-encoded, which must
// give the same request when read again. Seeds: testdata/fuzz/FuzzDeployFlows (flows.json exports).
func FuzzDeployFlows(f *testing.F) {
	f.Add([]byte(`{"flows":[]}`))
	f.Add([]byte(`{"flows":[{"id":"a","type":"tab"}],"rev":"1","credentials":{"a":{"user":"u"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseDeployFlows(body, DefaultMaxJSONDepth)
		if err != nil {
			if !domain.IsClientError(err) {
				t.Fatalf("bad flows are not a client error: %T %v", err, err)
			}
			return
		}
		sent, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted flows cannot be re-encoded: %v", err)
		}
		again, err := parseDeployFlows(sent, DefaultMaxJSONDepth)
		if err != nil {
			t.Fatalf("re-encoded flows are refused: %v\n%s", err, sent)
		}
		if resent, _ := json.Marshal(again); string(resent) != string(sent) {
			t.Fatalf("round trip changed the flows:\n%s\n%s", sent, resent)
		}
	})
}
