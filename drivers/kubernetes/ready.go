package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/drivers"
)

// WaitReady implements drivers.Driver. It polls the instance's status until its pod is ready, then asks
// Node-RED through the Service whether the flows run (GET <admin root>flows/state == "start", or "safe" in
// safe mode), with the admin token from the instance's Secret. A crashed, stopped or removed instance ends
// the wait with an error; so does ReadyTimeout.
func (d *Driver) WaitReady(ctx context.Context, id string) (drivers.Status, error) {
	deadline := time.Now().Add(d.cfg.ReadyTimeout)
	last := "no status yet"
	var st drivers.Status
	for {
		var err error
		st, err = d.Status(ctx, id)
		switch {
		case err != nil:
			last = err.Error() // the API server may be briefly unreachable: keep polling
		case st.State == drivers.StateMissing:
			return st, fmt.Errorf("wait ready %s: %w", id, drivers.ErrNotFound)
		case st.State == drivers.StateStopped:
			return st, &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: st.Reason}
		case st.State == drivers.StateCrashed:
			return st, &drivers.RuntimeError{Kind: drivers.ErrExited, Detail: st.Reason, LastLines: st.LastLines}
		case st.State == drivers.StateRunning:
			done, detail, err := d.flowsStarted(ctx, id, st.URL)
			if done || err != nil {
				return st, err
			}
			last = detail
		default:
			last = st.Reason
		}
		if time.Now().After(deadline) {
			return st, &drivers.RuntimeError{Kind: drivers.ErrNeverReady,
				Detail: fmt.Sprintf("not ready after %s (%s)", d.cfg.ReadyTimeout, last), LastLines: d.recentLines(ctx, id, lastLinesOnFail)}
		}
		if err := sleep(ctx, d.cfg.PollInterval); err != nil {
			return st, err
		}
	}
}

// flowsStarted asks Node-RED whether its flows run. It reports done with a nil error when they do, done
// with an error when they wait for missing node types, and otherwise what it saw.
func (d *Driver) flowsStarted(ctx context.Context, id, baseURL string) (done bool, detail string, err error) {
	token, safe, err := d.readinessInputs(ctx, id)
	if err != nil {
		return false, err.Error(), nil
	}
	state, err := d.flowsState(ctx, baseURL+drivers.AdminRoot+"flows/state", token)
	if err != nil {
		return false, err.Error(), nil
	}
	if state != "start" && !(safe && state == "safe") {
		return false, "flows state " + state, nil
	}
	lines := d.recentLines(ctx, id, 10*lastLinesOnFail)
	for _, l := range lines {
		if strings.HasPrefix(l, "Waiting for missing types") {
			return true, "", &drivers.RuntimeError{Kind: drivers.ErrMissingTypes, LastLines: lines[max(0, len(lines)-lastLinesOnFail):]}
		}
	}
	return true, "", nil
}

// readinessInputs reads the admin token from the instance's Secret and whether its pod runs in safe mode.
func (d *Driver) readinessInputs(ctx context.Context, id string) (token string, safe bool, err error) {
	name := objectName(id)
	sec, err := d.cfg.Client.CoreV1().Secrets(d.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	token = string(sec.Data[keyAdminToken])
	if token == "" {
		return "", false, errors.New("the instance's secret holds no admin token")
	}
	dep, err := d.deployments().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", false, fmt.Errorf("read deployment: %w", err)
	}
	return token, dep.Spec.Template.Annotations[annotationSafeMode] == "true", nil
}

// flowsState asks Node-RED's admin API for the runtime state of the flows.
func (d *Driver) flowsState(ctx context.Context, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("flows/state: %w", err)
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

// recentLines returns the messages of the instance's last n log lines, for error reports.
func (d *Driver) recentLines(ctx context.Context, id string, n int) []string {
	lines, err := d.Logs(ctx, id, time.Time{}, n)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.Msg)
	}
	return out
}
