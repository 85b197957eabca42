// Package npmtest serves test packages over the npm registry protocol, for tests of what npm installs (and
// what the packages' install scripts can do) without the public registry.
package npmtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// ServeInstallScript serves the minimum of the npm registry protocol for one package, name at version 1.0.0,
// whose install script is the Node.js code script, and returns the registry's URL (for npm_config_registry).
// The server stops when the test ends.
func ServeInstallScript(t testing.TB, name, script string) string {
	t.Helper()
	const version = "1.0.0"
	scripts := map[string]string{"install": "node install.js"}
	pkg, _ := json.Marshal(map[string]any{"name": name, "version": version, "scripts": scripts})
	tarball := Tgz(t, map[string]string{"package/package.json": string(pkg), "package/install.js": script})
	sha1sum, sha512sum := sha1.Sum(tarball), sha512.Sum512(tarball)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tarballPath := "/" + name + "/-/" + name + "-" + version + ".tgz"
	mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
		meta := map[string]any{"name": name, "version": version, "scripts": scripts,
			"dist": map[string]string{"tarball": srv.URL + tarballPath, "shasum": hex.EncodeToString(sha1sum[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:])}}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": name, "dist-tags": map[string]string{"latest": version},
			"versions": map[string]any{version: meta}})
	})
	mux.HandleFunc(tarballPath, func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) })
	return srv.URL
}

// Tgz packs files (path → content) as npm's tarballs are packed.
func Tgz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// JSString is s as a JavaScript string literal.
func JSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
