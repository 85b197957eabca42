package agent

import (
	"context"
	"encoding/json"
	"errors"
)

// Actions on Node-RED (the `action` command, docs/device-protocol.md §3.3): start, restart and suspend, with the
// target state persisted so that a suspended device stays stopped across updates and agent restarts.

// actionRequest is an action waiting for the updater, which runs it between deployments.
type actionRequest struct {
	action string
	done   chan error
}

var errNoSnapshot = errors.New("the device has no snapshot to run")

// act runs an action on the updater and returns its outcome.
func (a *Agent) act(ctx context.Context, action string) error {
	req := actionRequest{action: action, done: make(chan error, 1)}
	select {
	case a.actions <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runAction does what an action asks, on the updater.
func (a *Agent) runAction(ctx context.Context, action string) error {
	target := "running"
	if action == "suspend" {
		target = "suspended"
	} else if action != "start" && action != "restart" {
		return errors.New("unknown action " + action)
	}
	a.mu.Lock()
	a.st.TargetState = target
	a.saveState()
	hasSnapshot := a.st.Snapshot != nil && a.runner.Prepared()
	a.mu.Unlock()
	switch action {
	case "suspend":
		if err := a.runner.Stop(ctx); err != nil {
			return err
		}
		a.setState("suspended", "")
	case "restart":
		if !hasSnapshot {
			return errNoSnapshot
		}
		a.setState("restarting", "")
		if err := a.runner.Stop(ctx); err != nil {
			return err
		}
		a.start(ctx)
	case "start":
		if !hasSnapshot {
			return errNoSnapshot
		}
		a.mu.Lock()
		running := a.state == "running"
		a.mu.Unlock()
		if !running {
			a.start(ctx)
		}
	}
	return nil
}

// suspended reports whether the platform asked Node-RED to stay stopped.
func (a *Agent) suspended() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.TargetState == "suspended"
}

// actionReply is the answer to `action`: {success:true} or {success:false, error:{message, code}}.
func actionReply(err error) map[string]any {
	if err == nil {
		return map[string]any{"success": true}
	}
	code := "action_failed"
	if errors.Is(err, errNoSnapshot) {
		code = "no_snapshot"
	}
	return map[string]any{"success": false, "error": map[string]any{"message": err.Error(), "code": code, "error": err.Error()}}
}

// actionOf reads the action a command's payload names.
func actionOf(payload []byte) string {
	var msg struct {
		Payload struct {
			Action string `json:"action"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(payload, &msg)
	return msg.Payload.Action
}
