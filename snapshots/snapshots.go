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
	// MaxBytes caps a snapshot's flows, credentials and persistent context together.
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
	// WithContext captures the instance's persistent context too; without it a rollback to the snapshot leaves
	// the instance's context as it is.
	WithContext bool
}

func (m Meta) validate() error {
	return domain.Collect(domain.ValidateName("name", m.Name), domain.ValidateDescription("description", m.Description))
}

// TooLarge is the error for content over MaxBytes.
func TooLarge(size int) error {
	return &domain.Error{Kind: domain.KindTooLarge, Code: "snapshot_too_large",
		Message: fmt.Sprintf("The snapshot would hold %.1f MiB of flows, credentials and context; the limit is %d MiB.", float64(size)/(1<<20), MaxBytes>>20)}
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
		var persistent *string
		if m.WithContext {
			if persistent, err = contextDocument(ctx, tx, instanceID); err != nil {
				return err
			}
		}
		if size := contentSize(docs.flows, docs.credentials, persistent); size > MaxBytes {
			return TooLarge(size)
		}
		snap, err = newSnapshot(ctx, tx, in, m)
		if err != nil {
			return err
		}
		snap.Flows, snap.Credentials, snap.Context = docs.flows, docs.credentials, persistent
		snap.CredentialSecret = in.CredentialSecret // already sealed with the platform key
		snap.Modules = installedModules(in.Modules, docs.settings)
		_, err = tx.InsertSnapshot(ctx, snap)
		return err
	})
	return snap, err
}

// contextDocument is the instance's persistent context as a snapshot keeps it.
func contextDocument(ctx context.Context, tx *storage.Store, instanceID string) (*string, error) {
	scopes, err := tx.GetInstanceContext(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	doc, err := json.Marshal(scopes)
	if err != nil {
		return nil, err
	}
	s := string(doc)
	return &s, nil
}

// contentSize is what counts against MaxBytes: flows, credentials and the persistent context, if any.
func contentSize(flows, credentials string, persistent *string) int {
	n := len(flows) + len(credentials)
	if persistent != nil {
		n += len(*persistent)
	}
	return n
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
// all of the new: flows, credentials (re-encrypted to the instance's secret when the snapshot's differs),
// settings, env and modules as the instance's own values over its template, and the persistent context when
// the snapshot captured it (else the instance keeps its own). Applying the same snapshot twice
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
		if err := restoreContext(ctx, tx, snap, in.ID, promote); err != nil {
			return err
		}
		if err := tx.PutInstanceStorage(ctx, in.ID, storage.StorageFlows, snap.Flows); err != nil {
			return err
		}
		if err := tx.PutInstanceStorage(ctx, in.ID, storage.StorageCredentials, creds); err != nil {
			return err
		}
		return tx.UpdateInstance(ctx, in, "settings", "env", "modules")
	})
}

// restoreContext makes a snapshot's persistent context the instance's, when the snapshot holds one. A promotion
// never carries context: it belongs to the instance it was kept in, like the instance's env values.
func restoreContext(ctx context.Context, tx *storage.Store, snap *storage.Snapshot, instanceID string, promote bool) error {
	if snap.Context == nil || promote {
		return nil
	}
	scopes, err := storage.ParseInstanceContext(*snap.Context)
	if err != nil {
		return err
	}
	return tx.ReplaceInstanceContext(ctx, instanceID, scopes)
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
