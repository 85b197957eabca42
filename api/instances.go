package api

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
)

// InstanceRunner starts lifecycle actions; the workflow facade implements it.
type InstanceRunner interface {
	Run(ctx context.Context, p instance.Params) (runID string, err error)
}

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
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	ApplicationID  string          `json:"applicationId"`
	TeamID         string          `json:"teamId"`
	State          string          `json:"state"`
	StateReason    string          `json:"stateReason,omitempty"`
	URL            string          `json:"url"`
	EditorURL      string          `json:"editorUrl"` // the dashboard's page that opens the editor on its own origin
	InstanceTypeID string          `json:"instanceTypeId"`
	StackID        string          `json:"stackId"`
	TemplateID     string          `json:"templateId"`
	BlueprintID    *string         `json:"blueprintId,omitempty"`
	Settings       map[string]any  `json:"settings"`
	Env            []domain.EnvVar `json:"env"`
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
	v.URL = instanceBrowserURL(in)
	return v
}

// instanceNodeRoot is where every instance serves its http-in routes (drivers.NodeRoot; api may not import
// drivers).
const instanceNodeRoot = "/api/"

// instanceBrowserURL is the instance URL the API and the dashboard show: where a browser reaches the instance's
// own http-in routes, under the runtime's address. Runtimes never share the platform's host: the local driver
// gives each Node-RED a loopback address of its own (127.1.x.y), so the platform's host-only session cookie for
// 127.0.0.1 or localhost is never sent there; a Kubernetes runtime is an in-cluster service.
func instanceBrowserURL(in *storage.Instance) string {
	if in.RuntimeURL == "" {
		return ""
	}
	u, err := url.Parse(in.RuntimeURL)
	if err != nil || u.Host == "" {
		return ""
	}
	u.Path, u.RawPath = strings.TrimSuffix(u.Path, "/")+instanceNodeRoot, ""
	return u.String()
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
	runtimeToken, tokenHash := domain.NewToken(domain.TokenPrefixInstance)
	var in *storage.Instance
	var op *storage.Operation
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		var docs initialStorage
		var err error
		if in, docs, err = s.newInstance(ctx, tx, app, &req); err != nil {
			return err
		}
		in.RuntimeToken = s.sealer.Seal(runtimeToken)
		op = newOperation("provision", "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), who)
		if err := s.checkInstanceLimits(ctx, tx, in); err != nil {
			return err
		}
		if err := s.checkBilling(ctx, tx, in, true); err != nil {
			return err
		}
		if err := tx.InsertInstance(ctx, in); err != nil {
			return err
		}
		if err := tx.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: tokenHash, Kind: "instance", Name: "runtime",
			OwnerType: "instance", OwnerID: in.ID, TeamID: &in.TeamID}); err != nil {
			return err
		}
		if err := docs.put(ctx, tx, in.ID); err != nil {
			return err
		}
		if err := s.insertOperation(ctx, tx, op); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "instance.created", "instance", in.ID, map[string]any{"name": in.Name})
	})
	if err != nil {
		return err
	}
	if s.billing != nil {
		s.billing.UsageChanged(c.UserContext(), in.TeamID)
	}
	return s.startAction(c, in, op, instance.ActionProvision)
}

// checkBilling refuses with a 402 to create or start an instance in a team whose billing does not allow it.
func (s *Server) checkBilling(ctx context.Context, st *storage.Store, in *storage.Instance, creating bool) error {
	if s.billing == nil {
		return nil
	}
	return s.billing.CheckCanRun(ctx, st, in.TeamID, in.InstanceTypeID, creating)
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
		InstanceTypeID: req.InstanceTypeID, StackID: req.StackID, TemplateID: req.TemplateID, State: instance.StateProvisioning,
		DesiredState: instance.StateRunning, Settings: orEmpty(req.Settings), Env: req.Env, Modules: map[string]string{},
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

// checkInstanceLimits applies the team type's instance limits, inside the creating transaction.
func (s *Server) checkInstanceLimits(ctx context.Context, tx *storage.Store, in *storage.Instance) error {
	if err := tx.LockTeam(ctx, in.TeamID); err != nil {
		return err
	}
	team, err := tx.GetTeam(ctx, in.TeamID)
	if err != nil {
		return err
	}
	tt, err := storage.GetObject[storage.TeamType](ctx, tx, team.TeamTypeID)
	if err != nil {
		return err
	}
	lim := tt.Properties.Limits
	total, err := tx.CountTeamInstances(ctx, in.TeamID, "")
	if err != nil {
		return err
	}
	if domain.Exceeds(lim.Instances, total) {
		return domain.LimitExceeded("instances", lim.Instances)
	}
	if perType, ok := lim.InstancesPerType[in.InstanceTypeID]; ok {
		n, err := tx.CountTeamInstances(ctx, in.TeamID, in.InstanceTypeID)
		if err != nil {
			return err
		}
		if domain.Exceeds(perType, n) {
			return domain.LimitExceeded("instances_per_type", perType)
		}
	}
	return nil
}

func newOperation(kind, subjectType, subjectID, teamID, workflowID string, who *caller) *storage.Operation {
	op := &storage.Operation{ID: domain.NewID(), Kind: kind, SubjectType: subjectType, SubjectID: subjectID, TeamID: &teamID,
		Status: storage.OperationPending, WorkflowID: workflowID}
	if who != nil && who.user != nil {
		op.CreatedBy = &who.user.ID
	}
	return op
}

// startAction starts the lifecycle workflow for an operation already recorded, and answers 202. When the
// engine refuses, the operation is marked failed so it never stays pending.
func (s *Server) startAction(c *fiber.Ctx, in *storage.Instance, op *storage.Operation, action instance.Action) error {
	return s.startRun(c, in, op, instance.Params{Action: action})
}

// startRun is startAction with the run's other parameters (a snapshot to restore, a stack to move to).
func (s *Server) startRun(c *fiber.Ctx, in *storage.Instance, op *storage.Operation, p instance.Params) error {
	if s.instances == nil {
		return s.failOperation(c.UserContext(), op, domain.Unavailable("workflows_unavailable", "This API runs without a workflow engine."))
	}
	p.InstanceID, p.TeamID, p.OperationID = in.ID, in.TeamID, op.ID
	runID, err := s.instances.Run(c.UserContext(), p)
	if err != nil {
		return s.failOperation(c.UserContext(), op, err)
	}
	op.RunID = runID
	c.Set(fiber.HeaderLocation, "/api/v1/operations/"+op.ID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"instance": s.instanceView(in), "operation": s.operationView(op)})
}

func (s *Server) failOperation(ctx context.Context, op *storage.Operation, cause error) error {
	op.Status, op.Error = storage.OperationFailed, cause.Error()
	if _, err := s.store.UpdateOperation(ctx, op, storage.OperationPending); err != nil {
		s.log.Error("mark operation failed", "operation", op.ID, "err", err)
	}
	return cause
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
	if action == instance.ActionStart || action == instance.ActionRestart {
		if err := s.checkBilling(c.UserContext(), s.store, in, false); err != nil {
			return err
		}
	}
	return s.recordAndStart(c, who, in, string(action), action)
}

func (s *Server) recordAndStart(c *fiber.Ctx, who *caller, in *storage.Instance, kind string, action instance.Action) error {
	op := newOperation(kind, "instance", in.ID, in.TeamID, instance.WorkflowID(in.ID), who)
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := s.insertOperation(ctx, tx, op); err != nil {
			return err
		}
		return audit(c, tx, who, in.TeamID, "instance."+kind, "instance", in.ID, nil)
	})
	if err != nil {
		return err
	}
	return s.startAction(c, in, op, action)
}

func (s *Server) deleteInstance(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionInstanceDelete)
	if err != nil {
		return err
	}
	return s.recordAndStart(c, who, in, "delete", instance.ActionDelete)
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
