package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// target is an `update` command or a 409 body, with key presence kept (docs/device-protocol.md §3.3: "key presence
// matters").
type target map[string]json.RawMessage

// str reads a key: present, and its value (nil for JSON null).
func (t target) str(key string) (value *string, present bool) {
	raw, ok := t[key]
	if !ok {
		return nil, false
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, true
	}
	return &s, true
}

func (t target) bool(key string) bool {
	var b bool
	_ = json.Unmarshal(t[key], &b)
	return b
}

// apply is the deployment algorithm (docs/device-protocol.md §4.1): compare what the platform wants with what runs,
// download what changed, write and install it, start Node-RED, and report each step.
func (a *Agent) apply(ctx context.Context, raw map[string]json.RawMessage) {
	t := target(raw)
	if t.bool("revoked") {
		a.forget(ctx, true)
		return
	}
	a.mu.Lock()
	if mode, ok := t.str("mode"); ok && mode != nil {
		a.st.Mode = *mode
	}
	if app, ok := t.str("application"); ok {
		a.st.Application, a.st.Project = app, nil
	} else if proj, ok := t.str("project"); ok {
		a.st.Project, a.st.Application = proj, nil
	}
	developer := a.st.Mode == "developer" && !t.bool("forceUpdate") && a.st.Snapshot != nil
	local, localSettings := a.st.Snapshot, a.st.Settings
	a.saveState()
	a.mu.Unlock()

	snap, snapPresent := t.str("snapshot")
	settings, settingsPresent := t.str("settings")
	if developer {
		a.ensureRunning(ctx) // developer mode: the device's flows are edited on the device
		return
	}
	if snapPresent && snap == nil {
		a.forget(ctx, false)
		return
	}
	needSnap := snapPresent && (local == nil || local.ID != *snap)
	needSettings := needSnap || localSettings == nil || (settingsPresent && (settings == nil || *settings != localSettings.Hash))
	if !needSnap && !needSettings || (local == nil && !needSnap) {
		a.ensureRunning(ctx)
		return
	}
	a.deploy(ctx, needSnap, needSettings)
}

// deploy downloads and starts a new snapshot and/or settings.
func (a *Agent) deploy(ctx context.Context, needSnap, needSettings bool) {
	a.setState("updating", "")
	if err := a.runner.Stop(ctx); err != nil {
		a.log.Warn("stop Node-RED for the update", "err", err)
	}
	a.mu.Lock()
	snap, settings := a.st.Snapshot, a.st.Settings
	a.mu.Unlock()
	var err error
	if needSnap {
		if snap, err = a.c.snapshot(ctx); err != nil {
			a.failed(ctx, err)
			return
		}
		if snap.ID == "" {
			a.forget(ctx, false) // the platform has nothing for this device to run
			return
		}
	}
	if needSettings {
		if settings, err = a.c.settings(ctx); err != nil {
			a.failed(ctx, err)
			return
		}
	}
	a.mu.Lock()
	effective := withNodeRedVersion(snap, settings, a.st.Application != nil)
	installed := a.st.NodeRed
	if installed == "" && a.st.Snapshot != nil {
		installed = a.st.Snapshot.Modules["node-red"] // installed by an agent that did not record it
	}
	install := needSnap || effective.Modules["node-red"] != installed
	a.st.Snapshot, a.st.Settings = snap, settings // persisted before installing, as FlowFuse's agent does
	a.st.SecretDigest = secretDigest(a.cfg.CredentialSecret)
	a.saveState()
	a.mu.Unlock()
	a.log.Info("deploying", "snapshot", snap.ID, "newSnapshot", needSnap, "newSettings", needSettings, "install", install,
		"nodeRed", effective.Modules["node-red"])
	if install {
		a.setState("installing", "")
	}
	if err := a.runner.Prepare(ctx, effective, settings, install); err != nil {
		a.failed(ctx, fmt.Errorf("install snapshot %s: %w", snap.ID, err))
		return
	}
	a.mu.Lock()
	a.st.NodeRed = effective.Modules["node-red"]
	a.saveState()
	a.mu.Unlock()
	a.start(ctx)
}

// withNodeRedVersion is the snapshot as the device installs it: for an application-owned device, the Node-RED
// version its fleet settings choose replaces the snapshot's (docs/device-protocol.md §4.2), as FlowFuse's agent does.
func withNodeRedVersion(snap *Snapshot, settings *Settings, applicationOwned bool) *Snapshot {
	if settings == nil || settings.Editor.NodeRedVersion == "" || !applicationOwned {
		return snap
	}
	out := *snap
	out.Modules = make(map[string]string, len(snap.Modules))
	for k, v := range snap.Modules {
		out.Modules[k] = v
	}
	out.Modules["node-red"] = settings.Editor.NodeRedVersion
	return &out
}

func (a *Agent) failed(ctx context.Context, err error) {
	if errors.Is(err, ErrRevoked) {
		a.forget(ctx, true)
		return
	}
	a.log.Error("update failed", "err", err)
	a.setState("error", err.Error())
}

// start starts Node-RED and reports running, or the error; a suspended device stays stopped.
func (a *Agent) start(ctx context.Context) {
	if a.suspended() {
		a.setState("suspended", "")
		return
	}
	a.setState("starting", "")
	if err := a.runner.Start(ctx); err != nil {
		a.setState("error", "start Node-RED: "+err.Error())
		return
	}
	a.mu.Lock()
	a.crashes = nil
	a.mu.Unlock()
	a.setState("running", "")
	a.resumeEditor()
}

// ensureRunning starts the local snapshot when Node-RED is not running and nothing else is asked.
func (a *Agent) ensureRunning(ctx context.Context) {
	a.mu.Lock()
	snap, state := a.st.Snapshot, a.state
	a.mu.Unlock()
	if snap == nil || state == "running" || state == "error" || state == "crashed" || state == "suspended" && a.suspended() || !a.runner.Prepared() {
		if snap == nil && state != "stopped" {
			a.setState("stopped", "")
		}
		return
	}
	a.start(ctx)
}

// forget stops Node-RED and clears the snapshot: the platform unassigned the device, removed its target, or
// (revoked) no longer knows it.
func (a *Agent) forget(ctx context.Context, revoked bool) {
	if err := a.runner.Stop(ctx); err != nil {
		a.log.Warn("stop Node-RED", "err", err)
	}
	if err := a.runner.Clean(); err != nil {
		a.log.Warn("delete the Node-RED user dir", "err", err)
	}
	if revoked {
		a.stopEditor() // the platform no longer knows the device, nor its editor token
	}
	a.mu.Lock()
	a.st.Snapshot = nil
	if revoked {
		a.st.Settings, a.st.Application, a.st.Project = nil, nil, nil
	}
	a.saveState()
	a.mu.Unlock()
	a.setState("stopped", "")
}

// onNodeREDExit handles Node-RED exiting on its own: report the crash, and restart it with a growing delay
// unless it crashed five times within a minute (then it stays crashed, as FlowFuse's loop detection does).
func (a *Agent) onNodeREDExit(err error) {
	a.mu.Lock()
	now := time.Now()
	a.crashes = append(a.crashes, now)
	for len(a.crashes) > 0 && now.Sub(a.crashes[0]) > time.Minute {
		a.crashes = a.crashes[1:]
	}
	n := len(a.crashes)
	a.restarts++
	a.mu.Unlock()
	detail := fmt.Sprintf("Node-RED exited: %v", err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := "exited"
	if n >= 5 {
		code, detail = "loop_detected", detail+" (5 crashes within a minute; not restarting)"
	}
	if aerr := a.c.audit(ctx, map[string]any{"timestamp": time.Now().UnixMilli(), "event": "crashed",
		"info": map[string]any{"code": code, "info": detail}}); aerr != nil {
		a.log.Debug("audit crash", "err", aerr)
	}
	a.setState("crashed", detail)
	if n >= 5 {
		return
	}
	time.Sleep(time.Duration(n) * time.Second)
	a.start(context.Background())
}
