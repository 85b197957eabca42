package snapshots

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Content is a snapshot's content as it travels in an export or an import. In an export the credentials are
// encrypted with the secret the user chose; in an import with the secret the user gives.
type Content struct {
	Flows          json.RawMessage
	Credentials    json.RawMessage
	Settings       map[string]any
	Env            []domain.EnvVar
	Modules        map[string]string
	NodeRedVersion string
	// Context is the persistent context ({"<scope>": {…}}), when the snapshot captured it; nil otherwise.
	Context json.RawMessage
}

// Import stores content a user brings as a new snapshot of the instance (it is not applied). The credentials
// are decrypted with userSecret and re-encrypted to the instance's secret. Bad content, a wrong secret or
// oversized content is refused before anything is written.
func (s *Service) Import(ctx context.Context, in *storage.Instance, c Content, userSecret string, m Meta) (*storage.Snapshot, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	creds, err := s.checkImport(c, userSecret, in.CredentialSecret)
	if err != nil {
		return nil, err
	}
	env := make([]domain.EnvVar, 0, len(c.Env))
	for _, e := range c.Env {
		env = append(env, domain.EnvVar{Name: e.Name, Value: e.Value})
	}
	id := m.ID
	if id == "" {
		id = domain.NewID()
	}
	snap := &storage.Snapshot{ID: id, InstanceID: in.ID, ApplicationID: in.ApplicationID, TeamID: in.TeamID,
		Name: m.Name, Description: m.Description, Auto: m.Auto, CreatedBy: m.CreatedBy,
		Flows: string(c.Flows), Credentials: creds, CredentialSecret: in.CredentialSecret,
		Settings: c.Settings, Env: env, Modules: c.Modules, NodeRedVersion: c.NodeRedVersion, Context: c.context()}
	if _, err := s.Store.InsertSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// checkImport validates content a user brings and returns its credentials re-encrypted to targetSealed, the
// instance's sealed secret.
func (s *Service) checkImport(c Content, userSecret, targetSealed string) (string, error) {
	if err := validateContent(c); err != nil {
		return "", err
	}
	if size := contentSize(string(c.Flows), string(c.Credentials), c.context()); size > MaxBytes {
		return "", TooLarge(size)
	}
	return s.importCredentials(c.Credentials, userSecret, targetSealed)
}

// validateContent checks imported content field by field: flows a Node-RED flow list, settings Flowyard
// manages, valid env names and npm module names.
func validateContent(c Content) error {
	var errs []domain.FieldError
	var flows []any
	if err := json.Unmarshal(c.Flows, &flows); err != nil || flows == nil {
		errs = append(errs, domain.FieldError{Field: "snapshot.flows", Detail: "must be a JSON array of nodes"})
	} else if fe := domain.ValidateFlows("snapshot.flows", flows); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, domain.ValidateSettings("snapshot.settings", c.Settings)...)
	errs = append(errs, domain.ValidateEnv("snapshot.env", c.Env)...)
	errs = append(errs, domain.ValidateModules("snapshot.modules", c.Modules)...)
	if c.context() != nil {
		if _, err := storage.ParseInstanceContext(*c.context()); err != nil {
			errs = append(errs, domain.FieldError{Field: "snapshot.context", Detail: "must be an object of context scopes, each a JSON object"})
		}
	}
	if len(c.NodeRedVersion) > 64 {
		errs = append(errs, domain.FieldError{Field: "snapshot.nodeRedVersion", Detail: "must be at most 64 characters"})
	}
	if errs != nil {
		return domain.Invalid(errs...)
	}
	return nil
}

// context is the content's persistent context as stored (compact JSON), or nil when it has none.
func (c Content) context() *string {
	trimmed := bytes.TrimSpace(c.Context)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		s := string(trimmed) // refused by validateContent
		return &s
	}
	s := compact.String()
	return &s
}

// Seed is what a new instance starts with when it is created from a snapshot.
type Seed struct {
	Flows, Credentials string
	Settings           map[string]any
	Env                []domain.EnvVar
	Modules            map[string]string
	Context            *string // the snapshot's persistent context, when it captured one
}

// SeedFor reads a snapshot of the team for a new instance on template tpl whose (sealed) secret is
// targetSealed: the credentials re-encrypted to that secret, the settings and env as the instance's own values
// over tpl. A snapshot that does not exist or belongs to another team is an unknown reference.
func (s *Service) SeedFor(ctx context.Context, snapshotID, teamID string, tpl *storage.Template, targetSealed string) (*Seed, error) {
	snap, err := s.Store.GetSnapshot(ctx, snapshotID)
	if domain.IsKind(err, domain.KindNotFound) || (err == nil && snap.TeamID != teamID) {
		return nil, domain.Unprocessable("unknown_reference", "The snapshotId names nothing that exists.",
			domain.FieldError{Field: "snapshotId", Detail: "does not exist"})
	}
	if err != nil {
		return nil, err
	}
	creds, err := s.rekeyStored(snap.Credentials, snap.CredentialSecret, targetSealed)
	if err != nil {
		return nil, err
	}
	settings, env, err := Overrides(tpl, snap.Settings, snap.Env)
	if err != nil {
		return nil, err
	}
	return &Seed{Flows: snap.Flows, Credentials: creds, Settings: settings, Env: env, Modules: snap.Modules, Context: snap.Context}, nil
}
