package nodered

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// platformSecrets are variables the platform holds; no child process may see them.
var platformSecrets = map[string]string{
	"FLOWYARD_SECRET_KEY":     "platform-secret-key-0123456789abcdef",
	"FLOWYARD_DATABASE_URL":   "postgres://flowyard:db-password@db/flowyard",
	"FLOWYARD_ADMIN_PASSWORD": "admin-password",
	"FLOWYARD_STRIPE_KEY":     "sk_test_platform",
}

// TestInstallModulesHidesThePlatformEnvironment installs, from a registry served by the test, a module whose
// install script writes its environment to a file: the platform's FLOWYARD_ variables must not be in it.
func TestInstallModulesHidesThePlatformEnvironment(t *testing.T) {
	for name, value := range platformSecrets {
		t.Setenv(name, value)
	}
	envFile := filepath.Join(t.TempDir(), "install-env.json")
	registry := serveEnvProbeRegistry(t, envFile)
	t.Setenv("npm_config_registry", registry) // an npm setting the operator exported: it must reach npm
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := InstallModules(ctx, Runtime{NodeBin: nodeBin}, t.TempDir(), map[string]string{envProbeModule: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("the install script did not run: %v", err)
	}
	var env map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	for name := range env {
		if strings.HasPrefix(name, "FLOWYARD_") {
			t.Errorf("an install script can read %s", name)
		}
	}
	if env["HOME"] != os.Getenv("HOME") {
		t.Errorf("npm runs with HOME=%q, want the platform's %q (its cache and ~/.npmrc)", env["HOME"], os.Getenv("HOME"))
	}
}

const envProbeModule = "flowyard-env-probe"

// serveEnvProbeRegistry serves the minimum of the npm registry protocol for one package, whose install
// script writes process.env as JSON to envFile, and returns the registry's URL.
func serveEnvProbeRegistry(t *testing.T, envFile string) string {
	t.Helper()
	script := "require('fs').writeFileSync(" + jsString(t, envFile) + ", JSON.stringify(process.env));\n"
	pkg := `{"name":"` + envProbeModule + `","version":"1.0.0","scripts":{"install":"node install.js"}}`
	tarball := tgz(t, map[string]string{"package/package.json": pkg, "package/install.js": script})
	sha1sum, sha512sum := sha1.Sum(tarball), sha512.Sum512(tarball)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tarballPath := "/" + envProbeModule + "/-/" + envProbeModule + "-1.0.0.tgz"
	mux.HandleFunc("/"+envProbeModule, func(w http.ResponseWriter, r *http.Request) {
		version := map[string]any{"name": envProbeModule, "version": "1.0.0", "scripts": map[string]string{"install": "node install.js"},
			"dist": map[string]string{"tarball": srv.URL + tarballPath, "shasum": hex.EncodeToString(sha1sum[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:])}}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": envProbeModule, "dist-tags": map[string]string{"latest": "1.0.0"},
			"versions": map[string]any{"1.0.0": version}})
	})
	mux.HandleFunc(tarballPath, func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) })
	return srv.URL
}

func jsString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tgz packs files (path → content) as npm's tarballs are packed.
func tgz(t *testing.T, files map[string]string) []byte {
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
