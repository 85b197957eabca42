package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/nodered"
)

// NodeRED runs a real Node-RED from the snapshot's own node_modules (the snapshot's modules include
// node-red), in a user dir the agent owns.
type NodeRED struct {
	Dir              string // the Node-RED user dir
	Port             int
	CredentialSecret string // the device's: Node-RED decrypts flows_cred.json with it
	NpmCache         string
	Log              *slog.Logger
	OnExit           func(error) // Node-RED exited on its own
	Output           io.Writer   // also gets Node-RED's output, if set (the live log)

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	stopping bool
	env      []string
}

// EditorTokenFile holds, in the user dir, the remote editor's current token while its tunnel is open.
const EditorTokenFile = ".flowyard-editor-token"

// startTimeout bounds how long Node-RED may take to run its flows.
const startTimeout = 90 * time.Second

// Prepared reports whether the user dir holds an installed Node-RED and flows.
func (n *NodeRED) Prepared() bool {
	_, err1 := os.Stat(filepath.Join(n.Dir, "node_modules", "node-red", "red.js"))
	_, err2 := os.Stat(filepath.Join(n.Dir, "flows.json"))
	return err1 == nil && err2 == nil
}

// NodeRedVersion reads the installed Node-RED's package.json.
func (n *NodeRED) NodeRedVersion() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "node_modules", "node-red", "package.json"))
	var pkg struct {
		Version string `json:"version"`
	}
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// Prepare writes package.json, installs the modules (when the snapshot changed), flows.json,
// flows_cred.json (checked to decrypt with the device's secret, and written re-encrypted to it) and
// settings.js.
func (n *NodeRED) Prepare(ctx context.Context, snap *Snapshot, settings *Settings, install bool) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	if install {
		if err := n.writeNpmrc(settings); err != nil {
			return err
		}
		if err := n.install(ctx, snap); err != nil {
			return err
		}
		flows := bytes.TrimSpace(snap.Flows)
		if len(flows) == 0 || flows[0] != '[' {
			return errors.New("the snapshot's flows are not a JSON array")
		}
		if err := os.WriteFile(filepath.Join(n.Dir, "flows.json"), flows, 0o600); err != nil {
			return err
		}
		creds, err := nodered.ReencryptCredentials(n.CredentialSecret, n.CredentialSecret, snap.Credentials)
		if err != nil {
			return fmt.Errorf("the snapshot's credentials do not decrypt with this device's credentialSecret: %w", err)
		}
		if err := os.WriteFile(filepath.Join(n.Dir, "flows_cred.json"), creds, 0o600); err != nil {
			return err
		}
	}
	// The probe token lets the agent read the flows' state when the local editor login is on (settings.js
	// accepts it as a read-only token): new on every Prepare, and only in the user dir, which is the agent's.
	probe := randomToken()
	if err := os.WriteFile(filepath.Join(n.Dir, "settings.js"), []byte(n.settingsJS(settings, probe)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, ".flowyard-probe"), []byte(probe), 0o600); err != nil {
		return err
	}
	n.mu.Lock()
	n.env = processEnv(snap, settings)
	n.mu.Unlock()
	return writeFileAtomic(filepath.Join(n.Dir, ".flowyard-env.json"), mustJSON(n.env), 0o600)
}

// install writes package.json with the snapshot's modules and runs npm install.
func (n *NodeRED) install(ctx context.Context, snap *Snapshot) error {
	if _, ok := snap.Modules["node-red"]; !ok {
		return errors.New("the snapshot's modules do not include node-red")
	}
	pkg := map[string]any{"name": "flowyard-device", "description": snap.Name, "private": true,
		"version": "0.0.0-" + strings.ToLower(snap.ID), "dependencies": snap.Modules}
	if err := os.WriteFile(filepath.Join(n.Dir, "package.json"), mustJSON(pkg), 0o644); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(n.Dir, ".config.nodes.json"))
	args := []string{"install", "--no-fund", "--no-audit", "--omit=dev", "--no-update-notifier"}
	if n.NpmCache != "" {
		args = append(args, "--cache", n.NpmCache, "--prefer-offline")
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ictx, "npm", args...)
	// npm runs the install scripts of the snapshot's modules: they get npm's own environment, never the
	// agent's (a host running the platform too holds its FLOWYARD_ secrets).
	cmd.Dir, cmd.Env = n.Dir, nodered.NpmEnv(nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("npm install: %w: %s", err, tail)
	}
	return nil
}

// settingsJS is the Node-RED settings file: the port, the device's credential secret, the editor under
// /device-editor on the loopback interface only, logs to stdout, and what the fleet settings ask for: the
// palette's catalogues and the local editor login (with a read-only token for the agent's own readiness probe).
func (n *NodeRED) settingsJS(settings *Settings, probe string) string {
	secret, _ := json.Marshal(n.CredentialSecret)
	editorTheme := map[string]any{"tours": false}
	var adminAuth string
	if settings != nil {
		if c := settings.Palette.Catalogues; len(c) > 0 {
			editorTheme["palette"] = map[string]any{"catalogues": c}
		}
		if a := settings.Security.LocalAuth; a != nil && a.Enabled {
			users, _ := json.Marshal([]map[string]string{{"username": a.User, "password": a.Pass, "permissions": "*"}})
			token, _ := json.Marshal(probe)
			editorFile, _ := json.Marshal(filepath.Join(n.Dir, EditorTokenFile))
			// The remote editor's requests come from the agent with the editor token it holds now, which it keeps
			// in a file of the user dir (docs/device-protocol.md §3.6): read at each check, so no restart is needed.
			adminAuth = fmt.Sprintf(`
    adminAuth: {
        type: "credentials",
        users: %s,
        tokens: function (token) {
            if (token === %s) return Promise.resolve({ username: "flowyard-agent", permissions: "read" });
            let editor = "";
            try { editor = require("fs").readFileSync(%s, "utf8"); } catch (e) {}
            return Promise.resolve(editor !== "" && token === editor ? { username: "forge", permissions: "*" } : null);
        },
    },`, users, token, editorFile)
		}
	}
	theme, _ := json.Marshal(editorTheme)
	return fmt.Sprintf(`// Written by flowyard-agent; rewritten on every deployment.
module.exports = {
    uiPort: %d,
    flowFile: "flows.json",
    credentialSecret: %s,
    httpAdminRoot: "/device-editor",
    userDir: %q,
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: %s,%s
}
`, n.Port, secret, n.Dir, theme, adminAuth)
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// writeNpmrc writes the palette's .npmrc from the fleet settings before npm install (npm reads the project's
// .npmrc), or removes one an earlier deployment wrote.
func (n *NodeRED) writeNpmrc(settings *Settings) error {
	path := filepath.Join(n.Dir, ".npmrc")
	if settings == nil || settings.Palette.NPMRC == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(path, []byte(settings.Palette.NPMRC), 0o600)
}

// processEnv is the Node-RED process's environment: the host's PATH and HOME, then the snapshot's env, then
// the settings' env over it (docs/device-protocol.md §4.2).
func processEnv(snap *Snapshot, settings *Settings) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	merged := map[string]string{}
	if snap != nil {
		for k, v := range snap.Env {
			merged[k] = v
		}
	}
	if settings != nil {
		for k, v := range settings.Env {
			merged[k] = v
		}
	}
	for k, v := range merged {
		if k != "PATH" && k != "HOME" && !strings.ContainsAny(k, "=\x00") {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func mustJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

// Start starts Node-RED and waits until its flows run.
func (n *NodeRED) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return nil
	}
	env := n.env
	if env == nil {
		if b, err := os.ReadFile(filepath.Join(n.Dir, ".flowyard-env.json")); err == nil {
			_ = json.Unmarshal(b, &env)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(n.Dir, "node-red.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	cmd := exec.Command("node", filepath.Join(n.Dir, "node_modules", "node-red", "red.js"), "-u", n.Dir, "-s", filepath.Join(n.Dir, "settings.js"))
	var out io.Writer = logFile
	if n.Output != nil {
		out = io.MultiWriter(logFile, n.Output)
	}
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = n.Dir, env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		logFile.Close()
		return fmt.Errorf("start node: %w", err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.stopping = cmd, done, false
	n.mu.Unlock()
	go n.wait(cmd, done, logFile)
	return n.waitFlows(ctx, done)
}

// wait reaps Node-RED and reports an exit nobody asked for.
func (n *NodeRED) wait(cmd *exec.Cmd, done chan struct{}, logFile io.Closer) {
	err := cmd.Wait()
	logFile.Close()
	n.mu.Lock()
	asked := n.stopping
	if n.cmd == cmd {
		n.cmd = nil
	}
	n.mu.Unlock()
	close(done)
	if !asked && n.OnExit != nil {
		if err == nil {
			err = errors.New("exit status 0")
		}
		go n.OnExit(err)
	}
}

// waitFlows polls Node-RED's admin API until the flows are started.
func (n *NodeRED) waitFlows(ctx context.Context, done chan struct{}) error {
	url := "http://127.0.0.1:" + strconv.Itoa(n.Port) + "/device-editor/flows/state"
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("Node-RED exited while starting (see %s)", filepath.Join(n.Dir, "node-red.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if probe, err := os.ReadFile(filepath.Join(n.Dir, ".flowyard-probe")); err == nil {
			req.Header.Set("Authorization", "Bearer "+string(probe))
		}
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		var st struct {
			State string `json:"state"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode == 200 && st.State == "start" {
			return nil
		}
	}
	return fmt.Errorf("Node-RED did not run its flows within %s", startTimeout)
}

// Stop stops Node-RED: SIGTERM to its process group, SIGKILL after 10 s.
func (n *NodeRED) Stop(ctx context.Context) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.stopping = true
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return nil
}

// Clean deletes the user dir.
func (n *NodeRED) Clean() error { return os.RemoveAll(n.Dir) }
