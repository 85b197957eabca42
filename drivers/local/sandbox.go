package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/nodered"
)

// Node-RED runs whatever its flows say (exec and function nodes, any npm module), so each instance runs in
// its own bubblewrap sandbox: its own PID and IPC namespaces, a filesystem holding only its user dir
// (read-write), its stack, Node.js and the system's read-only files, a private /tmp, a minimal /etc, and
// its own unprivileged uid (SandboxUIDBase + its port) when the platform runs as root. Nothing of the data
// dir, other instances, the secret key, the database or the platform's binaries is visible inside.
//
// As root, bwrap sets the sandbox up with the platform's privileges (so it can reach instance files under a
// data dir only root may enter) and setpriv, inside, drops Node-RED to the instance's uid with no
// capabilities. As another user, bwrap sets it up in an unprivileged user namespace and Node-RED keeps the
// platform's uid, which sees nothing of the platform's files inside.
//
// bwrap's --die-with-parent is not used: it would tie every instance to the platform's life (and to the
// one OS thread that started it), while instances outlive a platform restart on purpose. The sandbox ends
// with Node-RED instead: when Node-RED (pid 2 inside) exits, the driver kills the sandbox's init (pid 1
// inside), and the kernel then kills whatever the flows left running.

// SandboxMode says whether the driver isolates the Node-RED it starts.
type SandboxMode string

const (
	SandboxAuto  SandboxMode = "auto"  // bubblewrap when it works, else unisolated with a warning
	SandboxBwrap SandboxMode = "bwrap" // bubblewrap or New fails
	SandboxNone  SandboxMode = "none"  // unisolated on purpose
)

// The sandbox's fixed layout, the same for every instance: Node-RED never learns where the data dir is.
const (
	sandboxDir      = "/flowyard"
	sandboxUserDir  = sandboxDir + "/" + userDirName
	sandboxStackDir = sandboxDir + "/stack"
	secretsFileName = "secrets.json"
)

// defaultSandboxUIDBase keeps instance uids (base + port, e.g. 212000-212999) clear of real accounts,
// nobody (65534) and the 100000-165535 ranges rootless containers commonly get in /etc/subuid.
const defaultSandboxUIDBase = 200000

// probeTimeout bounds the trial run of bwrap at New.
const probeTimeout = 10 * time.Second

// payloadTimeout bounds the wait for bwrap to start Node-RED inside the sandbox.
const payloadTimeout = 10 * time.Second

// sandbox is how the driver isolates instances, decided once by New.
type sandbox struct {
	bwrap   string // bwrap's path; "" when instances run unisolated
	asRoot  bool   // the platform runs as root: each instance gets its own uid, set by setpriv
	uidBase int
	reason  string // why instances are not isolated, when bwrap is ""
}

func (s sandbox) isolated() bool { return s.bwrap != "" }

// setprivArgs drop the sandbox's root to the instance's uid: no groups, no capabilities (not even in the
// bounding set), no new privileges (bwrap sets that too).
func setprivArgs(uid int) []string {
	id := strconv.Itoa(uid)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--inh-caps=-all",
		"--bounding-set=-all", "--no-new-privs", "--"}
}

// newSandbox finds bwrap and proves it works with a trial run of the arguments every instance gets.
func newSandbox(ctx context.Context, mode SandboxMode, uidBase int) (sandbox, error) {
	s := sandbox{asRoot: os.Geteuid() == 0, uidBase: uidBase}
	switch mode {
	case SandboxNone:
		s.reason = "the sandbox is turned off (instance sandbox: none)"
		return s, nil
	case SandboxAuto, SandboxBwrap:
	default:
		return s, fmt.Errorf("local driver: unknown sandbox mode %q (auto, bwrap or none)", mode)
	}
	err := s.probe(ctx)
	if err == nil {
		return s, nil
	}
	s.bwrap, s.reason = "", err.Error()
	if mode == SandboxBwrap {
		return s, fmt.Errorf("local driver: the instance sandbox is required but unusable: %w", err)
	}
	return s, nil
}

// probe sets s.bwrap when bwrap runs `true` in a sandbox like an instance's.
func (s *sandbox) probe(ctx context.Context) error {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return errors.New("bwrap not found (install the bubblewrap package)")
	}
	s.bwrap = path
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd, err := s.command(ctx, s.options(nil, []string{"PATH=/usr/bin:/bin"}), s.payload(s.uidBase, []string{"true"}))
	if err != nil {
		return err
	}
	defer closeFiles(cmd.ExtraFiles)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || err != nil {
		return fmt.Errorf("bwrap does not work here: %v: %s", errors.Join(ctx.Err(), err), strings.TrimSpace(string(out)))
	}
	return nil
}

// command runs payload in a sandbox made with options. The options go through a pipe (--args): on bwrap's
// command line, which every process on the host and in the sandbox can read, they would show Node-RED's
// environment and the data dir's path. The caller closes cmd.ExtraFiles once bwrap has started.
func (s sandbox) command(ctx context.Context, options, payload []string) (*exec.Cmd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bwrap arguments: %w", err)
	}
	go func() { // a pipe holds 64 KiB; bwrap reads the rest, or exits and the write fails
		io.WriteString(w, strings.Join(options, "\x00")+"\x00")
		w.Close()
	}()
	cmd := exec.CommandContext(ctx, s.bwrap, append([]string{"--args", "3", "--"}, payload...)...) // ExtraFiles[0] is fd 3
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = []string{} // bwrap needs nothing; Node-RED gets its environment through --setenv
	return cmd, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// sandboxMount is one host path visible inside the sandbox.
type sandboxMount struct {
	host, inside string
	writable     bool
}

// options are bwrap's options for a sandbox holding mounts (beside the system's files), whose payload
// runs with exactly env.
func (s sandbox) options(mounts []sandboxMount, env []string) []string {
	args := []string{"--unshare-pid", "--unshare-ipc", "--new-session",
		"--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"}
	made := map[string]bool{}
	args = append(args, systemMounts(made)...)
	for _, m := range mounts {
		bind := "--ro-bind"
		if m.writable {
			bind = "--bind"
		}
		args = append(args, bindArgs(made, bind, m.host, m.inside)...)
	}
	if len(mounts) > 0 {
		args = append(args, "--chdir", sandboxUserDir)
	}
	args = append(args, "--clearenv")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	if s.asRoot { // setpriv needs these to drop to the instance's uid; it gives them up with root
		args = append(args, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
	}
	return args
}

// payload is what bwrap runs in the sandbox: argv, as uid.
func (s sandbox) payload(uid int, argv []string) []string {
	if s.asRoot {
		return append(setprivArgs(uid), argv...)
	}
	return argv
}

// systemMounts are the host's programs and libraries, and the few files of /etc that Node.js, npm and DNS
// need, all read-only. /etc/passwd, shadow, the platform's config and everything else of /etc stay out.
func systemMounts(made map[string]bool) []string {
	var args []string
	for _, dir := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(dir)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(dir) // merged /usr: /lib -> usr/lib
			args = append(args, "--symlink", target, dir)
		case fi.IsDir():
			args = append(args, "--ro-bind", dir, dir)
		}
	}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
		"/etc/localtime", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates", "/etc/alternatives"} {
		args = append(args, bindArgs(made, "--ro-bind-try", f, f)...)
	}
	return args
}

// bindArgs mount host on inside with bind (--bind, --ro-bind, --ro-bind-try), first making inside's
// directory unless made says it exists: the parents bwrap would make on its own are root's, mode 0700, and
// the instance's uid could not get through them.
func bindArgs(made map[string]bool, bind, host, inside string) []string {
	var args []string
	if dir := filepath.Dir(inside); !made[dir] {
		made[dir] = true
		args = append(args, "--perms", "0755", "--dir", dir)
	}
	return append(args, bind, host, inside)
}

// uid is the uid instance Node-RED runs as on port: its own when the platform is root (ports are unique
// among instances, so uids are too), the platform's otherwise.
func (s sandbox) uid(port int) int {
	if s.isolated() && s.asRoot {
		return s.uidBase + port
	}
	return os.Geteuid()
}

// nodePaths are where Node-RED finds an instance's files.
type nodePaths struct {
	rt                                  nodered.Runtime // NodeBin and RedJS
	userDir, settings, storage, secrets string
}

// layout is an instance's files on the host (where the platform writes them) and as Node-RED sees them:
// the same paths when it runs unisolated, the sandbox's fixed layout otherwise.
type layout struct {
	host, node nodePaths
	mounts     []sandboxMount // what the sandbox shows of the host; nil unsandboxed
}

// layout lays out the files of the instance in dir; withStorage adds the storage plugin.
func (s sandbox) layout(dir string, rt nodered.Runtime, withStorage bool) layout {
	host := nodePaths{rt: rt, userDir: filepath.Join(dir, userDirName), settings: filepath.Join(dir, settingsFileName),
		storage: filepath.Join(dir, nodered.StoragePluginFile), secrets: filepath.Join(dir, secretsFileName)}
	if !s.isolated() {
		return layout{host: host, node: host}
	}
	node := nodePaths{rt: rt, userDir: sandboxUserDir, settings: sandboxDir + "/" + settingsFileName,
		storage: sandboxDir + "/" + nodered.StoragePluginFile, secrets: sandboxDir + "/" + secretsFileName}
	mounts := []sandboxMount{
		{host: host.userDir, inside: node.userDir, writable: true},
		{host: host.settings, inside: node.settings},
		{host: host.secrets, inside: node.secrets},
		{host: rt.Dir, inside: sandboxStackDir},
	}
	if withStorage {
		mounts = append(mounts, sandboxMount{host: host.storage, inside: node.storage})
	}
	node.rt.RedJS = insideStack(rt, rt.RedJS)
	node.rt.NodeBin = insideStack(rt, rt.NodeBin)
	if node.rt.NodeBin == rt.NodeBin { // the machine's node: bound where it is unless the system mounts hold it
		if prefix, ok := nodePrefix(rt.NodeBin); ok {
			mounts = append(mounts, sandboxMount{host: prefix, inside: prefix})
		}
	}
	return layout{host: host, node: node, mounts: mounts}
}

// insideStack maps a path in the stack directory to the sandbox; other paths stay as they are.
func insideStack(rt nodered.Runtime, path string) string {
	rel, err := filepath.Rel(rt.Dir, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return filepath.Join(sandboxStackDir, rel)
}

// nodePrefix returns the install prefix of a node binary outside /usr (e.g. /opt/node for
// /opt/node/bin/node, also when /usr/local/bin/node links there), which the sandbox must show at the same
// path; ok is false when the system mounts already hold it.
func nodePrefix(nodeBin string) (string, bool) {
	real, err := filepath.EvalSymlinks(nodeBin)
	if err != nil {
		return "", false // a missing node fails to start, sandbox or not
	}
	for _, sys := range []string{"/usr/", "/bin/", "/sbin/", "/lib"} {
		if strings.HasPrefix(real, sys) {
			return "", false
		}
	}
	return filepath.Dir(filepath.Dir(real)), true
}

// findPayload waits until the bwrap that p.cmd started runs Node-RED, and makes p that Node-RED (pid 2
// inside: the one the driver signals, probes and adopts) with its sandbox's init (bwrap's child, pid 1
// inside). A bwrap that fails first is killed and its output is in the error.
func (d *Driver) findPayload(inst *instance, p *process) error {
	monitor := p.pid
	deadline := time.Now().Add(payloadTimeout)
	for {
		if st, err := readProcStat(monitor); err != nil || st.state == 'Z' || st.state == 'X' {
			break
		}
		if sandboxInit := childOf(monitor); sandboxInit > 0 {
			if payload := childOf(sandboxInit); payload > 0 {
				p.pid, p.initPID = payload, sandboxInit
				if st, err := readProcStat(sandboxInit); err == nil {
					p.initTicks = st.startTicks
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if sandboxInit := childOf(monitor); sandboxInit > 0 {
		syscall.Kill(sandboxInit, syscall.SIGKILL) // pid 1 of the sandbox: everything in it goes too
	}
	signalGroup(monitor, syscall.SIGKILL)
	p.cmd.Wait()
	inst.logs.poll()
	return fmt.Errorf("start node-red in its sandbox: bwrap did not start it: %s", strings.Join(inst.logs.last(5), " | "))
}

// sandboxNote says, for the instance's log, how the instance on port is isolated.
func (d *Driver) sandboxNote(port int) string {
	if !d.sb.isolated() {
		return " (not isolated: " + d.sb.reason + ")"
	}
	if d.net == nil {
		return fmt.Sprintf(" in its sandbox as uid %d (network not filtered: %s)", d.sb.uid(port), d.netReason)
	}
	return fmt.Sprintf(" in its sandbox as uid %d, its network filtered", d.sb.uid(port))
}

// giveTo makes path, and everything under it when it is a directory, owned by uid (as its group too),
// unless uid is the platform's own. It never follows a symlink out of path: the files belong to a
// sandbox whose code may have planted links to the platform's files.
func giveTo(path string, uid int) error {
	if uid == os.Geteuid() {
		return nil
	}
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), filepath.Base(path), func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == uid {
			return nil
		}
		return root.Lchown(name, uid, uid)
	})
}

// Isolated reports whether instances run sandboxed with their network filtered, and if not, why. A
// sandbox without the filter is reported as "network not filtered: <why>".
func (d *Driver) Isolated() (bool, string) {
	switch {
	case !d.sb.isolated():
		return false, d.sb.reason
	case d.net == nil:
		return false, "network not filtered: " + d.netReason
	}
	return true, ""
}

// warnIfNotIsolated says at start, loudly, what a flow can do when instances are not isolated.
func (d *Driver) warnIfNotIsolated() {
	isolated, why := d.Isolated()
	switch {
	case isolated:
	case !d.sb.isolated():
		d.log.Warn("INSTANCES ARE NOT ISOLATED: every flow can read the data dir, the secret key, the database "+
			"and every other instance, and act as the platform", "reason", why)
	default:
		d.log.Warn("INSTANCES ARE NOT ISOLATED: every flow can reach the platform's own services over the network "+
			"(Temporal, the database, the MQTT broker, every other instance's Node-RED, the cloud's metadata) and act as the platform", "reason", why)
	}
}
