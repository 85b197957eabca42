package local

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowyard/flowyard/internal/npmtest"
)

const escapeProbeModule = "flowyard-escape-probe"

// installReport is what the escape probe's install script got.
type installReport struct {
	UID      int    `json:"uid"`
	Key      string `json:"key"`      // the data dir's secret key, or why it could not be read
	Write    string `json:"write"`    // "written" outside the user dir, or why not
	Temporal string `json:"temporal"` // "connected" to a listener standing for Temporal, or why not
}

// installEscapeProbe starts an instance whose spec names a palette module (as a member's blueprint or
// snapshot does) from a test registry (on 127.0.0.1); its install script tries to read the data dir's
// secret key, to write a file in the data dir and to connect to a listener standing for Temporal. It
// returns what the script reported, the file it tried to write, and the driver and registry.
func installEscapeProbe(t *testing.T, mode SandboxMode) (installReport, string, *Driver, string) {
	dataDir := t.TempDir()
	secretKey, outside := filepath.Join(dataDir, "secret.key"), filepath.Join(dataDir, "written-by-npm")
	if err := os.WriteFile(secretKey, []byte("platform-master-key"), 0o644); err != nil {
		t.Fatal(err)
	}
	temporal, _ := bannerListener(t, "127.0.0.1:0", "temporal")
	script := `const fs = require("fs"), path = require("path"), net = require("net");
const report = { uid: process.getuid() };
try { report.key = fs.readFileSync(` + npmtest.JSString(secretKey) + `, "utf8"); } catch (e) { report.key = "refused: " + e.code; }
try { fs.writeFileSync(` + npmtest.JSString(outside) + `, "escaped"); report.write = "written"; } catch (e) { report.write = "refused: " + e.code; }
const done = (temporal) => { report.temporal = temporal; fs.writeFileSync(path.join(__dirname, "report.json"), JSON.stringify(report)); };
net.connect({ host: "127.0.0.1", port: ` + strconv.Itoa(int(temporal.Port())) + ` })
  .on("connect", function () { this.destroy(); done("connected"); })
  .on("error", (e) => done("refused: " + e.code));
`
	registry := npmtest.ServeInstallScript(t, escapeProbeModule, script)
	t.Setenv("npm_config_registry", registry)
	d := newTestDriver(t, dataDir, func(c *Config) { c.Sandbox = mode })
	spec := testSpec("palette")
	spec.Modules = map[string]string{escapeProbeModule: "1.0.0"}
	startReady(t, d, spec)
	raw, err := os.ReadFile(filepath.Join(d.instanceDir(spec.InstanceID), userDirName, "node_modules", escapeProbeModule, "report.json"))
	if err != nil {
		t.Fatalf("the install script did not run: %v", err)
	}
	var report installReport
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	t.Logf("the install script got: %s", raw)
	return report, outside, d, registry
}

// TestPaletteInstallScriptsRunInTheSandbox: npm runs the install scripts of modules members name, so it runs in
// the instance's sandbox, as the instance's uid, where the platform's files do not exist.
func TestPaletteInstallScriptsRunInTheSandbox(t *testing.T) {
	report, outside, d, registry := installEscapeProbe(t, SandboxBwrap)
	if !strings.HasPrefix(report.Key, "refused") {
		t.Errorf("the install script read the secret key: %q", report.Key)
	}
	if _, err := os.Stat(outside); report.Write == "written" || err == nil {
		t.Errorf("the install script wrote %s (it reported %q)", outside, report.Write)
	}
	if os.Geteuid() == 0 && report.UID < defaultSandboxUIDBase {
		t.Errorf("the install script ran as uid %d, not the instance's", report.UID)
	}
	if os.Geteuid() != 0 {
		return // no network filter
	}
	if report.Temporal != "refused: EHOSTUNREACH" {
		t.Errorf("the install script reached Temporal: %q", report.Temporal)
	}
	// npm reached the registry (the module is installed); Node-RED may not any more.
	members, _ := readFilter(t, d.net)
	if m := members[report.UID]; m.run == "" || slices.Contains(m.allowed, addrPortOf(t, registry)) {
		t.Errorf("after npm, the instance's filter entry is %+v: want it without the registry %s", m, registry)
	}
}

// TestPaletteInstallScriptsEscapeUnsandboxed shows that the probe can see an escape: without the sandbox, the
// script reads the key and writes outside the user dir.
func TestPaletteInstallScriptsEscapeUnsandboxed(t *testing.T) {
	report, outside, _, _ := installEscapeProbe(t, SandboxNone)
	if report.Key != "platform-master-key" || report.Write != "written" || report.Temporal != "connected" {
		t.Errorf("unsandboxed, the probe got %+v, want the key, a written file and Temporal", report)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("unsandboxed, %s is missing: %v", outside, err)
	}
}
