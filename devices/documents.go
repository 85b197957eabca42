package devices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// DefaultNodeRedVersion is what a device installs when its snapshot names no Node-RED version: the line that
// runs on Node 20 (FlowFuse's default for agents that report no Node.js version).
const DefaultNodeRedVersion = "~4.1.0"

// LiveSnapshot is the `GET live/snapshot` document (docs/device-protocol.md §2.3): the target snapshot with the
// platform's variables in env, node-red among the modules, and the credentials re-encrypted to the device's own secret.
// A device without a target gets an empty object, which tells the agent to run nothing.
func (s *Service) LiveSnapshot(ctx context.Context, d *storage.Device) (map[string]any, error) {
	if d.TargetSnapshotID == nil {
		return map[string]any{}, nil
	}
	snap, err := s.Store.GetSnapshot(ctx, *d.TargetSnapshotID)
	if err != nil {
		return nil, err
	}
	creds, err := s.reencrypt(snap.Credentials, snap.CredentialSecret, d.CredentialSecret)
	if err != nil {
		return nil, err
	}
	platformEnv, _, err := s.platformEnv(ctx, d)
	if err != nil {
		return nil, err
	}
	modules := map[string]string{}
	for name, version := range snap.Modules {
		modules[name] = version
	}
	if _, ok := modules["node-red"]; !ok {
		modules["node-red"] = DefaultNodeRedVersion
		if snap.NodeRedVersion != "" {
			modules["node-red"] = snap.NodeRedVersion
		}
	}
	if v, err := s.nodeRedVersionOverride(ctx, d); err != nil {
		return nil, err
	} else if v != "" {
		modules["node-red"] = v
	}
	settings := snap.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	return map[string]any{"id": snap.ID, "name": snap.Name, "description": snap.Description, "settings": settings,
		"env": mergeEnv(platformEnv, snap.Env), "modules": modules, "flows": json.RawMessage(snap.Flows),
		"credentials": creds}, nil
}

// nodeRedVersionOverride is the Node-RED version the fleet settings choose for an application-owned device, ""
// for none: FlowFuse puts it among the snapshot's modules for those devices only (docs/device-protocol.md §2.3).
func (s *Service) nodeRedVersionOverride(ctx context.Context, d *storage.Device) (string, error) {
	if d.ApplicationID == nil {
		return "", nil
	}
	g, err := s.deviceGroup(ctx, d)
	if err != nil {
		return "", err
	}
	var group domain.FleetSettings
	if g != nil {
		group = g.FleetSettings
	}
	return domain.MergeFleetSettings(group, d.FleetSettings).NodeRedVersion, nil
}

// reencrypt moves a credentials blob from one sealed secret to another.
func (s *Service) reencrypt(blob, fromSealed, toSealed string) (json.RawMessage, error) {
	from, err := s.Sealer.Open(fromSealed)
	if err != nil {
		return nil, fmt.Errorf("open snapshot credential secret: %w", err)
	}
	to, err := s.Sealer.Open(toSealed)
	if err != nil {
		return nil, fmt.Errorf("open device credential secret: %w", err)
	}
	if strings.TrimSpace(blob) == "" {
		blob = "{}"
	}
	out, err := nodered.ReencryptCredentials(from, to, json.RawMessage(blob))
	if err != nil {
		return nil, fmt.Errorf("re-encrypt snapshot credentials for the device: %w", err)
	}
	return out, nil
}

// platformEnv is what the platform tells the flows about where they run (docs/device-protocol.md §2.3): owner, device,
// snapshot. It also returns the target snapshot without its content (nil without a target).
func (s *Service) platformEnv(ctx context.Context, d *storage.Device) ([][2]string, *storage.Snapshot, error) {
	var env [][2]string
	switch {
	case d.ApplicationID != nil:
		app, err := s.records().GetApplication(ctx, *d.ApplicationID)
		if err != nil {
			return nil, nil, err
		}
		env = append(env, [2]string{"FF_APPLICATION_ID", app.ID}, [2]string{"FF_APPLICATION_NAME", app.Name})
	case d.InstanceID != nil:
		in, err := s.records().GetInstance(ctx, *d.InstanceID)
		if err != nil {
			return nil, nil, err
		}
		env = append(env, [2]string{"FF_PROJECT_ID", in.ID}, [2]string{"FF_PROJECT_NAME", in.Name},
			[2]string{"FF_INSTANCE_ID", in.ID}, [2]string{"FF_INSTANCE_NAME", in.Name})
	}
	env = append(env, [2]string{"FF_DEVICE_ID", d.ID}, [2]string{"FF_DEVICE_NAME", d.Name}, [2]string{"FF_DEVICE_TYPE", d.Type})
	if d.TargetSnapshotID == nil {
		return append(env, [2]string{"FF_SNAPSHOT_ID", "0"}, [2]string{"FF_SNAPSHOT_NAME", "None"}), nil, nil
	}
	snap, err := s.records().GetSnapshotMeta(ctx, *d.TargetSnapshotID)
	if err != nil {
		return nil, nil, err
	}
	return append(env, [2]string{"FF_SNAPSHOT_ID", snap.ID}, [2]string{"FF_SNAPSHOT_NAME", snap.Name}), snap, nil
}

// mergeEnv flattens the platform's variables and then each layer of user variables, a later layer winning,
// leaving out user variables named FF_*: those are the platform's.
func mergeEnv(platform [][2]string, layers ...[]domain.EnvVar) map[string]string {
	out := make(map[string]string, len(platform))
	for _, kv := range platform {
		out[kv[0]] = kv[1]
	}
	for _, layer := range layers {
		for _, e := range layer {
			if !strings.HasPrefix(e.Name, "FF_") {
				out[e.Name] = e.Value
			}
		}
	}
	return out
}

// settingsEnv is the env of a device's settings: the platform's variables, then its target snapshot's env,
// its group's env and its own, a later one winning, as FlowFuse merges them. The agent lays it over the
// snapshot's env, so it is the whole environment the flows see.
func (s *Service) settingsEnv(ctx context.Context, d *storage.Device, g *storage.DeviceGroup) (map[string]string, error) {
	platformEnv, snap, err := s.platformEnv(ctx, d)
	if err != nil {
		return nil, err
	}
	var snapEnv, groupEnv []domain.EnvVar
	if snap != nil {
		snapEnv = snap.Env
	}
	if g != nil {
		groupEnv = g.Env
	}
	return mergeEnv(platformEnv, snapEnv, groupEnv, d.Env), nil
}

// settingsDocument is the `GET live/settings` document without its hash (docs/device-protocol.md §2.4): the env,
// the fleet settings (group's, then the device's own), and FlowFuse's licensed features, which Flowyard does
// not offer to devices, all off.
func (s *Service) settingsDocument(ctx context.Context, d *storage.Device) (map[string]any, error) {
	g, err := s.deviceGroup(ctx, d)
	if err != nil {
		return nil, err
	}
	env, err := s.settingsEnv(ctx, d, g)
	if err != nil {
		return nil, err
	}
	fleet, err := s.effectiveFleetSettings(d, g)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{
		"env":          env,
		"autoSnapshot": false,
		"features":     map[string]bool{"shared-library": false, "projectComms": false, "teamBroker": false, "tables": false},
		"assistant": map[string]any{"enabled": false, "requestTimeout": 60000, "mcp": map[string]bool{"enabled": false},
			"completions": map[string]bool{"enabled": false, "inlineEnabled": false}},
		"mqttNodes": map[string]any{"enabled": false, "username": "", "linked": false},
		"mode":      TargetOf(d).Mode,
	}
	fleetDocument(doc, fleet)
	return doc, nil
}

// LiveSettings is the `GET live/settings` document with the device's settings hash.
func (s *Service) LiveSettings(ctx context.Context, d *storage.Device) (map[string]any, error) {
	doc, err := s.settingsDocument(ctx, d)
	if err != nil {
		return nil, err
	}
	doc["hash"] = d.SettingsHash
	return doc, nil
}

// Rehash recomputes a device's settings hash from its settings document; the caller stores the column
// "settings_hash". It must run after every change to what the document holds (name, type, env, owner, target
// snapshot, mode, its group or its group's env), so the agent refreshes its settings.
func (s *Service) Rehash(ctx context.Context, st *storage.Store, d *storage.Device) error {
	svc := *s
	svc.Store = st
	doc, err := svc.settingsDocument(ctx, d)
	if err != nil {
		return err
	}
	b, err := json.Marshal(doc) // maps marshal with sorted keys, so equal documents hash equally
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	d.SettingsHash = hex.EncodeToString(sum[:])
	return nil
}

// rehashBatch is how many devices RehashDevices reads and writes at once.
const rehashBatch = 200

// RehashDevices recomputes and stores the settings hash of each device, inside tx: after a change to what
// their settings hold that is not their own, such as their group's env, joining or leaving the group, or a
// target set in bulk (rollouts). Devices are read and written a batch at a time, and what a batch shares (its
// application, target snapshot, group) is read once; a device deleted meanwhile is left out.
func (s *Service) RehashDevices(ctx context.Context, tx *storage.Store, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), rehashBatch)
		list, err := tx.GetDevices(ctx, ids[:n])
		if err != nil {
			return err
		}
		ids = ids[n:]
		svc := *s
		svc.memo = newMemo(tx)
		hashes := make(map[string]string, len(list))
		for i := range list {
			if err := svc.Rehash(ctx, tx, &list[i]); err != nil {
				return err
			}
			hashes[list[i].ID] = list[i].SettingsHash
		}
		if err := tx.SetSettingsHashes(ctx, hashes); err != nil {
			return err
		}
	}
	return nil
}
