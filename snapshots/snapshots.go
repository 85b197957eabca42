// Package snapshots is what Flowyard does with instance snapshots: capture one from the store, apply one to an
// instance, and move its credentials from one secret to another for export, import and copies. The API
// (capture by hand, export, import, a new instance from a snapshot) and the rollback activities both call it, so
// the rules live in one place.
//
// Credentials stay encrypted end to end in Node-RED's format (AES-256-CTR, key SHA-256 of the secret). A
// snapshot keeps them encrypted with the secret its instance had when it was captured, and keeps that secret
// sealed with the platform's master key; they are decrypted only in memory, to re-encrypt them to another
// secret.
package snapshots

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Limits.
const (
	// MaxBytes caps a snapshot's flows and credentials together.
	MaxBytes = 20 << 20
	// AutoRetention is how many automatic snapshots an instance keeps; older ones are pruned.
	AutoRetention = 10
)

// Service captures and applies snapshots on a store.
type Service struct {
	Store  *storage.Store
	Sealer *domain.Sealer
}

// Meta is what the caller says about a new snapshot.
type Meta struct {
	// ID, when set, makes the capture idempotent: a second capture with the same ID stores nothing (a retried
	// activity). Empty means a new ID.
	ID          string
	Name        string
	Description string
	Auto        bool
	CreatedBy   *string
}

func (m Meta) validate() error {
	return domain.Collect(domain.ValidateName("name", m.Name), domain.ValidateDescription("description", m.Description))
}

// TooLarge is the error for content over MaxBytes.
func TooLarge(size int) error {
	return &domain.Error{Kind: domain.KindTooLarge, Code: "snapshot_too_large",
		Message: fmt.Sprintf("The snapshot would hold %.1f MiB of flows and credentials; the limit is %d MiB.", float64(size)/(1<<20), MaxBytes>>20)}
}

// Capture copies an instance's flows and credentials as its storage plugin last saved them, its effective
// settings and env (template and instance merged), its modules with the versions installed, and its stack's
// Node-RED version into a new snapshot. It reads only the store, so the runtime need not be up.
func (s *Service) Capture(ctx context.Context, instanceID string, m Meta) (*storage.Snapshot, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	var snap *storage.Snapshot
	err := s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		in, err := tx.GetInstance(ctx, instanceID)
		if err != nil {
			return err
		}
		docs, err := readDocuments(ctx, tx, instanceID)
		if err != nil {
			return err
		}
		if err := checkFlowsDocument(docs.flows); err != nil {
			return err
		}
		if size := len(docs.flows) + len(docs.credentials); size > MaxBytes {
			return TooLarge(size)
		}
		snap, err = newSnapshot(ctx, tx, in, m)
		if err != nil {
			return err
		}
		snap.Flows, snap.Credentials = docs.flows, docs.credentials
		snap.CredentialSecret = in.CredentialSecret // already sealed with the platform key
		snap.Modules = installedModules(in.Modules, docs.settings)
		_, err = tx.InsertSnapshot(ctx, snap)
		return err
	})
	return snap, err
}

// newSnapshot starts a snapshot of the instance: owner, names, effective settings and env, Node-RED version.
func newSnapshot(ctx context.Context, tx *storage.Store, in *storage.Instance, m Meta) (*storage.Snapshot, error) {
	tpl, err := storage.GetObject[storage.Template](ctx, tx, in.TemplateID)
	if err != nil {
		return nil, err
	}
	stack, err := storage.GetObject[storage.Stack](ctx, tx, in.StackID)
	if err != nil {
		return nil, err
	}
	settings, err := domain.MergeSettings(tpl.Settings, tpl.Policy, in.Settings)
	if err != nil {
		return nil, err
	}
	env, err := domain.MergeEnv(tpl.Env, in.Env)
	if err != nil {
		return nil, err
	}
	id := m.ID
	if id == "" {
		id = domain.NewID()
	}
	return &storage.Snapshot{ID: id, InstanceID: in.ID, ApplicationID: in.ApplicationID, TeamID: in.TeamID,
		Name: m.Name, Description: m.Description, Auto: m.Auto, CreatedBy: m.CreatedBy,
		Settings: settings, Env: env, NodeRedVersion: stack.NodeRedVersion}, nil
}

// documents are the instance's storage-plugin documents a snapshot needs.
type documents struct {
	flows, credentials, settings string
}

func readDocuments(ctx context.Context, tx *storage.Store, instanceID string) (documents, error) {
	var d documents
	var err error
	if d.flows, err = tx.GetInstanceStorage(ctx, instanceID, storage.StorageFlows); err != nil {
		return d, err
	}
	if d.credentials, err = tx.GetInstanceStorage(ctx, instanceID, storage.StorageCredentials); err != nil {
		return d, err
	}
	if d.settings, err = tx.GetInstanceStorage(ctx, instanceID, storage.StorageSettings); err != nil {
		return d, err
	}
	if len(bytes.TrimSpace([]byte(d.flows))) == 0 {
		d.flows = "[]"
	}
	if len(bytes.TrimSpace([]byte(d.credentials))) == 0 {
		d.credentials = "{}"
	}
	return d, nil
}

// checkFlowsDocument refuses to snapshot flows that are not a JSON array: a snapshot of them could never be
// restored.
func checkFlowsDocument(flows string) error {
	trimmed := bytes.TrimSpace([]byte(flows))
	if len(trimmed) == 0 || trimmed[0] != '[' || !json.Valid(trimmed) {
		return domain.Unprocessable("corrupt_flows", "The instance's stored flows are not a JSON array; deploy valid flows before taking a snapshot.")
	}
	return nil
}

// installedModules returns the instance's palette modules, with the exact versions Node-RED reports as
// installed (its runtime settings list them under "nodes") in place of the requested ranges, plus modules a
// user installed from the editor's palette.
func installedModules(requested map[string]string, runtimeSettings string) map[string]string {
	out := make(map[string]string, len(requested))
	for name, version := range requested {
		out[name] = version
	}
	var doc struct {
		Nodes map[string]struct {
			Version string `json:"version"`
			User    bool   `json:"user"`
		} `json:"nodes"`
	}
	if runtimeSettings == "" || json.Unmarshal([]byte(runtimeSettings), &doc) != nil {
		return out
	}
	for name, mod := range doc.Nodes {
		_, wanted := requested[name]
		if name == "node-red" || mod.Version == "" || (!wanted && !mod.User) {
			continue
		}
		out[name] = mod.Version
	}
	return out
}

// Apply writes a snapshot into an instance in one transaction, so the instance holds either all of the old or
// all of the new: flows, credentials (re-encrypted to the instance's secret when the snapshot's differs), and
// settings, env and modules as the instance's own values over its template. Applying the same snapshot twice
// gives the same result, so a retried activity is harmless. The runtime picks the content up on its next start.
func (s *Service) Apply(ctx context.Context, snapshotID, instanceID string) error {
	return s.apply(ctx, snapshotID, instanceID, false)
}

func (s *Service) apply(ctx context.Context, snapshotID, instanceID string, promote bool) error {
	return s.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		snap, err := tx.GetSnapshot(ctx, snapshotID)
		if err != nil {
			return err
		}
		in, err := tx.GetInstance(ctx, instanceID)
		if err != nil {
			return err
		}
		if err := SameApplication(snap, in); err != nil {
			return err
		}
		creds, err := s.rekeyStored(snap.Credentials, snap.CredentialSecret, in.CredentialSecret)
		if err != nil {
			return err
		}
		tpl, err := storage.GetObject[storage.Template](ctx, tx, in.TemplateID)
		if err != nil {
			return err
		}
		env := snap.Env
		if promote {
			env = PromotedEnv(in.Env, tpl.Env, snap.Env)
		}
		if in.Settings, in.Env, err = Overrides(tpl, snap.Settings, env); err != nil {
			return err
		}
		in.Modules = snap.Modules
		if err := tx.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, snap.Flows); err != nil {
			return err
		}
		if err := tx.PutInstanceStorage(ctx, in.ID, storage.StorageCredentials, creds); err != nil {
			return err
		}
		return tx.UpdateInstance(ctx, in, "settings", "env", "modules")
	})
}

// SameApplication allows a snapshot to go only into an instance of its own application.
func SameApplication(snap *storage.Snapshot, in *storage.Instance) error {
	if snap.ApplicationID != in.ApplicationID {
		return domain.Unprocessable("snapshot_other_application",
			"The snapshot belongs to another application; only snapshots of the instance's own application can be restored into it.",
			domain.FieldError{Field: "snapshotId", Detail: "belongs to another application"})
	}
	return nil
}

// Prune deletes the instance's automatic snapshots beyond AutoRetention, sparing the IDs in except.
func (s *Service) Prune(ctx context.Context, instanceID string, except ...string) ([]string, error) {
	return s.Store.PruneAutoSnapshots(ctx, instanceID, AutoRetention, except...)
}
