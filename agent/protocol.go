package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const userAgent = "FlowFuse Device Agent v" + Version + " (flowyard-agent)"

// ErrRevoked means the platform no longer knows the device or its token (401/404): the agent stops Node-RED
// and forgets its snapshot, as FlowFuse's does.
var ErrRevoked = errors.New("the platform does not know this device or its credentials")

// client speaks the protocol's HTTP side (docs/device-protocol.md §2).
type client struct {
	http     *http.Client
	forgeURL string
	deviceID string
	token    string
}

// registration is the platform's answer to provisioning (docs/device-protocol.md §1.3).
type registration struct {
	ID          string `json:"id"`
	ForgeURL    string `json:"forgeURL"`
	Credentials struct {
		Token            string `json:"token"`
		CredentialSecret string `json:"credentialSecret"`
		Broker           *struct {
			URL      string `json:"url"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"broker"`
	} `json:"credentials"`
}

// provision registers the device with a provisioning token: first the root URL must answer, then
// POST /api/v1/devices must answer 200.
func provision(ctx context.Context, hc *http.Client, cfg *DeviceConfig, name string) (*registration, error) {
	base := strings.TrimRight(cfg.ForgeURL, "/")
	req, _ := http.NewRequestWithContext(ctx, "GET", base, nil)
	req.Header.Set("Authorization", "Bearer "+cfg.ProvisioningToken)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the platform: %w", err)
	}
	drain(resp)
	if resp.StatusCode != 200 && resp.StatusCode != 204 {
		return nil, fmt.Errorf("reach the platform: %s answered %d", base, resp.StatusCode)
	}
	body := map[string]string{"name": name, "type": "Auto Provisioned", "team": cfg.ProvisioningTeam}
	var reg registration
	status, raw, err := doJSON(ctx, hc, "POST", base+"/api/v1/devices", cfg.ProvisioningToken, body, &reg)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if status != 200 || reg.ID == "" || reg.Credentials.Token == "" {
		return nil, fmt.Errorf("provision: the platform answered %d: %s", status, truncate(raw))
	}
	return &reg, nil
}

// checkIn posts the state (H4): nil target = in sync (200), a target = what to run (409).
func (c *client) checkIn(ctx context.Context, state any) (map[string]json.RawMessage, error) {
	var target map[string]json.RawMessage
	status, raw, err := doJSON(ctx, c.http, "POST", c.url("/live/state"), c.token, state, &target)
	switch {
	case err != nil:
		return nil, err
	case status == 401 || status == 404:
		return nil, ErrRevoked
	case status == 409:
		return target, nil
	case status >= 200 && status < 300:
		return nil, nil
	}
	return nil, fmt.Errorf("check in: the platform answered %d: %s", status, truncate(raw))
}

// snapshot downloads the target snapshot (H5).
func (c *client) snapshot(ctx context.Context) (*Snapshot, error) {
	var s Snapshot
	if err := c.get(ctx, "/live/snapshot", &s); err != nil {
		return nil, fmt.Errorf("download snapshot: %w", err)
	}
	return &s, nil
}

// settings downloads the device settings (H6).
func (c *client) settings(ctx context.Context) (*Settings, error) {
	var s Settings
	if err := c.get(ctx, "/live/settings", &s); err != nil {
		return nil, fmt.Errorf("download settings: %w", err)
	}
	return &s, nil
}

// audit posts an audit event (H7); failures are only logged by the caller.
func (c *client) audit(ctx context.Context, event map[string]any) error {
	status, raw, err := doJSON(ctx, c.http, "POST", strings.TrimRight(c.forgeURL, "/")+"/logging/device/"+c.deviceID+"/audit", c.token, event, nil)
	if err == nil && status != 200 {
		err = fmt.Errorf("audit: the platform answered %d: %s", status, truncate(raw))
	}
	return err
}

func (c *client) url(path string) string {
	return strings.TrimRight(c.forgeURL, "/") + "/api/v1/devices/" + c.deviceID + path
}

func (c *client) get(ctx context.Context, path string, out any) error {
	delay := time.Second
	for attempt := 1; ; attempt++ {
		transient, err := c.getOnce(ctx, path, out)
		if err == nil || !transient || attempt == getAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
	}
}

// getAttempts bounds the retries of a download: about 25 s of waiting covers a platform restart, so an outage
// of the platform is not reported as a failed install (which a rollout would count against the snapshot).
const getAttempts = 6

// getOnce reads a document once and says whether a failure is worth retrying (unreachable, or a 5xx).
func (c *client) getOnce(ctx context.Context, path string, out any) (bool, error) {
	status, raw, err := doJSON(ctx, c.http, "GET", c.url(path), c.token, nil, out)
	switch {
	case err != nil:
		return true, err
	case status == 401 || status == 404:
		return false, ErrRevoked
	case status != 200:
		return status >= 500, fmt.Errorf("the platform answered %d: %s", status, truncate(raw))
	}
	return false, nil
}

// doJSON sends a JSON request and decodes a JSON answer into out when the status is 2xx or 409.
func doJSON(ctx context.Context, hc *http.Client, method, url, token string, body, out any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && ((resp.StatusCode >= 200 && resp.StatusCode < 300) || resp.StatusCode == 409) {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, raw, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
