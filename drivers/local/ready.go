package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

const (
	readyPollInterval = 50 * time.Millisecond
	// startedFlowsGrace bounds the wait for the "Started flows" line once flows/state says start. Node-RED
	// sets that state before its nodes have started (http-in routes still 404), and logs the line after;
	// the grace only matters if the line never comes (e.g. a localised log).
	startedFlowsGrace = 2 * time.Second
)

// watchReady probes p in the background until its flows run, it exits, or ReadyTimeout passes, and then
// settles readiness for WaitReady and the status.
func (d *Driver) watchReady(inst *instance, p *process) {
	inst.mu.Lock()
	if p.readyDone != nil {
		inst.mu.Unlock()
		return
	}
	p.readyDone = make(chan struct{})
	token := p.token
	inst.mu.Unlock()
	go func() {
		err := d.waitFlows(inst, p, token)
		inst.mu.Lock()
		p.readyErr = err
		current := inst.proc == p && !p.stopping.Load()
		if current && err == nil {
			inst.status.State, inst.status.Reason = drivers.StateRunning, ""
			pf := p.pidFile()
			pf.ReadyAt = time.Now()
			if werr := writePidFile(inst.dir, pf); werr != nil {
				d.log.Warn("record readiness in pidfile", "instance", inst.id, "err", werr)
			}
		} else if current {
			inst.status.Reason = err.Error()
		}
		inst.mu.Unlock()
		close(p.readyDone)
		if err == nil {
			d.log.Info("node-red ready", "instance", inst.id, "after", time.Since(p.startedAt).Round(time.Millisecond))
		}
	}()
}

// waitFlows polls GET <admin>/flows/state until the flows run ("start", or "safe" in safe mode).
func (d *Driver) waitFlows(inst *instance, p *process, token string) error {
	url := runtimeURL(p.port) + drivers.AdminRoot + "flows/state"
	deadline := time.Now().Add(d.cfg.ReadyTimeout)
	last := "no answer yet"
	var sawStart time.Time
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			inst.logs.poll()
			return &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: describeExit(p), LastLines: inst.logs.last(lastLinesInErr)}
		case <-d.closing:
			return errors.New("driver closed")
		case <-tick.C:
		}
		state, err := d.flowsState(url, token)
		if err != nil {
			last = err.Error()
		} else {
			last = "flows state " + state
		}
		if state == "start" || (p.safe && state == "safe") {
			inst.logs.poll()
			if p.missingTypes.Load() {
				return &drivers.RuntimeError{Kind: drivers.ErrMissingTypes, LastLines: inst.logs.last(lastLinesInErr)}
			}
			if sawStart.IsZero() {
				sawStart = time.Now()
			}
			if state == "safe" || p.startedFlows.Load() || time.Since(sawStart) > startedFlowsGrace {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &drivers.RuntimeError{Kind: drivers.ErrNeverReady,
				Detail:    fmt.Sprintf("not ready after %s (%s)", d.cfg.ReadyTimeout, last),
				LastLines: inst.logs.last(lastLinesInErr)}
		}
	}
}

func describeExit(p *process) string {
	if p.exitCode < 0 {
		return "exited"
	}
	return fmt.Sprintf("exited with code %d", p.exitCode)
}

// flowsState asks Node-RED's admin API for the runtime state of the flows.
func (d *Driver) flowsState(url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := d.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("flows/state answered %d", resp.StatusCode)
	}
	var out struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("flows/state: %w", err)
	}
	return out.State, nil
}
