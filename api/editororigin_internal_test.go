package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestEditorHosts reads Host headers as the editor origins' router does.
func TestEditorHosts(t *testing.T) {
	const id = "06h4xqbr08vs0z7pqhgj7s2y3c"
	tls := newEditorOrigins("https://flowyard.example.com:443", "Editor.Example.com.")
	assert.Equal(t, "https://"+id+".editor.example.com", tls.origin(id), "a default port is not written")
	dev := newEditorOrigins("http://127.0.0.1:8080", "")
	assert.Equal(t, "http://"+id+".editor.localhost:8080", dev.origin(id))
	for host, want := range map[string]struct {
		id     string
		editor bool
	}{
		id + ".editor.example.com":              {id, true},
		id + ".editor.example.com:443":          {id, true},
		id + ".EDITOR.example.com.":             {id, true},
		id + ".editor.example.com:8443":         {"", true},
		"editor.example.com":                    {"", true},
		"x." + id + ".editor.example.com":       {"", true},
		"not-an-instance.editor.example.com":    {"", true},
		id[:25] + "i.editor.example.com":        {"", true}, // i is not Crockford base32
		"flowyard.example.com":                  {"", false},
		id + ".editor.example.com.evil.example": {"", false},
		id + "editor.example.com":               {"", false},
		"[::1]:443":                             {"", false},
		id + ".editor.example.com:443:443":      {"", false}, // not a host name at all
		"":                                      {"", false},
	} {
		got, editor := tls.instanceOf(host)
		assert.Equal(t, want.id, got, host)
		assert.Equal(t, want.editor, editor, host)
	}
}
