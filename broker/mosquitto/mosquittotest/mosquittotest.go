// Package mosquittotest starts throwaway Mosquitto 2 brokers with the dynamic-security plugin, each with its own
// configuration, data directory and ports, for the tests and measurements of the external broker mode. It never
// touches a broker already running on the machine.
package mosquittotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowyard/flowyard/internal/proctest"
)

// Broker is a running throwaway Mosquitto.
type Broker struct {
	Addr, WSAddr string // MQTT over TCP and over WebSocket, host:port
	// AdminUsername and AdminPassword are the dynamic-security admin client `mosquitto_ctrl dynsec init` made.
	AdminUsername, AdminPassword string
	Dir                          string        // its configuration, its dynamic-security file and its log
	StartedIn                    time.Duration // from start to listening
	cmd                          *exec.Cmd
}

// URL is the broker's TCP address as an mqtt:// URL.
func (b *Broker) URL() string { return "mqtt://" + b.Addr }

// ConfigFile is the dynamic-security plugin's JSON file, which it rewrites after every change.
func (b *Broker) ConfigFile() string { return filepath.Join(b.Dir, "dynamic-security.json") }

// PID is the broker's process.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// Log is what the broker logged so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.Dir, "mosquitto.log"))
	return string(out)
}

// PluginPath finds Debian's dynamic-security plugin.
func PluginPath() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	if len(matches) == 0 {
		return "", fmt.Errorf("mosquitto_dynamic_security.so not found under /usr/lib: apt-get install mosquitto")
	}
	return matches[0], nil
}

// Start runs a fresh broker for the test and stops it when the test ends. A port found free but taken before
// Mosquitto binds it is retried on others.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartSeeded(t, nil)
}

// StartSeeded is Start with the plugin's configuration changed by seed before the broker loads it (the
// measurements load thousands of accounts this way). seed gets the file as JSON: "clients", "roles",
// "groups" and "defaultACLAccess", the admin client already in.
func StartSeeded(t testing.TB, seed func(config map[string]any)) *Broker {
	t.Helper()
	plugin, err := PluginPath()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"mosquitto", "mosquitto_ctrl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install mosquitto (make test installs it)", tool)
		}
	}
	dir := t.TempDir()
	b := &Broker{Dir: dir, AdminUsername: "admin", AdminPassword: "admin-" + fmt.Sprint(rand.Uint64())}
	out, err := exec.Command("mosquitto_ctrl", "dynsec", "init", b.ConfigFile(), b.AdminUsername, b.AdminPassword).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v: %s", err, out)
	}
	if seed != nil {
		b.seed(t, seed)
	}
	for attempt := 1; ; attempt++ {
		err := b.start(t, plugin)
		if err == nil {
			return b
		}
		if !strings.Contains(err.Error(), "Address already in use") || attempt == 5 {
			t.Fatalf("mosquitto did not start: %v", err)
		}
	}
}

func (b *Broker) seed(t testing.TB, seed func(map[string]any)) {
	raw, err := os.ReadFile(b.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	var config map[string]any
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	seed(config)
	if raw, err = json.Marshal(config); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.ConfigFile(), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (b *Broker) start(t testing.TB, plugin string) error {
	b.Addr, b.WSAddr = fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())
	conf := filepath.Join(b.Dir, "mosquitto.conf")
	logFile := filepath.Join(b.Dir, "mosquitto.log")
	_ = os.Remove(logFile)
	if err := os.WriteFile(conf, []byte(b.config(plugin, logFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	b.cmd = exec.Command("mosquitto", "-c", conf)
	b.cmd.Stderr = &stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	// The plugin loads its whole file before the broker listens: a seeded one of 100,000 accounts takes a while.
	started := time.Now()
	for time.Since(started) < 5*time.Minute {
		select {
		case err := <-exited:
			return fmt.Errorf("%v: %s %s", err, stderr.String(), b.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if listening(b.Addr) && listening(b.WSAddr) {
			b.StartedIn = time.Since(started)
			t.Cleanup(func() { b.stop(t, exited) })
			return nil
		}
	}
	_ = b.cmd.Process.Kill()
	<-exited
	return fmt.Errorf("mosquitto was not listening after 5 minutes: %s", b.Log())
}

// config is a broker as the external mode's documentation asks for: no anonymous clients, no retained messages,
// dynamic security for everything.
func (b *Broker) config(plugin, logFile string) string {
	lines := []string{
		"per_listener_settings false",
		"allow_anonymous false",
		"persistence false",
		"retain_available false",
		"sys_interval 1", // the tests count connected clients on $SYS
		"listener " + port(b.Addr) + " 127.0.0.1",
		"listener " + port(b.WSAddr) + " 127.0.0.1",
		"protocol websockets",
		"plugin " + plugin,
		"plugin_opt_config_file " + b.ConfigFile(),
		"log_dest file " + logFile,
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
	}
	// As root, Mosquitto would switch to the mosquitto user, which cannot write the test's directory.
	if u, err := user.Current(); err == nil {
		lines = append(lines, "user "+u.Username)
	}
	return strings.Join(lines, "\n") + "\n"
}

func (b *Broker) stop(t testing.TB, exited chan error) {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		proctest.DumpGoroutines()
		_ = b.cmd.Process.Kill()
		<-exited
		t.Errorf("mosquitto did not stop within 10 s of SIGTERM")
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort draws a free port from 4000–4999, below the kernel's ephemeral range (where outgoing connections of
// other test packages take their local ports) and apart from the platform tests' 6000–11999, never twice in one
// process.
func freePort() int {
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		p := 4000 + rand.IntN(1000)
		if !portsGiven[p] && free(p) {
			portsGiven[p] = true
			return p
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

func free(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
