package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/internal/childenv"
	"github.com/flowyard/flowyard/nodered"
)

const (
	userDirName      = "userdir"
	settingsFileName = "settings.js"
	modulesFileName  = "modules.json"
)

func validateSpec(spec drivers.InstanceSpec) error {
	if err := drivers.ValidateID(spec.InstanceID); err != nil {
		return err
	}
	var missing []string
	if spec.NodeRedVersion == "" {
		missing = append(missing, "NodeRedVersion")
	}
	if spec.AdminToken == "" {
		missing = append(missing, "AdminToken")
	}
	if spec.CredentialSecret == "" {
		missing = append(missing, "CredentialSecret")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s required", drivers.ErrInvalidSpec, strings.Join(missing, ", "))
	}
	if spec.MemoryMB < 0 || spec.CPUPercent < 0 {
		return fmt.Errorf("%w: negative limits", drivers.ErrInvalidSpec)
	}
	return nil
}

// specHash identifies a spec: a runtime started from another hash is restarted by Start. encoding/json
// sorts map keys, so equal specs hash equally.
func specHash(spec drivers.InstanceSpec) string {
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// launch prepares the instance directory and starts Node-RED. inst.op and the instance's file lock are held.
func (d *Driver) launch(ctx context.Context, inst *instance, spec drivers.InstanceSpec, hash string) (drivers.Status, error) {
	rt, err := d.stack(ctx, spec.NodeRedVersion, spec.NodeVersion)
	if err != nil {
		return drivers.Status{}, err
	}
	files := d.sb.layout(inst.dir, rt, spec.ForgeURL != "")
	if err := os.MkdirAll(files.host.userDir, 0o755); err != nil {
		return drivers.Status{}, err
	}
	port, err := d.allocatePort(ctx, inst.dir)
	if err != nil {
		return drivers.Status{}, err
	}
	uid := d.sb.uid(port)
	// In the network filter before anything of the instance runs: npm runs the modules' install scripts.
	run := d.netRun(ctx, uid, port, spec.ForgeURL)
	if err := d.admitNet(run); err != nil {
		return drivers.Status{}, err
	}
	p, err := d.run(ctx, inst, spec, files, port, uid, run, hash)
	if err != nil {
		d.releaseNet(run)
		return drivers.Status{}, err
	}
	d.watchReady(inst, p)
	return d.snapshot(inst), nil
}

// run installs the instance's modules, writes its settings and starts its Node-RED as uid, with run its
// entry in the network filter.
func (d *Driver) run(ctx context.Context, inst *instance, spec drivers.InstanceSpec, files layout, port, uid int,
	run *netMember, hash string) (*process, error) {
	if err := d.installModules(ctx, inst, files, uid, run, spec.Modules); err != nil {
		return nil, err
	}
	env, err := d.writeSettings(inst, spec, port, files, uid)
	if err != nil {
		return nil, err
	}
	cmd, err := d.command(files, spec, uid, env)
	if err != nil {
		return nil, err
	}
	return d.spawn(inst, cmd, spec, port, hash, run)
}

// command runs Node-RED as uid with exactly env, in its sandbox when the driver has one.
func (d *Driver) command(files layout, spec drivers.InstanceSpec, uid int, env []string) (*exec.Cmd, error) {
	argv := append([]string{files.node.rt.NodeBin}, nodeArgs(files.node.rt, spec, files.node.userDir, files.node.settings)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = files.host.userDir, env
	if d.sb.isolated() {
		var err error
		// Not the start's context: Node-RED outlives it.
		if cmd, err = d.sb.command(context.Background(), d.sb.options(files.mounts, env), d.sb.payload(uid, argv)); err != nil {
			return nil, err
		}
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // own group: not hit by signals meant for the platform
	return cmd, nil
}

// stack returns the installed stack for a Node-RED and Node.js version, installing it on first use.
// EnsureStack runs `node --version` on every call, so a stack found once is remembered while its files exist.
func (d *Driver) stack(ctx context.Context, nodeRedVersion, nodeVersion string) (nodered.Runtime, error) {
	key := nodeRedVersion + "/" + nodeVersion
	d.mu.Lock()
	rt, ok := d.stacks[key]
	d.mu.Unlock()
	if ok && fileExists(rt.NodeBin) && fileExists(rt.RedJS) {
		return rt, nil
	}
	rt, err := nodered.EnsureStack(ctx, d.cfg.StacksDir, nodeRedVersion, nodeVersion, d.log)
	if errors.Is(err, nodered.ErrNodeMissing) {
		return rt, fmt.Errorf("%w: %w", drivers.ErrNodeMissing, err)
	}
	if errors.Is(err, nodered.ErrIncompatibleNode) {
		// No retry makes a Node-RED run on a Node.js its engines refuse: the stack itself is wrong.
		return rt, fmt.Errorf("%w: %w", drivers.ErrInvalidSpec, err)
	}
	if err != nil {
		return rt, err
	}
	if !fileExists(rt.NodeBin) {
		return rt, fmt.Errorf("%w: %s", drivers.ErrNodeMissing, rt.NodeBin)
	}
	d.mu.Lock()
	d.stacks[key] = rt
	d.mu.Unlock()
	return rt, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// nodeArgs builds `[--max-old-space-size=N] red.js -u userDir -s settings.js [--safe]`. The heap cap is
// about 75% of the memory limit, leaving room for code, buffers and native memory.
func nodeArgs(rt nodered.Runtime, spec drivers.InstanceSpec, userDir, settings string) []string {
	var args []string
	if spec.MemoryMB > 0 {
		args = append(args, fmt.Sprintf("--max-old-space-size=%d", max(spec.MemoryMB*3/4, 32)))
	}
	args = append(args, rt.RedJS, "-u", userDir, "-s", settings)
	if spec.SafeMode {
		args = append(args, "--safe")
	}
	return args
}

// spawn starts cmd with its output in the instance's log file, inside the instance's cgroup when limits
// are enforced, and records it in the pidfile.
func (d *Driver) spawn(inst *instance, cmd *exec.Cmd, spec drivers.InstanceSpec, port int, hash string, run *netMember) (*process, error) {
	cgroup, err := d.cg.prepare(spec.InstanceID, spec.MemoryMB, spec.CPUPercent)
	if err != nil {
		return nil, err
	}
	if cgroup != nil {
		defer cgroup.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cgroup.Fd())
	}
	logFile, err := os.OpenFile(filepath.Join(inst.dir, logFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close() // the child keeps its own copy
	defer closeFiles(cmd.ExtraFiles)
	cmd.Stdout, cmd.Stderr = logFile, logFile

	p := &process{done: make(chan struct{}), port: port, specHash: hash, safe: spec.SafeMode, cmd: cmd,
		limited: cgroup != nil && spec.MemoryMB > 0, token: spec.AdminToken, sandboxed: d.sb.isolated(), net: run}
	inst.logs.setOnLine(func(l drivers.LogLine) { noteLogLine(p, l) })
	inst.logs.system("starting node-red %s on port %d%s%s", spec.NodeRedVersion, port,
		map[bool]string{true: " in safe mode"}[spec.SafeMode], d.sandboxNote(port))
	if spec.MemoryMB > 0 && cgroup == nil {
		inst.logs.system("memory limit of %d MB not enforced (no delegated cgroup v2); only the V8 heap is capped", spec.MemoryMB)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", drivers.ErrNodeMissing, err)
		}
		return nil, fmt.Errorf("start node-red: %w", err)
	}
	p.pid, p.startedAt = cmd.Process.Pid, time.Now()
	if p.sandboxed {
		if err := d.findPayload(inst, p); err != nil {
			return nil, err
		}
	}
	if st, err := readProcStat(p.pid); err == nil {
		p.startTicks = st.startTicks
	}
	inst.mu.Lock()
	inst.proc = p
	inst.status = runningStatus(p, drivers.StateStarting)
	inst.mu.Unlock()
	go func() {
		cmd.Wait()
		code, reason := exitReason(cmd, p.sandboxed)
		d.exited(inst, p, code, reason)
	}()
	if err := writePidFile(inst.dir, p.pidFile()); err != nil {
		// Without a pidfile a later driver could not re-adopt it; do not leave it running.
		p.stopping.Store(true)
		signalGroup(p.pid, syscall.SIGKILL)
		<-p.done
		return nil, err
	}
	d.log.Info("node-red started", "instance", inst.id, "pid", p.pid, "port", port, "version", spec.NodeRedVersion)
	return p, nil
}

// noteLogLine watches a run's output for the lines readiness depends on.
func noteLogLine(p *process, l drivers.LogLine) {
	switch {
	case strings.HasPrefix(l.Msg, "Waiting for missing types"):
		p.missingTypes.Store(true)
	case l.Msg == "Started flows":
		p.startedFlows.Store(true)
	}
}

// writeSettings writes settings.js and the secrets file it reads, gives the instance's files to uid, and
// returns the child's environment: a minimal base (never the platform's own environment, which holds its
// secrets), the user's variables, then Flowyard's, which flows cannot read (envVarExcludes). The instance's
// secrets are in no environment: only in the secrets file, which uid alone may read.
func (d *Driver) writeSettings(inst *instance, spec drivers.InstanceSpec, port int, files layout, uid int) ([]string, error) {
	platform := map[string]string{envInstanceDir: inst.dir, nodered.EnvInstanceID: spec.InstanceID}
	var storage string
	if spec.ForgeURL != "" {
		if _, err := nodered.WriteStoragePlugin(inst.dir); err != nil {
			return nil, err
		}
		storage, platform[nodered.EnvForgeURL] = files.node.storage, spec.ForgeURL
	}
	tokens := map[string]string{tokenDigest(spec.AdminToken): "*"}
	if spec.ReadToken != "" {
		tokens[tokenDigest(spec.ReadToken)] = "read"
	}
	js, err := nodered.RenderSettings(nodered.SettingsParams{
		Port: port, Host: listenAddress(port), HTTPAdminRoot: drivers.AdminRoot, HTTPNodeRoot: drivers.NodeRoot,
		SecretsFile: files.node.secrets, AdminTokens: tokens, StorageModule: storage,
		EnvVarExcludes: slices.Sorted(maps.Keys(platform)), Settings: spec.Settings, Title: spec.Name,
	})
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(nodered.Secrets{CredentialSecret: spec.CredentialSecret, InstanceToken: spec.InstanceToken})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(files.host.secrets, secrets, 0o400); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(files.host.settings, js, 0o400); err != nil {
		return nil, err
	}
	for _, path := range []string{files.host.secrets, files.host.settings, files.host.userDir} {
		if err := giveTo(path, uid); err != nil {
			return nil, fmt.Errorf("give %s to uid %d: %w", filepath.Base(path), uid, err)
		}
	}
	return d.childEnv(inst.id, files.node.rt, files.node.userDir, spec.Env, platform), nil
}

func (d *Driver) childEnv(id string, rt nodered.Runtime, userDir string, user, platform map[string]string) []string {
	env := childenv.New().
		// The stack's node first, so npm (palette installs) and node-gyp use the same Node.js.
		Set("PATH", filepath.Dir(rt.NodeBin)+":/usr/local/bin:/usr/bin:/bin").
		Set("HOME", userDir).
		Set("NODE_ENV", "production")
	for k, v := range user {
		if strings.HasPrefix(k, "FLOWYARD_") || k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			d.log.Warn("dropping user environment variable", "instance", id, "name", k)
			continue
		}
		env.Set(k, v)
	}
	for k, v := range platform {
		env.Set(k, v)
	}
	return env.List()
}

func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// installModules installs the spec's palette modules unless the same set (for the same Node.js) was
// installed before and is still on disk. Modules dropped from the spec are not uninstalled.
func (d *Driver) installModules(ctx context.Context, inst *instance, files layout, uid int, run *netMember, modules map[string]string) error {
	if len(modules) == 0 {
		return nil
	}
	rt, userDir := files.host.rt, files.host.userDir
	want, _ := json.Marshal(map[string]any{"node": rt.NodeVersion, "modules": modules})
	if have, err := os.ReadFile(filepath.Join(inst.dir, modulesFileName)); err == nil && string(have) == string(want) && modulesPresent(userDir, modules) {
		return nil
	}
	var err error
	if d.sb.isolated() {
		err = d.sandboxedNpm(ctx, inst, files, uid, run, modules)
	} else {
		err = nodered.InstallModules(ctx, rt, userDir, modules)
	}
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(inst.dir, modulesFileName), want, 0o644)
}

// sandboxedNpm runs npm install in the instance's sandbox, as its uid: the modules are named by members
// (in blueprints and snapshots) and npm runs their install scripts, which must see no more than the
// instance's Node-RED does. The sandbox shows only the user dir (read-write) and the stack; npm gets the
// operator's registry and proxy settings, but not the platform's npm cache, ~/.npmrc or CA file.
func (d *Driver) sandboxedNpm(ctx context.Context, inst *instance, files layout, uid int, run *netMember, modules map[string]string) error {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("install modules: %w", nodered.ErrNpmMissing)
	}
	args, err := nodered.PrepareModuleInstall(files.host.userDir, modules)
	if err != nil {
		return err
	}
	if err := giveTo(files.host.userDir, uid); err != nil {
		return fmt.Errorf("give the user dir to uid %d: %w", uid, err)
	}
	var mounts []sandboxMount
	for _, m := range files.mounts {
		if m.inside == sandboxUserDir || m.inside == sandboxStackDir || m.host == m.inside { // not settings or secrets
			mounts = append(mounts, m)
		}
	}
	env := nodered.SandboxNpmEnv(map[string]string{"PATH": filepath.Dir(files.node.rt.NodeBin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME": sandboxUserDir})
	// --die-with-parent: unlike Node-RED, npm must not outlive the start that runs it (or its cancellation).
	options := append(d.sb.options(mounts, env), "--die-with-parent")
	ctx, cancel := context.WithTimeout(ctx, npmTimeout)
	defer cancel()
	cmd, err := d.sb.command(ctx, options, d.sb.payload(uid, append([]string{npm}, args...)))
	if err != nil {
		return err
	}
	defer closeFiles(cmd.ExtraFiles)
	inst.logs.system("installing %d palette module(s) in the sandbox as uid %d", len(modules), uid)
	if run != nil { // npm's registry and proxies may be local (a registry mirror): reachable while npm runs
		if err := d.admitNet(new(run.with(d.endpoints(ctx, urlsIn(env)...)...))); err != nil {
			return err
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("install modules: npm install: %w\n%s", errors.Join(ctx.Err(), err), lastBytes(out, 4096))
	}
	return d.admitNet(run)
}

// npmTimeout bounds a sandboxed npm install.
const npmTimeout = 10 * time.Minute

// lastBytes is the end of out, which names npm's real error (E404, ETARGET, a failed build).
func lastBytes(out []byte, n int) string {
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.TrimSpace(string(out))
}

func modulesPresent(userDir string, modules map[string]string) bool {
	for name := range modules {
		if _, err := os.Stat(filepath.Join(userDir, "node_modules", name, "package.json")); err != nil {
			return false
		}
	}
	return true
}
