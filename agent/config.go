// Package agent is flowyard-agent's logic: a device agent that speaks the FlowFuse device protocol to Flowyard
// or to FlowFuse. It reads the same device.yml, provisions itself with a provisioning token, checks in over HTTP
// and MQTT, downloads its target snapshot, writes a Node-RED user dir, installs the modules with npm, runs
// Node-RED (restarting it when it crashes), reports its state, keeps running its last snapshot while the
// platform is away, and picks up where it was after its own restart. Simulate runs thousands of agents without Node-RED in one process, for fleet tests.
//
// The agent imports none of the platform's server packages: it talks to the platform only over the wire.
package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Version is the agent version reported to the platform. Platforms gate features on the FlowFuse agent
// version whose protocol an agent speaks; this one speaks 4.2.1's.
const Version = "4.2.1-flowyard"

// DeviceConfig is a FlowFuse device.yml in either of its shapes (docs/device-protocol.md §1.2): device mode (deviceId,
// token, credentialSecret, forgeURL, optional broker) or provisioning mode (provisioningToken, provisioningTeam,
// forgeURL). Keys the agent does not know are kept, as FlowFuse's agent keeps "provisioning extras".
type DeviceConfig struct {
	DeviceID          string `yaml:"deviceId,omitempty"`
	Token             string `yaml:"token,omitempty"`
	CredentialSecret  string `yaml:"credentialSecret,omitempty"`
	ForgeURL          string `yaml:"forgeURL,omitempty"`
	BrokerURL         string `yaml:"brokerURL,omitempty"`
	BrokerUsername    string `yaml:"brokerUsername,omitempty"`
	BrokerPassword    string `yaml:"brokerPassword,omitempty"`
	ProvisioningToken string `yaml:"provisioningToken,omitempty"`
	ProvisioningTeam  string `yaml:"provisioningTeam,omitempty"`
	ProvisioningName  string `yaml:"provisioningName,omitempty"`
	DeviceName        string `yaml:"deviceName,omitempty"`
	Port              int    `yaml:"port,omitempty"`
	AutoProvisioned   bool   `yaml:"autoProvisioned,omitempty"`
	CliSetup          bool   `yaml:"cliSetup,omitempty"` // set up with a one-time code
	// Extras are the other keys of the file, written back as they were.
	Extras map[string]any `yaml:",inline"`
}

// Provisioning reports whether the file is in provisioning mode.
func (c *DeviceConfig) Provisioning() bool { return c.ProvisioningToken != "" }

// Validate checks the required keys of the file's shape.
func (c *DeviceConfig) Validate() error {
	var missing []string
	need := func(key, v string) {
		if v == "" {
			missing = append(missing, key)
		}
	}
	need("forgeURL", c.ForgeURL)
	// provisioningTeam may be left out: Flowyard reads the team from the provisioning token.
	if !c.Provisioning() {
		need("deviceId", c.DeviceID)
		need("token", c.Token)
		need("credentialSecret", c.CredentialSecret)
		if c.BrokerURL != "" {
			need("brokerUsername", c.BrokerUsername)
			need("brokerPassword", c.BrokerPassword)
		}
	}
	if missing != nil {
		return fmt.Errorf("device config is missing %v", missing)
	}
	return nil
}

// LoadConfig reads a device.yml.
func LoadConfig(path string) (*DeviceConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read device config: %w", err)
	}
	var c DeviceConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse device config %s: %w", path, err)
	}
	return &c, c.Validate()
}

// SaveConfig replaces a device.yml in one step (see writeFileAtomic): the device's credentials are in it.
func SaveConfig(path string, c *DeviceConfig) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

// writeFileAtomic replaces path with b in one step. The new content goes to a temporary file in the same folder,
// is flushed to the disk, and is renamed over path: whoever reads path, and the agent itself after being killed
// or losing power at any moment, finds the old content or the new, never no file and never half of one.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if err := writeSynced(f, b, mode); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable. Some systems (Windows) cannot sync a folder; the file is in place anyway.
	_ = syncDir(dir)
	return nil
}

// writeSynced writes b to f, gives it mode, flushes it to the disk and closes it.
func writeSynced(f *os.File, b []byte, mode os.FileMode) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
