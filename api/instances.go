package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// InstanceRunner starts lifecycle actions; the workflow facade implements it.
type InstanceRunner = services.InstanceRunner

// LogReader reads an instance's recent runtime log lines; the platform wires the driver in.
type LogReader func(ctx context.Context, instanceID string, since time.Time, limit int) ([]LogLineJSON, error)

// LogLineJSON is one runtime log line.
type LogLineJSON struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

type createInstanceRequest struct {
	Name           string          `json:"name"`
	InstanceTypeID string          `json:"instanceTypeId"`
	StackID        string          `json:"stackId"`
	TemplateID     string          `json:"templateId"`
	BlueprintID    *string         `json:"blueprintId,omitempty"`
	SnapshotID     *string         `json:"snapshotId,omitempty"` // instead of a blueprint: copy a snapshot of the team
	Settings       map[string]any  `json:"settings,omitempty"`
	Env            []domain.EnvVar `json:"env,omitempty"`
}

type updateInstanceRequest struct {
	Settings *map[string]any  `json:"settings,omitempty"`
	Env      *[]domain.EnvVar `json:"env,omitempty"`
	StackID  *string          `json:"stackId,omitempty"`
}

type instanceJSON struct {
	ID            string               `json:"id"`
	Name          string               `json:"name"`
	ApplicationID string               `json:"applicationId"`
	TeamID        string               `json:"teamId"`
	State         domain.InstanceState `json:"state"`
	StateReason   string               `json:"stateReason,omitempty"`
	URL           string               `json:"url"` // the instance's own address, where its flows' endpoints are
	// EndpointsProtected: the address asks for a signed-in team member or an endpoint token.
	EndpointsProtected bool            `json:"endpointsProtected"`
	EditorURL          string          `json:"editorUrl"` // the dashboard's page that opens the editor on its own origin
	InstanceTypeID     string          `json:"instanceTypeId"`
	StackID            string          `json:"stackId"`
	TemplateID         string          `json:"templateId"`
	BlueprintID        *string         `json:"blueprintId,omitempty"`
	Settings           map[string]any  `json:"settings"`
	Env                []domain.EnvVar `json:"env"`
	// DeviceTargetSnapshotID is the snapshot of this instance that its devices run.
	DeviceTargetSnapshotID *string   `json:"deviceTargetSnapshotId"`
	CreatedAt              time.Time `json:"createdAt"`
	UpdatedAt              time.Time `json:"updatedAt"`
}

func (s *Server) instanceView(in *storage.Instance) instanceJSON {
	v := instanceJSON{ID: in.ID, Name: in.Name, ApplicationID: in.ApplicationID, TeamID: in.TeamID, State: in.State,
		StateReason: in.StateReason, EditorURL: s.cfg.PublicURL + editorEntryPrefix + in.ID + "/", InstanceTypeID: in.InstanceTypeID,
		StackID: in.StackID, TemplateID: in.TemplateID, BlueprintID: in.BlueprintID, Settings: in.Settings, Env: in.Env,
		DeviceTargetSnapshotID: in.DeviceTargetSnapshotID, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
	v.URL, v.EndpointsProtected = s.instanceAddress(in), in.EndpointsProtected
	return v
}

func (s *Server) registerInstances() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/applications/:applicationId/instances", Summary: "Create a Node-RED instance (202: provisioning runs as a workflow).", Tag: "instances", Body: createInstanceRequest{}, Status: 202}, s.createInstance)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/applications/:applicationId/instances", Summary: "The application's instances.", Tag: "instances"}, s.listInstances)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId", Summary: "One instance.", Tag: "instances"}, s.getInstance)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/instances/:instanceId", Summary: "Change settings or env (applied on the next restart); a stack change is refused here: POST …/upgrade.", Tag: "instances", Body: updateInstanceRequest{}}, s.updateInstance)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/instances/:instanceId", Summary: "Delete an instance (202).", Tag: "instances", Status: 202}, s.deleteInstance)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/actions/:action", Summary: "start, stop, restart or suspend (202).", Tag: "instances", Status: 202}, s.instanceAction)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/logs", Summary: "Recent runtime log lines (?since=RFC3339&limit=).", Tag: "instances"}, s.instanceLogs)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/operations", Summary: "The instance's operations.", Tag: "instances"}, s.listInstanceOperations)
}

func (s *Server) createInstance(c *fiber.Ctx) error {
	who, app, err := s.applicationFor(c, domain.ActionInstanceCreate)
	if err != nil {
		return err
	}
	var req createInstanceRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	in, op, err := s.svc.instances.Provision(c.UserContext(), who.userID(),
		func(ctx context.Context, tx *storage.Store) (*storage.Instance, func(context.Context, *storage.Store) error, error) {
			in, docs, err := s.newInstance(ctx, tx, app, &req)
			if err != nil {
				return nil, nil, err
			}
			return in, func(ctx context.Context, tx *storage.Store) error { return docs.put(ctx, tx, in.ID) }, nil
		})
	if err != nil {
		return err
	}
	return s.acceptedRun(c, in, op)
}

// newInstance validates a create request against the objects it names, in the creating transaction, and
// builds the row, with the flows (and credentials) of the blueprint or snapshot it names.
func (s *Server) newInstance(ctx context.Context, tx *storage.Store, app *storage.Application, req *createInstanceRequest) (*storage.Instance, initialStorage, error) {
	if err := domain.Collect(domain.ValidateInstanceName("name", req.Name), requiredField("instanceTypeId", req.InstanceTypeID),
		requiredField("stackId", req.StackID), requiredField("templateId", req.TemplateID)); err != nil {
		return nil, initialStorage{}, err
	}
	if err := exists[storage.InstanceType](ctx, tx, "instanceTypeId", req.InstanceTypeID); err != nil {
		return nil, initialStorage{}, err
	}
	if err := usableStack(ctx, tx, req.StackID, req.InstanceTypeID); err != nil {
		return nil, initialStorage{}, err
	}
	tpl, err := storage.GetObject[storage.Template](ctx, tx, req.TemplateID)
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, initialStorage{}, exists[storage.Template](ctx, tx, "templateId", req.TemplateID)
	}
	if err != nil {
		return nil, initialStorage{}, err
	}
	if _, err := domain.MergeSettings(tpl.Settings, tpl.Policy, req.Settings); err != nil {
		return nil, initialStorage{}, err
	}
	if _, err := domain.MergeEnv(tpl.Env, req.Env); err != nil {
		return nil, initialStorage{}, err
	}
	in := &storage.Instance{ID: domain.NewID(), Name: req.Name, ApplicationID: app.ID, TeamID: app.TeamID,
		InstanceTypeID: req.InstanceTypeID, StackID: req.StackID, TemplateID: req.TemplateID, State: domain.InstanceProvisioning,
		DesiredState: domain.InstanceRunning, Settings: orEmpty(req.Settings), Env: req.Env, Modules: map[string]string{},
		CredentialSecret: s.sealer.Seal(domain.NewSecret(32)), AdminToken: s.sealer.Seal(domain.NewSecret(32)),
		ReadToken: s.sealer.Seal(domain.NewSecret(32))}
	if in.Env == nil {
		in.Env = []domain.EnvVar{}
	}
	if req.SnapshotID != nil {
		docs, err := s.seedFromSnapshot(ctx, tx, in, tpl, req)
		return in, docs, err
	}
	var docs initialStorage
	if req.BlueprintID != nil {
		bp, err := storage.GetObject[storage.Blueprint](ctx, tx, *req.BlueprintID)
		if domain.IsKind(err, domain.KindNotFound) {
			return nil, initialStorage{}, exists[storage.Blueprint](ctx, tx, "blueprintId", *req.BlueprintID)
		}
		if err != nil {
			return nil, initialStorage{}, err
		}
		if err := blueprintOffered(ctx, tx, bp, app.TeamID); err != nil {
			return nil, initialStorage{}, err
		}
		in.BlueprintID, in.Modules = &bp.ID, bp.Modules
		docs.flows = mustJSON(bp.Flows)
	}
	return in, docs, nil
}

// blueprintOffered refuses a blueprint that is not offered to the team's type, naming it.
func blueprintOffered(ctx context.Context, tx *storage.Store, bp *storage.Blueprint, teamID string) error {
	team, err := tx.GetTeam(ctx, teamID)
	if err != nil {
		return err
	}
	ok, err := tx.BlueprintOffered(ctx, bp.ID, team.TeamTypeID)
	if err != nil || ok {
		return err
	}
	return domain.Unprocessable("blueprint_not_offered", "The blueprint \""+bp.Name+"\" is not offered to this team's type.",
		domain.FieldError{Field: "blueprintId", Detail: "is not offered to this team's type"})
}

func requiredField(field, v string) *domain.FieldError {
	if v == "" {
		return &domain.FieldError{Field: field, Detail: "is required"}
	}
	return nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// runAction records and starts a lifecycle run of the instance (services.Instances.Act) and answers 202.
func (s *Server) runAction(c *fiber.Ctx, who *caller, in *storage.Instance, p instance.Params, body map[string]any) error {
	op, err := s.svc.instances.Act(c.UserContext(), who.userID(), in, p, body)
	if err != nil {
		return err
	}
	return s.acceptedRun(c, in, op)
}

// acceptedRun answers 202 for a lifecycle run started, pointing at its operation.
func (s *Server) acceptedRun(c *fiber.Ctx, in *storage.Instance, op *storage.Operation) error {
	c.Set(fiber.HeaderLocation, "/api/v1/operations/"+op.ID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"instance": s.instanceView(in), "operation": s.operationView(op)})
}

func (s *Server) listInstances(c *fiber.Ctx) error {
	_, app, err := s.applicationFor(c, domain.ActionApplicationList)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListInstances(c.UserContext(), app.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, s.instanceView)
}

// instanceFor loads the instance in the path after checking the caller's access to its team.
func (s *Server) instanceFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.Instance, error) {
	in, err := s.store.GetInstance(c.UserContext(), c.Params("instanceId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, in.TeamID, action, "instance")
	return who, in, err
}

func (s *Server) getInstance(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceRead)
	if err != nil {
		return err
	}
	return c.JSON(s.instanceView(in))
}

func (s *Server) instanceAction(c *fiber.Ctx) error {
	action, ok := instance.UserActions[c.Params("action")]
	if !ok {
		return domain.InvalidField("action", "must be start, stop, restart or suspend")
	}
	who, in, err := s.instanceFor(c, domain.ActionInstanceChangeStatus)
	if err != nil {
		return err
	}
	return s.runAction(c, who, in, instance.Params{Action: action}, nil)
}

func (s *Server) deleteInstance(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionInstanceDelete)
	if err != nil {
		return err
	}
	return s.runAction(c, who, in, instance.Params{Action: instance.ActionDelete}, nil)
}

func (s *Server) updateInstance(c *fiber.Ctx) error {
	var req updateInstanceRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	action := domain.ActionInstanceEdit
	if req.Settings == nil && req.StackID == nil {
		action = domain.ActionInstanceEditEnv // members may change only the environment
	}
	who, in, err := s.instanceFor(c, action)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	tpl, err := storage.GetObject[storage.Template](ctx, s.store, in.TemplateID)
	if err != nil {
		return err
	}
	var cols []string
	if req.Settings != nil {
		if _, err := domain.MergeSettings(tpl.Settings, tpl.Policy, *req.Settings); err != nil {
			return err
		}
		in.Settings, cols = *req.Settings, append(cols, "settings")
	}
	if req.Env != nil {
		if _, err := domain.MergeEnv(tpl.Env, *req.Env); err != nil {
			return err
		}
		in.Env, cols = *req.Env, append(cols, "env")
	}
	if req.StackID != nil && *req.StackID != in.StackID {
		return stackChangeIsAnOperation(in.ID)
	}
	if len(cols) > 0 {
		err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
			if err := tx.UpdateInstance(ctx, in, cols...); err != nil {
				return err
			}
			return audit(c, tx, who, in.TeamID, "instance.updated", "instance", in.ID, map[string]any{"fields": cols})
		})
		if err != nil {
			return err
		}
	}
	return c.JSON(s.instanceView(in))
}

func (s *Server) instanceLogs(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceLog)
	if err != nil {
		return err
	}
	since, limit, err := logWindow(c)
	if err != nil {
		return err
	}
	if s.logs == nil {
		return c.JSON(fiber.Map{"items": []LogLineJSON{}})
	}
	lines, err := s.logs(c.UserContext(), in.ID, since, limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": lines})
}

func (s *Server) listInstanceOperations(c *fiber.Ctx) error {
	_, in, err := s.instanceFor(c, domain.ActionInstanceRead)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListOperationsBySubject(c.UserContext(), "instance", in.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, s.operationView)
}
