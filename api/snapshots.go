package api

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// Snapshots: capture (members), list and read the description (viewers), read the content without
// credentials (members), export with credentials re-encrypted to a secret the caller gives (members), import
// (owners), rename and delete (owners), and roll an instance back to one (members; a workflow, 202).

type createSnapshotRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// IncludeContext captures the instance's persistent context too (as last written by Node-RED, at most a
	// few seconds old); a rollback to the snapshot then restores it. Without it, the context is left out and
	// a rollback keeps the instance's own.
	IncludeContext bool `json:"includeContext,omitempty"`
}

type updateSnapshotRequest struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

type rollbackRequest struct {
	SnapshotID string `json:"snapshotId"`
}

type exportSnapshotRequest struct {
	CredentialSecret string `json:"credentialSecret"`
}

type importSnapshotRequest struct {
	Snapshot         *snapshotDocument `json:"snapshot"`
	CredentialSecret string            `json:"credentialSecret,omitempty"`
}

// snapshotDocument is a snapshot as the API shows it: the description for everyone who may see it, the
// content (flows, settings, env, modules) for members, the credentials only in an export, encrypted with the
// secret the caller chose. Import reads the same shape, so an export can be imported as it is; the fields
// that describe where it came from are ignored there.
type snapshotDocument struct {
	ID             string            `json:"id,omitempty"`
	InstanceID     string            `json:"instanceId,omitempty"`
	ApplicationID  string            `json:"applicationId,omitempty"`
	TeamID         string            `json:"teamId,omitempty"`
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	Auto           bool              `json:"auto"`
	NodeRedVersion string            `json:"nodeRedVersion,omitempty"`
	Size           int64             `json:"size,omitempty"`
	CreatedBy      *string           `json:"createdBy,omitempty"`
	CreatedAt      *time.Time        `json:"createdAt,omitempty"`
	Flows          json.RawMessage   `json:"flows,omitempty"`
	Credentials    json.RawMessage   `json:"credentials,omitempty"`
	Settings       map[string]any    `json:"settings,omitempty"`
	Env            []domain.EnvVar   `json:"env,omitempty"`
	Modules        map[string]string `json:"modules,omitempty"`
	// HasContext says whether the snapshot holds the instance's persistent context; Context is that context
	// ({"<scope>": {…}}) in the full view and an export, and is imported as it is.
	HasContext bool            `json:"hasContext"`
	Context    json.RawMessage `json:"context,omitempty"`
}

func snapshotMetaView(snap *storage.Snapshot) snapshotDocument {
	created := snap.CreatedAt
	return snapshotDocument{ID: snap.ID, InstanceID: snap.InstanceID, ApplicationID: snap.ApplicationID, TeamID: snap.TeamID,
		Name: snap.Name, Description: snap.Description, Auto: snap.Auto, NodeRedVersion: snap.NodeRedVersion, Size: snap.SizeBytes,
		CreatedBy: snap.CreatedBy, CreatedAt: &created, HasContext: snap.HasContext}
}

func snapshotFullView(snap *storage.Snapshot) snapshotDocument {
	v := snapshotMetaView(snap)
	v.Flows, v.Settings, v.Env, v.Modules = json.RawMessage(snap.Flows), snap.Settings, snap.Env, snap.Modules
	if snap.Context != nil {
		v.Context = json.RawMessage(*snap.Context)
	}
	return v
}

func (s *Server) registerSnapshots() {
	inst := "/api/v1/instances/:instanceId"
	s.route(routeDoc{Method: "POST", Path: inst + "/snapshots", Tag: "snapshots", Body: createSnapshotRequest{}, Status: 201,
		Summary: "Snapshot the instance's flows, credentials (encrypted), settings, env and modules, from the platform's store."}, s.createSnapshot)
	s.route(routeDoc{Method: "GET", Path: inst + "/snapshots", Tag: "snapshots",
		Summary: "The instance's snapshots, oldest first (descriptions only)."}, s.listSnapshots)
	s.route(routeDoc{Method: "POST", Path: inst + "/snapshots/import", Tag: "snapshots", Body: importSnapshotRequest{}, Status: 201,
		Summary: "Store an exported snapshot as a snapshot of this instance; its credentials are decrypted with credentialSecret and re-encrypted to the instance's."}, s.importSnapshot)
	s.route(routeDoc{Method: "POST", Path: inst + "/rollback", Tag: "snapshots", Body: rollbackRequest{}, Status: 202,
		Summary: "Restore a snapshot of the instance's application into it (202: a workflow takes an automatic snapshot first and restarts the flows)."}, s.rollbackInstance)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/snapshots/:snapshotId", Tag: "snapshots",
		Summary: "A snapshot's description."}, s.getSnapshot)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/snapshots/:snapshotId/full", Tag: "snapshots",
		Summary: "A snapshot's flows, settings, env and modules (no credentials)."}, s.getSnapshotFull)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/snapshots/:snapshotId", Tag: "snapshots", Body: updateSnapshotRequest{},
		Summary: "Rename a snapshot or change its description."}, s.updateSnapshot)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/snapshots/:snapshotId", Tag: "snapshots", Status: 204,
		Summary: "Delete a snapshot."}, s.deleteSnapshot)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/snapshots/:snapshotId/export", Tag: "snapshots", Body: exportSnapshotRequest{},
		Summary: "The whole snapshot, credentials re-encrypted to the credentialSecret given."}, s.exportSnapshot)
}

func (s *Server) snapshotService(st *storage.Store) *snapshots.Service {
	return &snapshots.Service{Store: st, Sealer: s.sealer}
}

// snapshotFor loads the snapshot in the path (its description only) after checking the caller's access to its team.
func (s *Server) snapshotFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Snapshot, error) {
	snap, err := s.store.GetSnapshotMeta(c.UserContext(), c.Params("snapshotId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, snap.TeamID, action, "snapshot")
	return who, snap, err
}

// fullSnapshotFor is snapshotFor with the content, read only once access is granted.
func (s *Server) fullSnapshotFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Snapshot, error) {
	who, meta, err := s.snapshotFor(c, action)
	if err != nil {
		return nil, nil, err
	}
	snap, err := s.store.GetSnapshot(c.UserContext(), meta.ID)
	return who, snap, err
}

func userIDOf(who *caller) *string {
	if who == nil || who.user == nil {
		return nil
	}
	return &who.user.ID
}

func (s *Server) createSnapshot(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionSnapshotCreate)
	if err != nil {
		return err
	}
	var req createSnapshotRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var snap *storage.Snapshot
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		meta := snapshots.Meta{Name: req.Name, Description: req.Description, CreatedBy: userIDOf(who), WithContext: req.IncludeContext}
		snap, err = s.snapshotService(tx).Capture(ctx, in.ID, meta)
		if err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "snapshot.created", "snapshot", snap.ID, map[string]any{"instanceId": in.ID, "name": snap.Name, "context": snap.HasContext})
	})
	if err != nil {
		return err
	}
	return created(c, snapshotMetaView(snap))
}

func (s *Server) listSnapshots(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionSnapshotList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListSnapshots(c.UserContext(), in.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, snapshotMetaView)
}

func (s *Server) getSnapshot(c *fiber.Ctx) error {
	_, snap, err := s.snapshotFor(c, domain.ActionSnapshotMeta)
	if err != nil {
		return err
	}
	return c.JSON(snapshotMetaView(snap))
}

func (s *Server) getSnapshotFull(c *fiber.Ctx) error {
	_, snap, err := s.fullSnapshotFor(c, domain.ActionSnapshotFull)
	if err != nil {
		return err
	}
	return c.JSON(snapshotFullView(snap))
}

func (s *Server) updateSnapshot(c *fiber.Ctx) error {
	who, snap, err := s.snapshotFor(c, domain.ActionSnapshotEdit)
	if err != nil {
		return err
	}
	var req updateSnapshotRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var f fields
	f.name(false, req.Name, &snap.Name)
	f.description(req.Description, &snap.Description)
	cols, err := f.result()
	if err != nil {
		return err
	}
	if len(cols) > 0 {
		err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
			if err := tx.UpdateSnapshot(ctx, snap, cols...); err != nil {
				return err
			}
			return audit(c, tx, who, snap.TeamID, "snapshot.updated", "snapshot", snap.ID, map[string]any{"fields": cols})
		})
		if err != nil {
			return err
		}
	}
	return c.JSON(snapshotMetaView(snap))
}

func (s *Server) deleteSnapshot(c *fiber.Ctx) error {
	who, snap, err := s.snapshotFor(c, domain.ActionSnapshotDelete)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := snapshotNotTargeted(ctx, tx, snap.ID); err != nil {
			return err
		}
		if err := tx.DeleteSnapshot(ctx, snap.ID); err != nil {
			return err
		}
		return audit(c, tx, who, snap.TeamID, "snapshot.deleted", "snapshot", snap.ID, map[string]any{"name": snap.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// snapshotNotTargeted refuses to delete a snapshot that devices or device groups are told to run, naming a few.
func snapshotNotTargeted(ctx context.Context, tx *storage.Store, id string) error {
	const named = 3
	names, err := tx.SnapshotTargetOf(ctx, id, named+1)
	if err != nil || len(names) == 0 {
		return err
	}
	who := strings.Join(names[:min(len(names), named)], ", ")
	if len(names) > named {
		who += " and more"
	}
	return domain.Conflict("snapshot_in_use", "The snapshot is the target of "+who+"; give them another target first.")
}

func (s *Server) exportSnapshot(c *fiber.Ctx) error {
	var req exportSnapshotRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	who, snap, err := s.fullSnapshotFor(c, domain.ActionSnapshotExport)
	if err != nil {
		return err
	}
	creds, err := s.snapshotService(s.store).ExportCredentials(snap.Credentials, snap.CredentialSecret, req.CredentialSecret)
	if err != nil {
		return err
	}
	if err := audit(c, s.store, who, snap.TeamID, "snapshot.exported", "snapshot", snap.ID, nil); err != nil {
		return err
	}
	doc := snapshotFullView(snap)
	doc.Credentials = creds
	return c.JSON(doc)
}

func (s *Server) importSnapshot(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionSnapshotImport)
	if err != nil {
		return err
	}
	var req importSnapshotRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Snapshot == nil {
		return domain.InvalidField("snapshot", "is required")
	}
	doc := req.Snapshot
	content := snapshots.Content{Flows: doc.Flows, Credentials: doc.Credentials, Settings: doc.Settings, Env: doc.Env,
		Modules: doc.Modules, NodeRedVersion: doc.NodeRedVersion, Context: doc.Context}
	var snap *storage.Snapshot
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		meta := snapshots.Meta{Name: doc.Name, Description: doc.Description, CreatedBy: userIDOf(who)}
		if snap, err = s.snapshotService(tx).Import(ctx, in, content, req.CredentialSecret, meta); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "snapshot.imported", "snapshot", snap.ID, map[string]any{"instanceId": in.ID, "name": snap.Name})
	})
	if err != nil {
		return err
	}
	return created(c, snapshotMetaView(snap))
}

// rollbackInstance checks the snapshot here, so a bad one is refused at once with nothing started, records
// the operation and starts the lifecycle workflow's rollback.
func (s *Server) rollbackInstance(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionSnapshotRollback)
	if err != nil {
		return err
	}
	var req rollbackRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(requiredField("snapshotId", req.SnapshotID)); err != nil {
		return err
	}
	snap, err := s.store.GetSnapshotMeta(c.UserContext(), req.SnapshotID)
	if domain.IsKind(err, domain.KindNotFound) || (err == nil && snap.TeamID != in.TeamID) {
		return domain.Unprocessable("unknown_reference", "The snapshotId names nothing that exists.",
			domain.FieldError{Field: "snapshotId", Detail: "does not exist"})
	}
	if err != nil {
		return err
	}
	if err := snapshots.SameApplication(snap, in); err != nil {
		return err
	}
	return s.runAction(c, who, in, instance.Params{Action: instance.ActionRollback, SnapshotID: snap.ID},
		map[string]any{"snapshotId": snap.ID, "name": snap.Name})
}

// seedFromSnapshot fills a new instance from a snapshot of its team: flows, credentials re-encrypted to the
// instance's new secret, modules, and the snapshot's settings and env unless the request gives its own.
func (s *Server) seedFromSnapshot(ctx context.Context, tx *storage.Store, in *storage.Instance, tpl *storage.Template, req *createInstanceRequest) (initialStorage, error) {
	if req.BlueprintID != nil {
		return initialStorage{}, domain.InvalidField("snapshotId", "cannot be given together with blueprintId")
	}
	seed, err := s.snapshotService(tx).SeedFor(ctx, *req.SnapshotID, in.TeamID, tpl, in.CredentialSecret)
	if err != nil {
		return initialStorage{}, err
	}
	if req.Settings == nil {
		in.Settings = seed.Settings
	}
	if req.Env == nil {
		in.Env = seed.Env
	}
	in.Modules = seed.Modules
	return initialStorage{flows: seed.Flows, credentials: seed.Credentials, context: seed.Context}, nil
}

// initialStorage is what a new instance's storage plugin finds on its first start ("" = nothing).
type initialStorage struct {
	flows, credentials string
	context            *string // persistent context, from a snapshot that captured it
}

// put writes the documents inside the creating transaction.
func (d initialStorage) put(ctx context.Context, tx *storage.Store, instanceID string) error {
	if d.flows != "" {
		if err := tx.PutInstanceStorage(ctx, instanceID, storage.StorageFlows, d.flows); err != nil {
			return err
		}
	}
	if d.credentials != "" {
		if err := tx.PutInstanceStorage(ctx, instanceID, storage.StorageCredentials, d.credentials); err != nil {
			return err
		}
	}
	if d.context != nil {
		scopes, err := storage.ParseInstanceContext(*d.context)
		if err != nil {
			return err
		}
		return tx.ReplaceInstanceContext(ctx, instanceID, scopes)
	}
	return nil
}
