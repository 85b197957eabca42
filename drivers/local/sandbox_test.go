package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

// The red team: a member's flow with a function node (which escapes Node-RED's vm to Node's own fs,
// process and net) and an exec node (a shell) tries to reach the platform and another team's instance,
// through their files, their processes and the network. A sandboxed instance must fail at every attempt
// but the connections flows are for (its runtime API, its own address, a host outside); an unsandboxed
// one succeeds, which proves the attempts are real.

// attack is one attempt, run by the function node (JavaScript) and by the exec node (sh).
type attack struct {
	Name string `json:"name"`
	Op   string `json:"op"` // ps, read, list, write, append, kill (signal 0), connect (TCP to host:port)
	Path string `json:"path,omitempty"`
	PID  int    `json:"pid,omitempty"`
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// allowed: a sandboxed flow must succeed (a connection flows need); banner: what the listener says
	allowed bool
	banner  string
}

// connectTo is a connect attack on ap; banner is what a listener of the test answers, "" for others.
func connectTo(name string, ap netip.AddrPort, banner string) attack {
	return attack{Name: name, Op: "connect", Host: ap.Addr().String(), Port: int(ap.Port()), banner: banner}
}

// attempt is what one attack got: OK when the operation succeeded.
type attempt struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Got  string `json:"got"`
}

// redTeamFlows answers POST /attack/js with the function node's attempts and POST /attack/sh with
// the exec node's output.
var redTeamFlows = `[{"id":"tab1","type":"tab","label":"Red team"},
{"id":"n-in-js","type":"http in","z":"tab1","url":"/attack/js","method":"post","wires":[["n-fn"]]},
{"id":"n-fn","type":"function","z":"tab1","outputs":1,"wires":[["n-res"]],"func":` + jsonString(redTeamJS) + `},
{"id":"n-in-sh","type":"http in","z":"tab1","url":"/attack/sh","method":"post","wires":[["n-quote"]]},
{"id":"n-quote","type":"function","z":"tab1","outputs":1,"wires":[["n-exec"]],
 "func":"msg.payload = \"'\" + msg.payload.script.replace(/'/g, \"'\\\\''\") + \"'\"; return msg;"},
{"id":"n-exec","type":"exec","z":"tab1","command":"/bin/sh -c","addpay":"payload","append":"","useSpawn":"false",
 "timer":"60","oldrc":false,"wires":[["n-res"],[],[]]},
{"id":"n-res","type":"http response","z":"tab1","wires":[]}]`

// redTeamJS leaves the function node's sandbox through a host object (msg) and runs every attack with
// Node's fs, process and net.
const redTeamJS = `const proc = msg.constructor.constructor("return process")();
const fs = proc.mainModule.require("fs");
const net = proc.mainModule.require("net");
function connect(a) {
    return new Promise((resolve, reject) => {
        const s = net.connect({host: a.host, port: a.port});
        let banner = "";
        const timer = setTimeout(() => { s.destroy(); reject({code: "timeout"}); }, 5000);
        s.on("data", (d) => { banner += d.toString("latin1"); });
        s.on("connect", () => setTimeout(() => { clearTimeout(timer); s.destroy(); resolve("connected " + banner); }, 300));
        s.on("error", (e) => { clearTimeout(timer); reject(e); });
    });
}
function ps() {
    return fs.readdirSync("/proc").filter((n) => /^[0-9]+$/.test(n)).map((p) => {
        try { return p + " " + fs.readFileSync("/proc/" + p + "/cmdline", "latin1").replace(/[\0\n]/g, " "); }
        catch (e) { return p + " ?"; }
    }).join("\n");
}
const ops = {
    ps: () => ps(),
    read: (a) => fs.readFileSync(a.path, "latin1"),
    list: (a) => fs.readdirSync(a.path).join(" "),
    write: (a) => { fs.writeFileSync(a.path, "pwned"); return "written"; },
    append: (a) => { fs.appendFileSync(a.path, "pwned"); return "appended"; },
    kill: (a) => { proc.kill(a.pid, 0); return "signalled"; },
    connect: connect,
};
Promise.all(msg.payload.attacks.map(async (a) => {
    try { return {name: a.name, ok: true, got: String(await ops[a.op](a)).slice(0, 100000)}; }
    catch (e) { return {name: a.name, ok: false, got: e.code || String(e)}; }
})).then((results) => { msg.payload = results; node.send(msg); node.done(); });
return null;`

// shellCommand is an attack as a shell command.
func (a attack) shellCommand() string {
	q := shellQuote(a.Path)
	switch a.Op {
	case "ps":
		return `for p in /proc/[0-9]*; do printf '%s %s\n' "${p#/proc/}" "$(tr '\0\n' '  ' < $p/cmdline)"; done`
	case "read":
		return "cat " + q
	case "list":
		return "ls -a " + q
	case "write":
		return "echo pwned > " + q
	case "append":
		return "echo pwned >> " + q
	case "kill":
		return "kill -0 " + strconv.Itoa(a.PID)
	case "connect": // bash's /dev/tcp; prints "connected" and what the listener says in a second
		return fmt.Sprintf("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d && echo connected && { timeout 1 head -c 64 <&3; true; }'", a.Host, a.Port)
	}
	panic("unknown attack op " + a.Op)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shellScript runs every attack and prints one line each: name, exit code, the first 100 kB of its
// output in base64.
func shellScript(attacks []attack) string {
	var b strings.Builder
	for _, a := range attacks {
		fmt.Fprintf(&b, "(%s) > /tmp/out 2>&1; rc=$?; printf '%%s\\t%%s\\t%%s\\n' %s \"$rc\" \"$(head -c 100000 /tmp/out | base64 -w0)\"\n",
			a.shellCommand(), shellQuote(a.Name))
	}
	return b.String()
}

func parseShellAttempts(t *testing.T, out string) []attempt {
	t.Helper()
	var got []attempt
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") { // an empty output leaves a line ending in a tab
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			t.Fatalf("exec node answered %q", out)
		}
		text, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			t.Fatalf("exec node line %q: %v", line, err)
		}
		got = append(got, attempt{Name: fields[0], OK: fields[1] == "0", Got: string(text)})
	}
	return got
}

// redTeam is a data dir holding the platform's files and a victim instance (of another team, with its
// own token and secret), the attacker's instance beside it, and the network services around them.
type redTeam struct {
	dataDir, secretKey, database string
	victim                       drivers.InstanceSpec
	victimDir                    string
	victimPID                    int
	victimStatus, attacker       drivers.Status
	originals                    map[string][]byte // files the attacks must leave as they are
	network                      []attack          // the connections the attacker tries
}

func newRedTeam(t *testing.T, mode SandboxMode) *redTeam {
	w := &redTeam{dataDir: t.TempDir()}
	w.secretKey = filepath.Join(w.dataDir, "secret.key")
	w.database = filepath.Join(w.dataDir, "flowyard.db")
	for path, content := range map[string]string{
		w.secretKey: "platform-master-key-" + t.Name(),
		w.database:  "SQLite format 3\x00 admin password hash of " + t.Name(),
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil { // SQLite's own mode, for the database
			t.Fatal(err)
		}
	}
	d := newTestDriver(t, w.dataDir, func(c *Config) { c.Sandbox = mode })

	w.victim = testSpec("victim")
	w.victim.InstanceToken, w.victim.CredentialSecret = "victim-instance-token-"+t.Name(), "victim-credential-secret-"+t.Name()
	newFakeForge(t, &w.victim, `[]`)
	w.victimDir = d.instanceDir(w.victim.InstanceID)
	w.victimStatus = startReady(t, d, w.victim)
	w.victimPID = w.victimStatus.PID

	attacker := testSpec("attacker")
	attacker.InstanceToken = "attacker-instance-token"
	newFakeForge(t, &attacker, redTeamFlows) // so that it has a runtime API to reach
	w.attacker = startReady(t, d, attacker)
	w.network = networkAttacks(t, w.victimStatus, w.attacker, attacker.ForgeURL)
	w.originals = map[string][]byte{}
	for _, path := range []string{w.secretKey, w.database, w.victimFile(settingsFileName), w.victimFile(secretsFileName)} {
		w.originals[path], _ = os.ReadFile(path)
	}
	return w
}

func (w *redTeam) victimFile(name string) string { return filepath.Join(w.victimDir, name) }

func (w *redTeam) attacks() []attack {
	return append([]attack{
		{Name: "list processes", Op: "ps"},
		{Name: "read the platform's environment", Op: "read", Path: fmt.Sprintf("/proc/%d/environ", os.Getpid())},
		{Name: "read the victim's environment", Op: "read", Path: fmt.Sprintf("/proc/%d/environ", w.victimPID)},
		{Name: "signal the platform", Op: "kill", PID: os.Getpid()},
		{Name: "signal the victim", Op: "kill", PID: w.victimPID},
		{Name: "read the platform's binary", Op: "read", Path: os.Args[0]},
		{Name: "list the data dir", Op: "list", Path: w.dataDir},
		{Name: "read the secret key", Op: "read", Path: w.secretKey},
		{Name: "read the database", Op: "read", Path: w.database},
		{Name: "list the victim's instance dir", Op: "list", Path: w.victimDir},
		{Name: "list the victim's user dir", Op: "list", Path: w.victimFile(userDirName)},
		{Name: "read the victim's settings.js", Op: "read", Path: w.victimFile(settingsFileName)},
		{Name: "read the victim's secrets", Op: "read", Path: w.victimFile(secretsFileName)},
		{Name: "write into the data dir", Op: "write", Path: filepath.Join(w.dataDir, "pwned")},
		{Name: "append to the secret key", Op: "append", Path: w.secretKey},
		{Name: "append to the database", Op: "append", Path: w.database},
		{Name: "write into the victim's user dir", Op: "write", Path: filepath.Join(w.victimFile(userDirName), "pwned")},
		{Name: "append to the victim's settings.js", Op: "append", Path: w.victimFile(settingsFileName)},
	}, w.network...)
}

// run sends every attack through the function node and the exec node and returns what each got, keyed
// "js: <name>" and "sh: <name>".
func (w *redTeam) run(t *testing.T) map[string]attempt {
	t.Helper()
	attacks := w.attacks()
	var js []attempt
	if err := json.Unmarshal(postJSON(t, w.attacker.URL+"/attack/js", map[string]any{"attacks": attacks}), &js); err != nil {
		t.Fatalf("function node answered: %v", err)
	}
	sh := parseShellAttempts(t, string(postJSON(t, w.attacker.URL+"/attack/sh", map[string]any{"script": shellScript(attacks)})))
	got := map[string]attempt{}
	for via, attempts := range map[string][]attempt{"js": js, "sh": sh} {
		if len(attempts) != len(attacks) {
			t.Fatalf("%s: %d answers to %d attacks: %+v", via, len(attempts), len(attacks), attempts)
		}
		for _, a := range attempts {
			got[via+": "+a.Name] = a
		}
	}
	return got
}

// strangers are the lines of a process listing ("pid cmdline") that show a process outside the
// attacker's sandbox. The attack's own shells, whose command line is the script, do not count.
func (w *redTeam) strangers(listing string) []string {
	var out []string
	for _, line := range strings.Split(listing, "\n") {
		_, cmdline, _ := strings.Cut(line, " ")
		if strings.HasPrefix(cmdline, "/bin/sh -c ") {
			continue
		}
		if strings.Contains(line, filepath.Base(os.Args[0])) || strings.Contains(line, w.dataDir) || strings.Contains(line, "victim") {
			out = append(out, line)
		}
	}
	return out
}

// TestSandboxRedTeam: a flow in a sandboxed instance reaches nothing but its own instance.
func TestSandboxRedTeam(t *testing.T) {
	w := newRedTeam(t, SandboxBwrap)
	got := w.run(t)
	attacks := map[string]attack{}
	for _, a := range w.attacks() {
		attacks[a.Name] = a
	}
	for _, key := range slices.Sorted(maps.Keys(got)) {
		a := got[key]
		t.Logf("%s: ok=%v got %.300q", key, a.OK, a.Got)
		_, name, _ := strings.Cut(key, ": ")
		switch attack := attacks[name]; {
		case strings.HasSuffix(key, "list processes"):
			w.checkOwnProcessesOnly(t, key, a)
		case attack.allowed:
			if !a.OK || !strings.Contains(a.Got, attack.banner) {
				t.Errorf("%s: a connection flows need failed in the sandbox: %.300q", key, a.Got)
			}
		case a.OK:
			t.Errorf("%s succeeded from inside the sandbox: %.300q", key, a.Got)
		case attack.Op == "connect" && !refusedByFilter(a.Got):
			t.Errorf("%s failed, but not because the network filter refused it: %.300q", key, a.Got)
		}
	}
	for path, before := range w.originals {
		if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
			t.Errorf("%s changed", path)
		}
	}
	for _, path := range []string{filepath.Join(w.dataDir, "pwned"), filepath.Join(w.victimFile(userDirName), "pwned")} {
		if fileExists(path) {
			t.Errorf("%s was written", path)
		}
	}
}

// checkOwnProcessesOnly: the listing shows the sandbox's own PID namespace (bwrap's init as 1, Node-RED
// as 2) and nothing of the platform or the victim.
func (w *redTeam) checkOwnProcessesOnly(t *testing.T, key string, a attempt) {
	t.Helper()
	lines := strings.Split(a.Got, "\n")
	init := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "1 ") && strings.Contains(l, "bwrap") })
	nodeRed := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "2 node-red") })
	if !a.OK || init < 0 || nodeRed < 0 {
		t.Errorf("%s: not the sandbox's own PID namespace: %q", key, a.Got)
	}
	if s := w.strangers(a.Got); len(s) > 0 {
		t.Errorf("%s shows processes outside the sandbox: %q", key, s)
	}
}

// TestRedTeamReachesEverythingUnsandboxed: without the sandbox the same flow reads the platform's and the
// victim's secrets and sees their processes, so TestSandboxRedTeam's attempts can succeed.
func TestRedTeamReachesEverythingUnsandboxed(t *testing.T) {
	w := newRedTeam(t, SandboxNone)
	got := w.run(t)
	for _, via := range []string{"js", "sh"} {
		for name, want := range map[string]string{
			"read the secret key":             "platform-master-key-",
			"read the victim's secrets":       w.victim.InstanceToken,
			"read the victim's environment":   "FLOWYARD_INSTANCE_DIR=" + w.victimDir,
			"read the platform's environment": "PATH=",
			"read the database":               "SQLite format 3",
		} {
			if a := got[via+": "+name]; !a.OK || !strings.Contains(a.Got, want) {
				t.Errorf("%s: %s gave %v %.200q, want %q in it", via, name, a.OK, a.Got, want)
			}
		}
		if ps := got[via+": list processes"]; len(w.strangers(ps.Got)) == 0 {
			t.Errorf("%s: the listing shows neither the platform nor the victim: %.500q", via, ps.Got)
		}
		for _, attack := range w.network { // the metadata address answers only in a cloud
			a := got[via+": "+attack.Name]
			t.Logf("%s: %s: ok=%v got %.300q", via, attack.Name, a.OK, a.Got)
			if attack.Host != metadataAddress.String() && (!a.OK || !strings.Contains(a.Got, attack.banner)) {
				t.Errorf("%s: %s failed without the sandbox: %.300q", via, attack.Name, a.Got)
			}
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func postJSON(t *testing.T, url string, body any) []byte {
	t.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, out.String())
	}
	return out.Bytes()
}

// workingFlows answer GET /hello and, on POST /daemon, leave a process running in the background
// the way a careless (or hostile) flow would: in its own session, detached from Node-RED, and without the
// environment marker by which the driver finds an instance's processes.
const workingFlows = `[{"id":"tab1","type":"tab","label":"Main"},
{"id":"n-in","type":"http in","z":"tab1","url":"/hello","method":"get","wires":[["n-fn"]]},
{"id":"n-fn","type":"function","z":"tab1","outputs":1,"wires":[["n-res"]],"func":"msg.payload = 'hello ' + env.get('GREETING'); return msg;"},
{"id":"n-in-d","type":"http in","z":"tab1","url":"/daemon","method":"post","wires":[["n-exec"]]},
{"id":"n-exec","type":"exec","z":"tab1","command":"env -i setsid sleep 3000 < /dev/null > /dev/null 2>&1 &","addpay":"","append":"",
 "useSpawn":"false","timer":"","oldrc":false,"wires":[["n-res"],[],[]]},
{"id":"n-res","type":"http response","z":"tab1","wires":[]}]`

// TestSandboxedInstanceWorks: a sandboxed instance runs its flows, answers the editor and its admin API,
// keeps its flows in the platform through the storage plugin, runs as its own uid in its own PID
// namespace with its secrets in neither its environment nor settings.js, and leaves nothing running
// when it stops.
func TestSandboxedInstanceWorks(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, "", func(c *Config) { c.Sandbox = SandboxBwrap })
	spec := testSpec("works")
	spec.InstanceToken = "instance-token-works"
	forge := newFakeForge(t, &spec, workingFlows)
	st := startReady(t, d, spec)

	if code, body := httpGet(t, st.URL+"/hello", ""); code != 200 || body != "hello hello" {
		t.Fatalf("flow answered %d %q", code, body)
	}
	checkAdminAuth(t, st.URL, spec)
	if code, body := httpGet(t, st.URL+drivers.AdminRoot, spec.AdminToken); code != 200 || !strings.Contains(body, "<title>") {
		t.Fatalf("editor answered %d %.200q", code, body)
	}
	deployThroughAdminAPI(t, st.URL, spec.AdminToken, workingFlows)
	eventually(t, "the deployed flows", func() bool { code, _ := httpGet(t, st.URL+"/hello", ""); return code == 200 })
	if seen := forge.seen(); !slices.Contains(seen, "GET /api/v1/runtime/instances/works/flows") ||
		!slices.Contains(seen, "PUT /api/v1/runtime/instances/works/flows") {
		t.Fatalf("the storage plugin did not read and write the flows through the runtime API: %v", seen)
	}
	checkIsolation(t, d, st, spec)

	postJSON(t, st.URL+"/daemon", map[string]any{})
	eventually(t, "the flow's background process", func() bool { return len(sandboxedSleepers()) == 1 })
	if err := d.Stop(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	if left := sandboxedSleepers(); len(left) > 0 {
		t.Fatalf("the flow's background process outlived the instance: %v", left)
	}
}

// checkIsolation: Node-RED is pid 2 of its own PID namespace, runs as the instance's uid, and its secrets
// are only in the secrets file, which that uid alone reads.
func checkIsolation(t *testing.T, d *Driver, st drivers.Status, spec drivers.InstanceSpec) {
	t.Helper()
	if ns := nsPids(st.PID); len(ns) <= ownNSDepth() || ns[len(ns)-1] != "2" {
		t.Errorf("node-red's PID namespaces %v: not pid 2 of its own", ns)
	}
	uid := d.sb.uid(st.Port)
	if os.Geteuid() == 0 && uid == 0 {
		t.Fatal("a root platform must give its instance another uid")
	}
	if status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.PID)); !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
		t.Errorf("node-red does not run as uid %d:\n%s", uid, status)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.PID))
	settings, _ := os.ReadFile(filepath.Join(d.instanceDir(spec.InstanceID), settingsFileName))
	for _, secret := range []string{spec.InstanceToken, spec.CredentialSecret, spec.AdminToken} {
		if strings.Contains(string(env), secret) || strings.Contains(string(settings), secret) {
			t.Errorf("%q is in node-red's environment or settings.js", secret)
		}
	}
	fi, err := os.Stat(filepath.Join(d.instanceDir(spec.InstanceID), secretsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if owner := fi.Sys().(*syscall.Stat_t).Uid; fi.Mode().Perm() != 0o400 || int(owner) != uid {
		t.Errorf("secrets file: mode %v owner %d, want 0400 and uid %d", fi.Mode().Perm(), owner, uid)
	}
}

// sandboxedSleepers are the `sleep 3000` processes running in a PID namespace below this one.
func sandboxedSleepers() []int {
	var pids []int
	for pid := range liveProcesses() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if string(cmdline) == "sleep\x003000\x00" && len(nsPids(pid)) > ownNSDepth() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// deployThroughAdminAPI deploys flows as the editor does.
func deployThroughAdminAPI(t *testing.T, url, token, flows string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+drivers.AdminRoot+"flows", strings.NewReader(flows))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Node-RED-Deployment-Type", "full")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 204 {
		t.Fatalf("deploy answered %d", resp.StatusCode)
	}
}

// TestSandboxUnavailable: without a working bwrap, SandboxBwrap refuses to start, SandboxAuto starts
// unisolated and says so in a WARN line and in Isolated, and SandboxNone does so on purpose.
func TestSandboxUnavailable(t *testing.T) {
	broken := t.TempDir() // a bwrap that fails its trial run, as on a kernel without the namespaces it needs
	if err := os.WriteFile(filepath.Join(broken, "bwrap"), []byte("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		mode       SandboxMode
		reason     string // "" when New must fail
	}{
		{"missing, required", t.TempDir(), SandboxBwrap, ""},
		{"broken, required", broken, SandboxBwrap, ""},
		{"missing, auto", t.TempDir(), SandboxAuto, "bwrap not found"},
		{"broken, auto", broken, SandboxAuto, "No permissions to create new namespace"},
		{"turned off", os.Getenv("PATH"), SandboxNone, "turned off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			var log bytes.Buffer
			d, err := New(Config{DataDir: t.TempDir(), Sandbox: c.mode, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if c.reason == "" {
				if err == nil || !strings.Contains(err.Error(), "sandbox is required") {
					t.Fatalf("New = %v, want a refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if ok, why := d.Isolated(); ok || !strings.Contains(why, c.reason) {
				t.Errorf("Isolated() = %v, %q; want false and %q", ok, why, c.reason)
			}
			if !strings.Contains(log.String(), "level=WARN msg=\"INSTANCES ARE NOT ISOLATED") || !strings.Contains(log.String(), c.reason) {
				t.Errorf("no WARN line with the reason:\n%s", log.String())
			}
		})
	}
	if _, err := New(Config{DataDir: t.TempDir(), Sandbox: "docker"}); err == nil {
		t.Error("an unknown sandbox mode was accepted")
	}
}

// TestGiveToStaysInside: handing a user dir to the instance's uid changes what is in it, and nothing a
// link in it points at: the sandbox's code may have planted links to the platform's files.
func TestGiveToStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root gives files to another uid")
	}
	outside := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(outside, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	userDir := filepath.Join(t.TempDir(), userDirName)
	for _, dir := range []string{userDir, filepath.Join(userDir, "lib")} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(userDir, "lib", "flows.json"), []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"key-link": outside, "dir-link": filepath.Dir(outside)} {
		if err := os.Symlink(target, filepath.Join(userDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	const uid = defaultSandboxUIDBase + 1
	if err := giveTo(userDir, uid); err != nil {
		t.Fatal(err)
	}
	owner := func(path string) int {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		return int(fi.Sys().(*syscall.Stat_t).Uid)
	}
	for _, path := range []string{userDir, filepath.Join(userDir, "lib", "flows.json"), filepath.Join(userDir, "key-link")} {
		if owner(path) != uid {
			t.Errorf("%s not given to %d", path, uid)
		}
	}
	if owner(outside) != 0 || owner(filepath.Dir(outside)) != 0 {
		t.Error("giveTo followed a link out of the user dir")
	}
}
