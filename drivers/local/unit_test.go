package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

func TestParseLogLine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in       string
		keep     bool
		level    string
		msg      string
		parsedTS bool
	}{
		{`{"ts":"2026-11-27T10:00:00.123Z","level":"info","msg":"Started flows"}`, true, "info", "Started flows", true},
		{`{"ts":"2026-11-27T10:00:00Z","level":"warn","msg":"boom","type":"function","id":"fn1","name":"envfn"}`, true, "warn", "[function:envfn] boom", true},
		{`{"ts":"2026-11-27T10:00:00Z","level":"error","msg":"x","type":"debug","id":"d1"}`, true, "error", "[debug:d1] x", true},
		{`{"ts":"2026-11-27T10:00:00Z","level":"audit","event":"flows.set","path":"/flows","user":{"username":"flowyard"}}`, true, "audit", "flows.set /flows", true},
		{`{"ts":"2026-11-27T10:00:00Z","level":"audit","event":"auth.invalid-token"}`, false, "", "", false},
		{`{"level":30,"msg":{"a":1}}`, true, "warn", `{"a":1}`, false},
		{`[red] Uncaught Exception:`, true, "raw", "[red] Uncaught Exception:", false},
		{`{not json`, true, "raw", "{not json", false},
		{"   \r", false, "", "", false},
	} {
		line, keep := parseLogLine([]byte(c.in), now)
		if keep != c.keep || line.Level != c.level || line.Msg != c.msg || (keep && (line.Time != now) != c.parsedTS) {
			t.Errorf("parse %s = %+v %v", c.in, line, keep)
		}
	}
}

func TestLogBookFollowsAndRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), logFileName)
	os.WriteFile(path, []byte("old 1\nold 2\n"), 0o600)
	b := openLogBook(path, 200)
	var seen []string
	b.setOnLine(func(l drivers.LogLine) { seen = append(seen, l.Msg) })
	if got := b.last(10); !slices.Equal(got, []string{"old 1", "old 2"}) {
		t.Fatalf("read back %v", got)
	}

	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	defer f.Close()
	f.WriteString(`{"level":"info","msg":"new"}` + "\npart")
	b.poll()
	f.WriteString("ial\n")
	b.poll()
	if !slices.Equal(seen, []string{"new", "partial"}) {
		t.Fatalf("new lines seen: %v", seen)
	}

	// Past maxBytes the file is copied to .1 and truncated; the writer, with O_APPEND, goes on at 0.
	f.WriteString(strings.Repeat("x", 250) + "\n")
	b.poll()
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("not rotated: size %d", fi.Size())
	}
	if old, _ := os.ReadFile(path + ".1"); !strings.Contains(string(old), "old 1") {
		t.Fatal("rotated file lost the old lines")
	}
	f.WriteString("after rotation\n")
	b.system("stopped %d", 1)
	if got := b.last(2); !slices.Equal(got, []string{"after rotation", "stopped 1"}) {
		t.Fatalf("after rotation: %v", got)
	}
	if lines := b.lines(time.Now().Add(time.Hour), 0); len(lines) != 0 {
		t.Fatalf("lines in the future: %v", lines)
	}
	if lines := b.lines(time.Time{}, 3); len(lines) != 3 || lines[2].Level != "system" {
		t.Fatalf("limit: %+v", lines)
	}
}

func TestLogRingKeepsLastLines(t *testing.T) {
	b := openLogBook(filepath.Join(t.TempDir(), "none"), 0)
	for i := range ringLines + 5 {
		b.add(drivers.LogLine{Msg: strconv.Itoa(i)})
	}
	got := b.last(0)
	if len(got) != ringLines || got[0] != "5" || got[len(got)-1] != strconv.Itoa(ringLines+4) {
		t.Fatalf("ring holds %d lines from %s to %s", len(got), got[0], got[len(got)-1])
	}
}

func TestPortsAreOwnedUntilRemove(t *testing.T) {
	ctx := context.Background()
	busy := freePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort(listenAddress(busy), strconv.Itoa(busy))) // a foreign process there
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := newTestDriver(t, "", func(c *Config) { c.PortMin, c.PortMax = busy, busy+2 })
	dir := func(id string) string {
		p := d.instanceDir(id)
		os.MkdirAll(p, 0o755)
		return p
	}
	var got []int
	for _, id := range []string{"a", "b"} {
		p, err := d.allocatePort(ctx, dir(id))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if p := got[0]; p == busy || got[1] == p {
		t.Fatalf("ports %v: the bound port %d must be skipped and each instance get its own", got, busy)
	}
	if p, _ := d.allocatePort(ctx, dir("a")); p != got[0] {
		t.Fatalf("a's port moved from %d to %d", got[0], p)
	}
	if _, err := d.allocatePort(ctx, dir("c")); !errors.Is(err, drivers.ErrNoFreePort) {
		t.Fatalf("third instance: %v, want ErrNoFreePort", err)
	}
	if err := d.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if p, err := d.allocatePort(ctx, dir("c")); err != nil || p != got[1] {
		t.Fatalf("after removing b, c got %d %v, want %d", p, err, got[1])
	}
}

func TestCgroupLimitFiles(t *testing.T) {
	parent := t.TempDir() // a plain directory standing in for a delegated cgroup
	cg := cgroups{parent: parent}
	f, err := cg.prepare("inst", 512, 50)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	mem, _ := os.ReadFile(filepath.Join(parent, "inst", "memory.max"))
	cpu, _ := os.ReadFile(filepath.Join(parent, "inst", "cpu.max"))
	if string(mem) != "536870912" || string(cpu) != "50000 100000" {
		t.Fatalf("memory.max %q cpu.max %q", mem, cpu)
	}
	if f, err := cg.prepare("nolimits", 0, 0); f != nil || err != nil {
		t.Fatalf("no limits asked: %v %v", f, err)
	}
	if got := cpuMax(0); got != "max 100000" {
		t.Fatalf("cpuMax(0) = %q", got)
	}
	if f, err := (cgroups{}).prepare("x", 512, 50); f != nil || err != nil {
		t.Fatalf("without a cgroup parent: %v %v", f, err)
	}
}

func TestDetectCgroupsExplains(t *testing.T) {
	cg := detectCgroups(t.TempDir())
	if cg.parent != "" || !strings.Contains(cg.reason, "not a cgroup v2 directory") {
		t.Fatalf("a plain directory accepted as cgroup: %+v", cg)
	}
	auto := detectCgroups("")
	if (auto.parent == "") == (auto.reason == "") {
		t.Fatalf("auto-detection must give a parent or a reason: %+v", auto)
	}
	t.Logf("this machine: parent %q, reason %q", auto.parent, auto.reason)
}

func TestProcStatOfSelf(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil || st.startTicks == 0 || st.pgid == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if !processAlive(os.Getpid(), st.startTicks) || processAlive(os.Getpid(), st.startTicks+1) {
		t.Fatal("processAlive must match the start time")
	}
}

func TestValidateSpec(t *testing.T) {
	ok := testSpec("ok")
	if err := validateSpec(ok); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*drivers.InstanceSpec){
		"bad id":      func(s *drivers.InstanceSpec) { s.InstanceID = "../x" },
		"no token":    func(s *drivers.InstanceSpec) { s.AdminToken = "" },
		"no secret":   func(s *drivers.InstanceSpec) { s.CredentialSecret = "" },
		"no version":  func(s *drivers.InstanceSpec) { s.NodeRedVersion = "" },
		"neg. memory": func(s *drivers.InstanceSpec) { s.MemoryMB = -1 },
	} {
		s := testSpec("x")
		mutate(&s)
		if err := validateSpec(s); !errors.Is(err, drivers.ErrInvalidSpec) {
			t.Errorf("%s: %v", name, err)
		}
	}
	a, b := testSpec("x"), testSpec("x")
	b.Env = map[string]string{"GREETING": "hello"}
	if specHash(a) != specHash(b) {
		t.Fatal("equal specs must hash equally")
	}
	b.SafeMode = true
	if specHash(a) == specHash(b) {
		t.Fatal("safe mode must change the hash")
	}
}

func TestChildEnvIsMinimal(t *testing.T) {
	t.Setenv("FLOWYARD_SECRET_KEY", "platform-secret")
	t.Setenv("OPERATOR_TOKEN", "operator-secret")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("LC_ALL", "")
	os.Unsetenv("LC_ALL") // restored by t.Setenv's cleanup
	d := &Driver{log: discardLogger()}
	env := d.childEnv("x", nodered.Runtime{NodeBin: "/opt/node/bin/node"}, "/data/x/userdir",
		map[string]string{"A": "1", "FLOWYARD_INSTANCE_TOKEN": "forged", "PATH": "/custom"},
		map[string]string{"FLOWYARD_INSTANCE_TOKEN": "real"})
	want := []string{"A=1", "FLOWYARD_INSTANCE_TOKEN=real", "HOME=/data/x/userdir", "LANG=C.UTF-8", "NODE_ENV=production",
		"PATH=/custom", "TZ=Europe/Paris"}
	if !slices.Equal(env, want) {
		t.Fatalf("env = %q\nwant  %q", env, want)
	}
	if slices.ContainsFunc(env, func(v string) bool { return strings.HasPrefix(v, "FLOWYARD_SECRET_KEY") }) {
		t.Fatal("platform env leaked")
	}
}

func TestRuntimeErrorCarriesLines(t *testing.T) {
	err := fmt.Errorf("start: %w", &drivers.RuntimeError{Kind: drivers.ErrNeverReady, Detail: "after 60s", LastLines: []string{"a", "b", "c", "d"}})
	var re *drivers.RuntimeError
	if !errors.Is(err, drivers.ErrNeverReady) || !errors.As(err, &re) || len(re.LastLines) != 4 {
		t.Fatal(err)
	}
	if !strings.Contains(err.Error(), "b | c | d") {
		t.Fatalf("message %q should end with the last lines", err)
	}
}

// TestFindInstanceProcessesSkipsGroupMembers: what a flow spawns inherits the instance marker but is not
// mistaken for a second Node-RED.
func TestFindInstanceProcessesSkipsGroupMembers(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "sleep 30 & echo started; wait")
	cmd.Env = []string{envInstanceDir + "=" + dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	bufio.NewReader(out).ReadString('\n') // the child sleep exists now
	if pids := findInstanceProcesses(dir); !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Fatalf("found %v, want only the group leader %d", pids, cmd.Process.Pid)
	}
	if err := signalGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	eventually(t, "the group to die", func() bool { return len(findInstanceProcesses(dir)) == 0 })
}
