package api

import (
	"bufio"
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzEditorPath sends arbitrary paths on an editor origin through the proxy's path handling, from the request
// line the server reads to the request line the proxy writes to Node-RED. Whatever is accepted goes out as the
// exact bytes that were checked, and a server reading them stays under the admin root: decoded once, there is
// no dot segment to resolve, and decoding once more changes nothing; the request line is well formed, whatever
// the query. Refusals are 400s (404 for a path that does not start with a slash).
// Seeds: testdata/fuzz/FuzzEditorPath.
func FuzzEditorPath(f *testing.F) {
	for _, seed := range []string{"/", "/settings", "/vendor/monaco/dist/editor.js?v=4", "/%252e%252e/api/x",
		"/..%2f..%2fapi/x", "/nodes/@scope/mod", "/library/local/functions/%C3%BC/50%25.js", "x", "/a%5c..%5c"} {
		f.Add(seed)
	}
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:12000"}
	f.Fuzz(func(t *testing.T, rest string) {
		var in fasthttp.Request
		in.Header.SetHost("01jinstance0000000000000000.editor.localhost")
		in.Header.SetRequestURI(rest)
		rawPath := string(in.URI().PathOriginal())

		backendPath, err := editorBackendPath(rawPath)
		if err != nil {
			if err != errEditorPath && err != errRouteNotFound {
				t.Fatalf("%q refused with %v", rawPath, err)
			}
			return
		}
		if backendPath != editorAdminRoot+rawPath {
			t.Fatalf("%q: checked %q but would send %q", rawPath, rawPath, backendPath)
		}
		if !plainEditorQuery(in.URI().QueryString()) {
			return // refused with errEditorPath
		}
		sent := sentPath(t, editorRequest(&in, target, backendPath, "token", nil))
		if sent != backendPath {
			t.Fatalf("%q: checked %q, Node-RED is sent %q", rawPath, backendPath, sent)
		}
		assertStaysInAdminRoot(t, sent)
	})
}

// sentPath is the path of the request line req puts on the wire.
func sentPath(t *testing.T, req *fasthttp.Request) string {
	t.Helper()
	defer fasthttp.ReleaseRequest(req)
	var wire bytes.Buffer
	w := bufio.NewWriter(&wire)
	if err := req.Write(w); err != nil {
		t.Fatalf("write the request: %v", err)
	}
	_ = w.Flush()
	line, _, _ := strings.Cut(wire.String(), "\r\n")
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		t.Fatalf("request line %q", line)
	}
	path, _, _ := strings.Cut(parts[1], "?")
	return path
}

// assertStaysInAdminRoot reads sent as a server would: decoded once it is under the admin root with no dot
// segment to resolve, and a second decoding (by a careless server) gives the same path.
func assertStaysInAdminRoot(t *testing.T, sent string) {
	t.Helper()
	decoded, err := url.PathUnescape(sent)
	if err != nil {
		t.Fatalf("sent %q, which does not decode: %v", sent, err)
	}
	resolved := (&url.URL{Scheme: "http", Host: "x", Path: "/"}).ResolveReference(&url.URL{Path: decoded}).Path
	if resolved != decoded || !strings.HasPrefix(decoded, editorAdminRoot+"/") {
		t.Fatalf("sent %q: decoded %q resolves to %q", sent, decoded, resolved)
	}
	if strings.Count(decoded, "/") != strings.Count(sent, "/") {
		t.Fatalf("sent %q: decoding it splits segments (%q)", sent, decoded)
	}
	if twice, err := url.PathUnescape(decoded); err == nil && twice != decoded {
		t.Fatalf("sent %q: decodes to %q, then to %q", sent, decoded, twice)
	}
}
