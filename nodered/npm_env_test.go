package nodered

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowyard/flowyard/internal/npmtest"
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

// serveEnvProbeRegistry serves a registry with one package, whose install script writes process.env as JSON
// to envFile, and returns the registry's URL.
func serveEnvProbeRegistry(t *testing.T, envFile string) string {
	t.Helper()
	return npmtest.ServeInstallScript(t, envProbeModule,
		"require('fs').writeFileSync("+npmtest.JSString(envFile)+", JSON.stringify(process.env));\n")
}
