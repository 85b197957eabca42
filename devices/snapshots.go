package devices

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/nodered"
	"github.com/flowyard/flowyard/storage"
)

// maxDeviceSnapshotBytes caps the flows and credentials pulled from a device, as for instance snapshots.
const maxDeviceSnapshotBytes = 20 << 20

// MaxDeviceSnapshots caps the snapshots pulled from one device (by a user, or imported at provisioning): a
// device's agent must not be able to fill the store with them.
const MaxDeviceSnapshots = 100

// Upload is what an agent answers to the `upload` command (docs/device-protocol.md §3.3): its state, its flows, its
// credentials encrypted with its own credential secret, and its package.
type Upload struct {
	State       UploadState     `json:"state"`
	Flows       json.RawMessage `json:"flows"`
	Credentials json.RawMessage `json:"credentials"`
	Package     struct {
		Modules     map[string]string `json:"modules"`
		Version     string            `json:"version"`
		Name        string            `json:"name"`
		Description string            `json:"description"`
	} `json:"package"`
}

// UploadState is the state an agent was in when it answered `upload`, by name ("" when it did not say). FlowFuse agents
// send their whole state object there, the body of `live/state` (docs/device-protocol.md §2.1), or null while they
// update; older flowyard-agents sent the state's name alone. All three are read.
type UploadState string

// UnmarshalJSON reads a state object (checked as a state report is), a state name, or null.
func (s *UploadState) UnmarshalJSON(b []byte) error {
	trimmed := bytes.TrimSpace(b)
	switch {
	case bytes.Equal(trimmed, []byte("null")):
		*s = ""
		return nil
	case bytes.HasPrefix(trimmed, []byte("{")):
		r, err := ParseReport(trimmed)
		if err != nil {
			return err
		}
		*s = UploadState(r.State)
		return nil
	}
	var name string
	if err := json.Unmarshal(trimmed, &name); err != nil {
		return errors.New("state must be the agent's state object, a state name or null")
	}
	*s = UploadState(name)
	return nil
}

// SnapshotMeta names a new device snapshot.
type SnapshotMeta struct {
	Name, Description string
	CreatedBy         *string
}

// ApplicationOf returns the application a device's snapshots belong to: its own, or its instance's.
func (s *Service) ApplicationOf(ctx context.Context, st *storage.Store, d *storage.Device) (string, error) {
	switch {
	case d.ApplicationID != nil:
		return *d.ApplicationID, nil
	case d.InstanceID != nil:
		in, err := st.GetInstance(ctx, *d.InstanceID)
		if err != nil {
			return "", err
		}
		return in.ApplicationID, nil
	}
	return "", domain.Conflict("device_unassigned", "The device belongs to no application or instance, so a snapshot of it has nowhere to go.")
}

// CheckSnapshotRoom refuses another snapshot of a device that holds MaxDeviceSnapshots already.
func CheckSnapshotRoom(ctx context.Context, st *storage.Store, deviceID string) error {
	n, err := st.CountDeviceSnapshots(ctx, deviceID)
	if err == nil && n >= MaxDeviceSnapshots {
		err = &domain.Error{Kind: domain.KindLimit, Code: "limit_device_snapshots",
			Message: fmt.Sprintf("A device keeps at most %d snapshots; delete some of its snapshots first.", MaxDeviceSnapshots)}
	}
	return err
}

// CreateSnapshot stores flows pulled from a device as a snapshot of its application, linked to the device.
// credentialSecret is the secret the credentials are encrypted with ("" = the device's own); they are kept
// encrypted with the device's secret.
func (s *Service) CreateSnapshot(ctx context.Context, st *storage.Store, d *storage.Device, u *Upload, credentialSecret string, m SnapshotMeta) (*storage.Snapshot, error) {
	if err := domain.Collect(domain.ValidateName("name", m.Name), domain.ValidateDescription("description", m.Description)); err != nil {
		return nil, err
	}
	appID, err := s.ApplicationOf(ctx, st, d)
	if err != nil {
		return nil, err
	}
	if err := CheckSnapshotRoom(ctx, st, d.ID); err != nil {
		return nil, err
	}
	flows := bytes.TrimSpace(u.Flows)
	var nodes []any
	if err := json.Unmarshal(flows, &nodes); err != nil || nodes == nil {
		return nil, domain.Unprocessable("corrupt_flows", "The device's flows are not a JSON array of nodes.")
	}
	if len(flows)+len(u.Credentials) > maxDeviceSnapshotBytes {
		return nil, &domain.Error{Kind: domain.KindTooLarge, Code: "snapshot_too_large", Message: "The device's flows and credentials are over 20 MiB."}
	}
	creds, err := s.deviceCredentials(u.Credentials, credentialSecret, d.CredentialSecret)
	if err != nil {
		return nil, err
	}
	modules := map[string]string{}
	for name, version := range u.Package.Modules {
		modules[name] = version
	}
	snap := &storage.Snapshot{ID: domain.NewID(), ApplicationID: appID, TeamID: d.TeamID, Name: m.Name, Description: m.Description,
		CreatedBy: m.CreatedBy, Flows: string(flows), Credentials: creds, CredentialSecret: d.CredentialSecret, Modules: modules,
		NodeRedVersion: modules["node-red"]}
	if _, err := st.InsertSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	if err := st.LinkDeviceSnapshot(ctx, snap.ID, d.ID); err != nil {
		return nil, err
	}
	return snap, nil
}

// deviceCredentials checks a credentials blob and, when it is encrypted with another secret than the
// device's, re-encrypts it to the device's.
func (s *Service) deviceCredentials(blob json.RawMessage, fromSecret, deviceSealed string) (string, error) {
	trimmed := bytes.TrimSpace(blob)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return "{}", nil
	}
	deviceSecret, err := s.Sealer.Open(deviceSealed)
	if err != nil {
		return "", err
	}
	if fromSecret == "" {
		fromSecret = deviceSecret
	}
	out, err := nodered.ReencryptCredentials(fromSecret, deviceSecret, json.RawMessage(trimmed))
	switch {
	case errors.Is(err, nodered.ErrWrongSecret):
		return "", domain.Unprocessable("wrong_credential_secret", "The device's credentials do not decrypt with its credential secret.")
	case errors.Is(err, nodered.ErrMalformedCredentials):
		return "", domain.Unprocessable("corrupt_credentials", "The device's credentials are not Node-RED credentials.")
	case err != nil:
		return "", err
	}
	return string(out), nil
}
