package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SetupOptions set up a device with a one-time code (docs/device-protocol.md §1.4), as FlowFuse's agent does
// with `--otc <code> --ff-url <url>`.
type SetupOptions struct {
	ForgeURL   string
	Code       string
	ConfigPath string // where device.yml is written
	Dir        string // the agent's working dir, whose old state is forgotten
	// ImportFlows, when set, is a Node-RED flows file (beside its user dir's package.json, its _cred.json and
	// the secret in .config.runtime.json or settings.json) sent once as the device's first target. FlowFuse's
	// agent asks for it interactively; flowyard-agent takes it from the command line.
	ImportFlows string
	HTTP        *http.Client
}

// setupAnswer is the platform's answer to a one-time code: a registration, with the team's name and the
// platform's version.
type setupAnswer struct {
	registration
	Name string `json:"name"`
	Team struct {
		Name string `json:"name"`
	} `json:"team"`
	Meta struct {
		FFVersion string `json:"ffVersion"`
	} `json:"meta"`
}

// Setup exchanges a one-time code for the device's config and writes it (with cliSetup: true), then imports
// the flows asked for. It returns a line to show the user.
func Setup(ctx context.Context, o SetupOptions) (string, error) {
	if len(o.Code) < 8 {
		return "", errors.New("a one-time code has 8 characters or more")
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	base := strings.TrimRight(o.ForgeURL, "/")
	if err := probeSettings(ctx, o.HTTP, base); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	var ans setupAnswer
	bearer := base64.StdEncoding.EncodeToString([]byte(o.Code))
	status, raw, err := doJSON(ctx, o.HTTP, "POST", base+"/api/v1/devices/", bearer, map[string]any{"setup": true, "agentHost": host}, &ans)
	switch {
	case err != nil:
		return "", fmt.Errorf("set up with the one-time code: %w", err)
	case status == 401:
		return "", errors.New("the one-time code is not valid, was used already or has expired")
	case status != 200 || ans.ID == "" || ans.Credentials.Token == "":
		return "", fmt.Errorf("set up with the one-time code: the platform answered %d: %s", status, truncate(raw))
	}
	if err := saveSetUp(o, &ans, base); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("set up as %s (%s) in team %s", ans.Name, ans.ID, ans.Team.Name)
	if o.ImportFlows == "" {
		return msg, nil
	}
	if !importSupported(ans.Meta.FFVersion) {
		return msg + "; the platform does not take imported flows", nil
	}
	c := &client{http: o.HTTP, forgeURL: base, deviceID: ans.ID, token: ans.Credentials.Token}
	if err := importFlows(ctx, c, o.ImportFlows); err != nil {
		return msg, err
	}
	return msg + "; flows imported as its target", nil
}

// probeSettings is the agent's reachability check before setup: any of these answers means a platform is there.
func probeSettings(ctx context.Context, hc *http.Client, base string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/settings/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the platform: %w", err)
	}
	drain(resp)
	switch resp.StatusCode {
	case 200, 204, 401, 403, 404:
		return nil
	}
	return fmt.Errorf("reach the platform: %s answered %d", base, resp.StatusCode)
}

// saveSetUp writes the device config and forgets what the working dir ran before: the device has a new
// credential secret, with which the old user dir's credentials do not decrypt.
func saveSetUp(o SetupOptions, ans *setupAnswer, base string) error {
	cfg := &DeviceConfig{DeviceID: ans.ID, ForgeURL: ans.ForgeURL, Token: ans.Credentials.Token,
		CredentialSecret: ans.Credentials.CredentialSecret, CliSetup: true}
	if cfg.ForgeURL == "" {
		cfg.ForgeURL = base
	}
	if b := ans.Credentials.Broker; b != nil {
		cfg.BrokerURL, cfg.BrokerUsername, cfg.BrokerPassword = b.URL, b.Username, b.Password
	}
	if err := SaveConfig(o.ConfigPath, cfg); err != nil {
		return fmt.Errorf("write the device config: %w", err)
	}
	_ = os.Remove(filepath.Join(o.Dir, stateFile))
	return os.RemoveAll(filepath.Join(o.Dir, "project"))
}

// importSupported: FlowFuse platforms take imported flows from 2.16.1 on (docs/device-protocol.md §7).
func importSupported(ffVersion string) bool {
	v, ok := parseSemver(ffVersion)
	return ok && (v[0] > 2 || v[0] == 2 && (v[1] > 16 || v[1] == 16 && v[2] > 0))
}

func parseSemver(s string) ([3]int, bool) {
	var v [3]int
	s, _, _ = strings.Cut(strings.TrimPrefix(s, "v"), "-")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

// importFlows sends a local Node-RED's flows once, as FlowFuse's agent does right after setup: the platform
// makes them a snapshot and the device's target.
func importFlows(ctx context.Context, c *client, flowsFile string) error {
	flows, err := os.ReadFile(flowsFile)
	if err != nil || !json.Valid(flows) {
		return fmt.Errorf("read the flows to import: %v", err)
	}
	dir := filepath.Dir(flowsFile)
	creds := readJSONFile(strings.TrimSuffix(flowsFile, ".json")+"_cred.json", "{}")
	secret := localCredentialSecret(dir)
	if secret == "" {
		creds = json.RawMessage("{}") // as FlowFuse's agent: without the secret the credentials cannot travel
	}
	var pkg struct {
		Name         string            `json:"name"`
		Version      string            `json:"version"`
		Description  string            `json:"description"`
		Dependencies map[string]string `json:"dependencies"`
	}
	_ = json.Unmarshal(readJSONFile(filepath.Join(dir, "package.json"), "{}"), &pkg)
	body := map[string]any{"state": "provisioning", "agentVersion": Version, "provisioning": map[string]any{
		"name": "Existing Flows Imported", "description": "Flows imported from '" + flowsFile + "'", "credentialSecret": secret,
		"deviceConfig": map[string]any{"flows": json.RawMessage(flows), "credentials": creds,
			"package": map[string]any{"modules": pkg.Dependencies, "name": pkg.Name, "version": pkg.Version, "description": pkg.Description}}}}
	status, raw, err := doJSON(ctx, c.http, "POST", c.url("/live/state"), c.token, body, nil)
	if err == nil && status != 200 {
		err = fmt.Errorf("the platform answered %d: %s", status, truncate(raw))
	}
	if err != nil {
		return fmt.Errorf("import the flows: %w", err)
	}
	return nil
}

// localCredentialSecret is the secret a Node-RED user dir encrypts its credentials with: the one Node-RED
// generated (.config.runtime.json) or the one its settings name (settings.json, as FlowFuse's agent writes it).
func localCredentialSecret(dir string) string {
	var runtime struct {
		Secret string `json:"_credentialSecret"`
	}
	if json.Unmarshal(readJSONFile(filepath.Join(dir, ".config.runtime.json"), "{}"), &runtime) == nil && runtime.Secret != "" {
		return runtime.Secret
	}
	var settings struct {
		Secret string `json:"credentialSecret"`
	}
	_ = json.Unmarshal(readJSONFile(filepath.Join(dir, "settings.json"), "{}"), &settings)
	return settings.Secret
}
