package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/flowyard/flowyard/internal/childenv"
)

// Snapshot is the `live/snapshot` document (docs/device-protocol.md §2.3).
type Snapshot struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Settings    map[string]any    `json:"settings"`
	Env         map[string]string `json:"env"`
	Modules     map[string]string `json:"modules"`
	Flows       json.RawMessage   `json:"flows"`
	Credentials json.RawMessage   `json:"credentials"`
}

// Settings is the `live/settings` document (docs/device-protocol.md §2.4); the agent uses its hash, env and the
// fleet settings: the Node-RED version to install, the palette's .npmrc and catalogues, the local editor login.
type Settings struct {
	Hash   string            `json:"hash"`
	Env    map[string]string `json:"env"`
	Editor struct {
		NodeRedVersion string `json:"nodeRedVersion,omitempty"`
	} `json:"editor"`
	Palette struct {
		NPMRC      string   `json:"npmrc,omitempty"`
		Catalogues []string `json:"catalogues,omitempty"`
	} `json:"palette"`
	Security struct {
		LocalAuth *LocalAuth `json:"localAuth,omitempty"`
	} `json:"security"`
}

// LocalAuth is the login of the editor on the device; Pass is a bcrypt hash.
type LocalAuth struct {
	Enabled bool   `json:"enabled"`
	User    string `json:"user"`
	Pass    string `json:"pass"`
}

// Runner runs Node-RED for the agent (or pretends to, when simulating).
type Runner interface {
	// Prepare writes the user dir for a snapshot and its settings; install says the snapshot changed, so its
	// modules must be installed.
	Prepare(ctx context.Context, snap *Snapshot, settings *Settings, install bool) error
	// Start starts Node-RED with what Prepare wrote and returns once its flows run.
	Start(ctx context.Context) error
	// Stop stops Node-RED; Clean also deletes the user dir.
	Stop(ctx context.Context) error
	Clean() error
	// Prepared reports whether the user dir holds an installed snapshot (after an agent restart).
	Prepared() bool
	// NodeRedVersion is the installed Node-RED version, if known.
	NodeRedVersion() string
}

// Options configure one agent.
type Options struct {
	ConfigPath string // device.yml
	Dir        string // working dir: state file and the Node-RED user dir
	Log        *slog.Logger
	HTTP       *http.Client
	Runner     Runner        // nil: real Node-RED in Dir/project
	Port       int           // Node-RED port; default the config's, else 1880
	Interval   time.Duration // check-in interval; default 60 s
	// ProvisionRetry is how long to wait after a failed provisioning; default 1 minute.
	ProvisionRetry time.Duration
	// NpmCache, when set, is npm's cache dir, and installs prefer it (shared between devices of a host).
	NpmCache string
}

// stateFile is the agent's persisted state, beside the user dir (FlowFuse's name and shape, docs/device-protocol.md
// §1.1).
const stateFile = "flowfuse-instance.json"

type persisted struct {
	// SecretDigest is a digest of the credential secret the user dir was written with: a device set up again with
	// new credentials downloads its snapshot again, as its old credentials no longer decrypt.
	SecretDigest string `json:"credentialSecretDigest,omitempty"`
	// NodeRed is the node-red dependency installed, so that a new version in the settings installs again.
	NodeRed     string    `json:"nodeRedInstalled,omitempty"`
	OwnerType   string    `json:"ownerType"`
	Application *string   `json:"application"`
	Project     *string   `json:"project"`
	Snapshot    *Snapshot `json:"snapshot"`
	Settings    *Settings `json:"settings"`
	Mode        string    `json:"mode"`
	TargetState string    `json:"targetState"`
	// EditorToken is the remote editor's token from the last startEditor, kept so that the tunnel reopens after
	// a restart (docs/device-protocol.md §3.6).
	EditorToken string `json:"editorToken,omitempty"`
}

// logBufferSize is how many of Node-RED's lines the agent keeps for the live log (FlowFuse's default bufferSize).
const logBufferSize = 1000

// Agent is one running device agent.
type Agent struct {
	opts    Options
	cfg     *DeviceConfig
	c       *client
	runner  Runner
	log     *slog.Logger
	started time.Time

	mu       sync.Mutex
	st       persisted
	state    string
	detail   string
	restarts int
	crashes  []time.Time

	targets chan map[string]json.RawMessage
	actions chan actionRequest
	logs    *logBuffer // Node-RED's recent output, streamed after startLog
	mq      *mqttLink
	// statusMu orders the status messages: each is made (report) and handed to the MQTT client under it, so they
	// leave in the order they were made and the last one sent holds the latest state. Made and sent apart, a
	// heartbeat made while Node-RED was "starting" could leave after the "running" that followed: the platform
	// then held the device "starting" until its next heartbeat, and a rollout's wave waited for it.
	statusMu sync.Mutex
	// checkInMu orders the state reports sent over HTTP (reportNow) the same way.
	checkInMu sync.Mutex

	editorPort int           // the local Node-RED's port the editor tunnel reaches; 0 without a real Node-RED
	tunnel     *editorTunnel // the remote editor's tunnel, while open (a.mu)
}

// Run runs the agent until ctx ends: provision if the config says so, then check in, deploy and supervise.
func Run(ctx context.Context, opts Options) error {
	a, err := newAgent(ctx, opts)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

func newAgent(ctx context.Context, opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if opts.Interval <= 0 {
		opts.Interval = 60 * time.Second
	}
	if opts.ProvisionRetry <= 0 {
		opts.ProvisionRetry = time.Minute
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create working dir: %w", err)
	}
	cfg, err := LoadConfig(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, cfg: cfg, log: opts.Log, started: time.Now(), state: "stopped",
		targets: make(chan map[string]json.RawMessage, 1), actions: make(chan actionRequest), logs: newLogBuffer(logBufferSize)}
	if cfg.Provisioning() {
		if err := a.provision(ctx); err != nil {
			return nil, err
		}
	}
	port := opts.Port
	if port == 0 {
		port = a.cfg.Port
	}
	if port == 0 {
		port = 1880
	}
	a.runner = opts.Runner
	if a.runner == nil {
		a.runner = &NodeRED{Dir: filepath.Join(opts.Dir, "project"), Port: port, CredentialSecret: a.cfg.CredentialSecret,
			NpmCache: opts.NpmCache, Log: a.log, OnExit: a.onNodeREDExit, Output: a.logs}
		a.editorPort = port
	}
	a.c = &client{http: opts.HTTP, forgeURL: a.cfg.ForgeURL, deviceID: a.cfg.DeviceID, token: a.cfg.Token}
	a.loadState()
	return a, nil
}

// provision turns a provisioning config into a device config, retrying until the platform accepts.
func (a *Agent) provision(ctx context.Context) error {
	name := a.cfg.DeviceName
	if name == "" {
		host, _ := os.Hostname()
		name = host + " (" + filepath.Base(a.opts.Dir) + ")"
	}
	for {
		reg, err := provision(ctx, a.opts.HTTP, a.cfg, name)
		if err == nil {
			return a.saveProvisioned(reg)
		}
		a.log.Warn("provisioning failed; retrying", "err", err, "in", a.opts.ProvisionRetry)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.opts.ProvisionRetry):
		}
	}
}

// saveProvisioned writes the device config the platform answered, keeping the provisioning file's extras.
func (a *Agent) saveProvisioned(reg *registration) error {
	next := &DeviceConfig{DeviceID: reg.ID, ForgeURL: reg.ForgeURL, Token: reg.Credentials.Token,
		CredentialSecret: reg.Credentials.CredentialSecret, Port: a.cfg.Port, AutoProvisioned: true, Extras: a.cfg.Extras}
	if next.ForgeURL == "" {
		next.ForgeURL = a.cfg.ForgeURL
	}
	if b := reg.Credentials.Broker; b != nil {
		next.BrokerURL, next.BrokerUsername, next.BrokerPassword = b.URL, b.Username, b.Password
	}
	// Replaced in one step, with no backup: until the rename the provisioning config is there, after it the
	// device config. (FlowFuse's agent moves the file to device.yml.bak first, and an agent killed then restarts
	// with no config at all while the platform has registered the device.)
	if err := SaveConfig(a.opts.ConfigPath, next); err != nil {
		return fmt.Errorf("write the device config: %w", err)
	}
	a.log.Info("provisioned", "device", reg.ID)
	a.cfg = next
	return nil
}

func (a *Agent) loadState() {
	b, err := os.ReadFile(filepath.Join(a.opts.Dir, stateFile))
	if err != nil || json.Unmarshal(b, &a.st) != nil {
		a.st = persisted{}
	}
	if digest := secretDigest(a.cfg.CredentialSecret); a.st.Snapshot != nil && a.st.SecretDigest != "" && a.st.SecretDigest != digest {
		a.log.Info("the device has a new credential secret; its snapshot will be downloaded again")
		a.st.Snapshot, a.st.Settings, a.st.NodeRed = nil, nil, ""
	}
}

// secretDigest identifies a credential secret without keeping it.
func secretDigest(secret string) string {
	sum := sha256.Sum256([]byte("flowyard-agent credential secret\x00" + secret))
	return hex.EncodeToString(sum[:8])
}

// saveState persists the agent's state; the caller holds a.mu.
func (a *Agent) saveState() {
	b, err := json.Marshal(a.st)
	if err == nil {
		err = writeFileAtomic(filepath.Join(a.opts.Dir, stateFile), b, 0o600)
	}
	if err != nil {
		a.log.Error("save agent state", "err", err)
	}
}

func (a *Agent) run(ctx context.Context) error {
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = a.runner.Stop(sctx)
	}()
	defer a.closeEditor()
	a.resumeLocal(ctx)
	// Run returns only once the updater has finished what it was doing (deferred calls run last first: before
	// Node-RED is stopped), so a stopped agent no longer writes in its folder or starts Node-RED.
	updaterDone := make(chan struct{})
	go func() {
		defer close(updaterDone)
		a.updater(ctx)
	}()
	defer func() { <-updaterDone }()
	a.checkIn(ctx)
	if a.cfg.BrokerURL != "" {
		mq, err := connectMQTT(a)
		if err != nil {
			a.log.Warn("MQTT unavailable; checking in over HTTP", "err", err)
		} else {
			a.mq = mq
			defer mq.close()
		}
	}
	for {
		wait := a.opts.Interval + time.Duration(rand.Int64N(int64(a.opts.Interval/6)+1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
			a.heartbeat(ctx)
		}
	}
}

// resumeLocal starts the snapshot the agent ran before it restarted, without reinstalling, so the device
// works even when the platform cannot be reached.
func (a *Agent) resumeLocal(ctx context.Context) {
	a.mu.Lock()
	snap := a.st.Snapshot
	a.mu.Unlock()
	if snap == nil || !a.runner.Prepared() {
		return
	}
	a.log.Info("starting the snapshot from before the restart", "snapshot", snap.ID)
	a.start(ctx)
}

// heartbeat publishes the state over MQTT when connected, else checks in over HTTP.
func (a *Agent) heartbeat(ctx context.Context) {
	if m := a.mq; m != nil && m.connected() {
		a.sendStatus(m)
		return
	}
	a.checkIn(ctx)
}

// testHookStatus, when set (tests), is called with each status message made, before it is sent.
var testHookStatus func(state map[string]any)

// sendStatus publishes the current state on m, in order with the other status messages (statusMu).
func (a *Agent) sendStatus(m *mqttLink) {
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	state := a.report()
	if testHookStatus != nil {
		testHookStatus(state)
	}
	m.publishStatus(state)
}

// checkIn posts the state over HTTP and queues what a 409 names.
func (a *Agent) checkIn(ctx context.Context) {
	target, err := a.c.checkIn(ctx, a.report())
	switch {
	case errors.Is(err, ErrRevoked):
		a.log.Error("the platform no longer knows this device; stopping Node-RED and forgetting the snapshot")
		if a.mq != nil {
			a.mq.close() // its broker password is gone too; reconnecting would only be refused
		}
		a.enqueue(map[string]json.RawMessage{"revoked": json.RawMessage("true")})
	case err != nil:
		a.log.Warn("check-in failed; running what the device has", "err", err)
	case target != nil:
		a.enqueue(target)
	default:
		a.enqueue(map[string]json.RawMessage{}) // in sync: make sure it runs
	}
}

// enqueue hands a target to the updater, replacing one that is still waiting: only the newest matters.
func (a *Agent) enqueue(t map[string]json.RawMessage) {
	for {
		select {
		case a.targets <- t:
			return
		default:
		}
		select {
		case <-a.targets:
		default:
		}
	}
}

func (a *Agent) updater(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-a.targets:
			a.apply(ctx, t)
		case req := <-a.actions:
			req.done <- a.runAction(ctx, req.action)
		}
	}
}

// setState records the agent's state and, when it changed, reports it.
func (a *Agent) setState(state, detail string) {
	a.mu.Lock()
	changed := a.state != state || a.detail != detail
	a.state, a.detail = state, detail
	a.mu.Unlock()
	if changed {
		a.log.Info("state", "state", state, "detail", detail)
		a.reportNow()
	}
}

// reportNow tells the platform the current state without waiting for the heartbeat.
func (a *Agent) reportNow() {
	if m := a.mq; m != nil && m.connected() {
		a.sendStatus(m)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.checkInMu.Lock()
		defer a.checkInMu.Unlock()
		if _, err := a.c.checkIn(ctx, a.report()); err != nil {
			a.log.Debug("report state", "err", err)
		}
	}()
}

// report is the state object (docs/device-protocol.md §2.1).
func (a *Agent) report() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	ownerType := "none"
	switch {
	case a.st.Application != nil:
		ownerType = "application"
	case a.st.Project != nil:
		ownerType = "project"
	}
	var snapshot, settings any
	if a.st.Snapshot != nil {
		snapshot = a.st.Snapshot.ID
	}
	if a.st.Settings != nil {
		settings = a.st.Settings.Hash
	}
	mode := a.st.Mode
	if mode == "" {
		mode = "autonomous"
	}
	targetState := a.st.TargetState
	if targetState == "" {
		targetState = "running"
	}
	r := map[string]any{"ownerType": ownerType, "project": a.st.Project, "application": a.st.Application, "snapshot": snapshot,
		"settings": settings, "state": a.state, "mode": mode, "targetState": targetState,
		"health":       map[string]any{"uptime": int(time.Since(a.started).Seconds()), "snapshotRestartCount": a.restarts},
		"agentVersion": Version, "licensed": nil, "nodejsVersion": nodeVersion(), "nodeRedVersion": a.runner.NodeRedVersion()}
	if a.detail != "" {
		r["stateDetail"] = a.detail
	}
	return r
}

// nodeVersionOnce asks the host's Node.js its version once per process.
var nodeVersionOnce = sync.OnceValue(hostNodeVersion)

// hostNodeVersion runs `node --version` with the minimum environment of a child, not the agent's.
func hostNodeVersion() string {
	cmd := exec.Command("node", "--version")
	cmd.Env = childenv.New().List()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func nodeVersion() string { return nodeVersionOnce() }
