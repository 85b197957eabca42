package nodered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/internal/childenv"
)

// npmOutputTail is how much of npm's output an error carries.
const npmOutputTail = 4096

// modulePattern is npm's rule for package names (lowercase, optional scope,
// no leading dot, dash or underscore), which also keeps names from being read
// as npm flags.
var modulePattern = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$`)

// moduleVersionPattern accepts exact versions, dist-tags and simple ranges
// ("1.2.3", "latest", "~0.4.1", "^2", "1.x").
var moduleVersionPattern = regexp.MustCompile(`^[0-9A-Za-z^~*][0-9A-Za-z.^~*+-]*$`)

// InstallModules installs palette modules (name → version or range; "" means
// the latest) into an instance's userDir with npm, the way Node-RED's palette
// manager does, recording them in userDir/package.json. The stack's node is
// first in PATH so that native modules build for the Node.js that runs them.
func InstallModules(ctx context.Context, rt Runtime, userDir string, modules map[string]string) error {
	if len(modules) == 0 {
		return nil
	}
	args, err := PrepareModuleInstall(userDir, modules)
	if err != nil {
		return err
	}
	path := filepath.Dir(rt.NodeBin) + string(os.PathListSeparator) + os.Getenv("PATH")
	if _, err := runNpm(ctx, userDir, map[string]string{"PATH": path}, args...); err != nil {
		return fmt.Errorf("install modules: %w", err)
	}
	return nil
}

// PrepareModuleInstall validates modules, gives userDir the package.json npm installs into, and returns the
// arguments of the npm command (run in userDir) that installs them: for a caller that runs npm its own way,
// in a sandbox for instance.
func PrepareModuleInstall(userDir string, modules map[string]string) ([]string, error) {
	specs, err := moduleSpecs(modules)
	if err != nil {
		return nil, fmt.Errorf("install modules: %w", err)
	}
	if err := ensureUserDirPackage(userDir); err != nil {
		return nil, fmt.Errorf("install modules: %w", err)
	}
	return append([]string{"install", "--save"}, specs...), nil
}

// moduleSpecs validates modules and returns "name@version" arguments in a
// stable order.
func moduleSpecs(modules map[string]string) ([]string, error) {
	var specs []string
	var errs []error
	for name, version := range modules {
		if len(name) > 214 || !modulePattern.MatchString(name) {
			errs = append(errs, fmt.Errorf("module name %q is not an npm package name", name))
			continue
		}
		if version == "" {
			specs = append(specs, name)
			continue
		}
		if !moduleVersionPattern.MatchString(version) {
			errs = append(errs, fmt.Errorf("module %s: version %q is not a version, range or tag", name, version))
			continue
		}
		specs = append(specs, name+"@"+version)
	}
	slices.Sort(specs)
	return specs, errors.Join(errs...)
}

// ensureUserDirPackage creates userDir/package.json as Node-RED would, so
// that npm installs into userDir/node_modules and not a parent directory.
func ensureUserDirPackage(userDir string) error {
	if err := os.MkdirAll(userDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(userDir, "package.json")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	pkg := `{"name":"node-red-project","description":"A Node-RED Project","version":"0.0.1","private":true}` + "\n"
	return os.WriteFile(path, []byte(pkg), 0o644)
}

// npmNetworkSettings are the npm settings an operator may export for the
// platform to pass on to npm that name no file: its registry and proxy. npm
// reads them in either case.
var npmNetworkSettings = []string{"registry", "proxy", "https_proxy", "noproxy", "strict_ssl"}

// npmSettings are those and the settings naming the platform's files: its
// cache, user config and certificate authority.
var npmSettings = append(slices.Clone(npmNetworkSettings), "cache", "userconfig", "cafile")

// NpmEnv is npm's whole environment: the minimum of childenv, the npm and
// proxy settings the operator exported, and set. Never the platform's own
// environment: npm runs the install scripts of modules that members name.
func NpmEnv(set map[string]string) []string {
	return npmEnv(npmSettings, set)
}

// SandboxNpmEnv is NpmEnv for an npm in an instance's sandbox, which shows
// none of the platform's files: the operator's network settings pass, not
// its cache, user config or CA file.
func SandboxNpmEnv(set map[string]string) []string {
	return npmEnv(npmNetworkSettings, set)
}

func npmEnv(settings []string, set map[string]string) []string {
	inherit := slices.Clone(childenv.Proxy)
	for _, name := range settings {
		inherit = append(inherit, "npm_config_"+name, "NPM_CONFIG_"+strings.ToUpper(name))
	}
	env := childenv.New(inherit...).
		Set("npm_config_update_notifier", "false").Set("npm_config_fund", "false").Set("npm_config_audit", "false")
	for name, value := range set {
		env.Set(name, value)
	}
	return env.List()
}

// runNpm runs npm in dir with NpmEnv(env) and returns its stdout. On failure
// the error holds the tail of npm's combined output, which names the real
// cause (E404, ETARGET, a failed build, ...).
func runNpm(ctx context.Context, dir string, env map[string]string, args ...string) ([]byte, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, ErrNpmMissing
	}
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	cmd.Env = NpmEnv(env)
	// npm starts children (install scripts); cancel kills the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	tail := &tailBuffer{max: npmOutputTail}
	cmd.Stdout = io.MultiWriter(&stdout, tail)
	cmd.Stderr = tail
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("npm %s: %w\n%s", args[0], err, strings.TrimSpace(tail.String()))
	}
	return stdout.Bytes(), nil
}

// tailBuffer keeps the last max bytes written to it; stdout and stderr are
// copied by different goroutines, hence the lock.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
