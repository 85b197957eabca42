package storage

import (
	"testing"

	"github.com/flowyard/flowyard/domain"
)

// FuzzDecodeCursor feeds arbitrary ?cursor= values to the decoder: it refuses with client errors only, and
// what it accepts is text the store can compare against (no NUL, valid UTF-8), which encodes back to a cursor
// that decodes the same. Seeds: testdata/fuzz/FuzzDecodeCursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor("0ZqW3k8yBf"))
	f.Fuzz(func(t *testing.T, cursor string) {
		id, err := DecodeCursor(cursor)
		if err != nil {
			if !domain.IsClientError(err) {
				t.Fatalf("a bad cursor is not a client error: %T %v", err, err)
			}
			return
		}
		if !domain.Storable(id) {
			t.Fatalf("cursor %q decodes to %q, which the store refuses", cursor, id)
		}
		if again, err := DecodeCursor(EncodeCursor(id)); err != nil || again != id {
			t.Fatalf("cursor of %q does not round-trip: %q %v", id, again, err)
		}
	})
}
