package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// Node-RED upgrades. Changing an instance's stack is a lifecycle action (POST …/upgrade, owners): a workflow
// snapshots the instance, moves it to the stack, restarts it and waits for its flows, and puts the old stack
// and flows back if they do not start. A platform admin moves every instance of a stack to another one
// (POST /stacks/{id}/move): a workflow upgrades them in waves, a few at a time, and stops past a failure
// threshold.

// StackMoveRunner starts moves of a stack's instances; the workflow facade implements it.
type StackMoveRunner = services.StackMoveRunner

type upgradeRequest struct {
	StackID string `json:"stackId"`
}

type stackMoveRequest struct {
	ToStackID string `json:"toStackId"`
	// Waves are cumulative percentages of the stack's instances (default 10, 50, 100); FailureThreshold the
	// share of failed upgrades that stops the move (default 0.1); Concurrency how many instances are
	// upgraded at once (default 4, at most 50).
	Waves            []int    `json:"waves,omitempty"`
	FailureThreshold *float64 `json:"failureThreshold,omitempty"`
	Concurrency      *int     `json:"concurrency,omitempty"`
}

type stackMoveJSON struct {
	ID          string                 `json:"id"`
	FromStackID string                 `json:"fromStackId"`
	ToStackID   string                 `json:"toStackId"`
	Strategy    map[string]any         `json:"strategy"`
	Status      domain.StackMoveStatus `json:"status"`
	Wave        int                    `json:"wave"`
	Waves       int                    `json:"waves"`
	Total       int                    `json:"total"`
	Moved       int                    `json:"moved"`
	Failed      int                    `json:"failed"`
	Skipped     int                    `json:"skipped"`
	Pending     int                    `json:"pending"`
	Reason      string                 `json:"reason,omitempty"`
	OperationID *string                `json:"operationId"`
	CreatedAt   time.Time              `json:"createdAt"`
	FinishedAt  *time.Time             `json:"finishedAt,omitempty"`
}

type stackMoveInstanceJSON struct {
	InstanceID  string                         `json:"instanceId"`
	Name        string                         `json:"name"`
	Wave        int                            `json:"wave"`
	Status      domain.StackMoveInstanceStatus `json:"status"`
	Error       string                         `json:"error,omitempty"`
	OperationID *string                        `json:"operationId"`
}

func stackMoveView(m *storage.StackMove) stackMoveJSON {
	return stackMoveJSON{ID: m.ID, FromStackID: m.FromStackID, ToStackID: m.ToStackID, Strategy: m.Strategy, Status: m.Status,
		Wave: m.Wave, Waves: m.Waves, Total: m.Total, Moved: m.Moved, Failed: m.Failed, Skipped: m.Skipped, Pending: m.Pending,
		Reason: m.Reason, OperationID: m.OperationID, CreatedAt: m.CreatedAt, FinishedAt: m.FinishedAt}
}

func stackMoveInstanceView(v *storage.StackMoveInstanceView) stackMoveInstanceJSON {
	return stackMoveInstanceJSON{InstanceID: v.InstanceID, Name: v.Name, Wave: v.Wave, Status: v.Status, Error: v.Error, OperationID: v.OperationID}
}

func (s *Server) registerUpgrades() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/instances/:instanceId/upgrade", Tag: "instances", Body: upgradeRequest{}, Status: 202,
		Summary: "Move the instance to another stack (Node-RED version) as a workflow (202): snapshot, new stack, restart, wait for the flows; the old stack and flows come back if they do not start."}, s.upgradeInstance)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/stacks/:stackId/move", Tag: "stacks", Body: stackMoveRequest{}, Status: 202,
		Summary: "Upgrade every instance of the stack to another one, in waves with a failure threshold (platform admins; 202)."}, s.moveStack)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/stacks/:stackId/moves", Tag: "stacks",
		Summary: "Moves of the stack's instances to other stacks, newest first (platform admins)."}, s.listStackMoves)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/stack-moves/:moveId", Tag: "stacks",
		Summary: "A move of a stack's instances: status, wave and counts (platform admins)."}, s.getStackMove)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/stack-moves/:moveId/instances", Tag: "stacks",
		Summary: "Each instance's part in a move: wave, status, error and its upgrade operation (platform admins)."}, s.listStackMoveInstances)
}

// stackChangeIsAnOperation refuses a stack change by PATCH, pointing at the operation that does it.
func stackChangeIsAnOperation(instanceID string) error {
	return domain.Unprocessable("stack_change_is_an_upgrade",
		"A stack change restarts the instance and is undone if its flows do not start there: ask for it with POST /api/v1/instances/"+instanceID+"/upgrade {\"stackId\": …}.",
		domain.FieldError{Field: "stackId", Detail: "change it with POST /api/v1/instances/" + instanceID + "/upgrade"})
}

func (s *Server) upgradeInstance(c *fiber.Ctx) error {
	who, in, err := s.instanceFor(c, domain.ActionInstanceEdit)
	if err != nil {
		return err
	}
	var req upgradeRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := domain.Collect(requiredField("stackId", req.StackID)); err != nil {
		return err
	}
	if req.StackID == in.StackID {
		return domain.Unprocessable("already_on_stack", "The instance runs on that stack already.",
			domain.FieldError{Field: "stackId", Detail: "is the instance's stack"})
	}
	if err := usableStack(c.UserContext(), s.store, req.StackID, in.InstanceTypeID); err != nil {
		return err
	}
	return s.runAction(c, who, in, instance.Params{Action: instance.ActionUpgrade, StackID: req.StackID},
		map[string]any{"fromStackId": in.StackID, "toStackId": req.StackID})
}

// parseMoveStrategy fills the defaults and checks every field.
func parseMoveStrategy(req *stackMoveRequest) (stackmove.Strategy, error) {
	st := stackmove.DefaultStrategy()
	var errs []*domain.FieldError
	if req.Waves != nil {
		if st.Waves = req.Waves; !validWaves(req.Waves) {
			errs = append(errs, &domain.FieldError{Field: "waves", Detail: "must be increasing percentages from 1 to 100, ending at 100"})
		}
	}
	if req.FailureThreshold != nil {
		if st.FailureThreshold = *req.FailureThreshold; st.FailureThreshold < 0 || st.FailureThreshold > 1 {
			errs = append(errs, &domain.FieldError{Field: "failureThreshold", Detail: "must be within 0..1"})
		}
	}
	if req.Concurrency != nil {
		if st.Concurrency = *req.Concurrency; st.Concurrency < 1 || st.Concurrency > 50 {
			errs = append(errs, &domain.FieldError{Field: "concurrency", Detail: "must be from 1 to 50"})
		}
	}
	return st, domain.Collect(errs...)
}

func (s *Server) moveStack(c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	from, err := storage.GetObject[storage.Stack](ctx, s.store, c.Params("stackId"))
	if err != nil {
		return err
	}
	var req stackMoveRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	strategy, err := parseMoveStrategy(&req)
	if err != nil {
		return err
	}
	if err := s.checkMoveTarget(ctx, from, req.ToStackID); err != nil {
		return err
	}
	m := &storage.StackMove{ID: domain.NewID(), FromStackID: from.ID, ToStackID: req.ToStackID}
	op, err := s.svc.stackMoves.Start(ctx, who.userID(), m, strategy)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/operations/"+op.ID)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"move": stackMoveView(m), "operation": s.operationView(op)})
}

// checkMoveTarget refuses a move to the same stack, to a stack that does not exist or is inactive. A target
// bound to one instance type fails, at their turn, the instances of other types.
func (s *Server) checkMoveTarget(ctx context.Context, from *storage.Stack, toStackID string) error {
	if err := domain.Collect(requiredField("toStackId", toStackID)); err != nil {
		return err
	}
	if toStackID == from.ID {
		return domain.Unprocessable("same_stack", "The instances are on that stack already.",
			domain.FieldError{Field: "toStackId", Detail: "is the stack being moved from"})
	}
	to, err := storage.GetObject[storage.Stack](ctx, s.store, toStackID)
	if domain.IsKind(err, domain.KindNotFound) {
		return unknownReference("toStackId")
	}
	if err != nil {
		return err
	}
	if !to.Active {
		return domain.Unprocessable("stack_inactive", "The stack is no longer offered for new instances or stack changes.",
			domain.FieldError{Field: "toStackId", Detail: "is not active"})
	}
	return nil
}

func (s *Server) listStackMoves(c *fiber.Ctx) error {
	if _, err := requireAdmin(c); err != nil {
		return err
	}
	stack, err := storage.GetObject[storage.Stack](c.UserContext(), s.store, c.Params("stackId"))
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListStackMoves(c.UserContext(), stack.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, stackMoveView)
}

func (s *Server) getStackMove(c *fiber.Ctx) error {
	m, err := s.stackMoveFor(c)
	if err != nil {
		return err
	}
	return c.JSON(stackMoveView(m))
}

func (s *Server) listStackMoveInstances(c *fiber.Ctx) error {
	m, err := s.stackMoveFor(c)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListStackMoveInstances(c.UserContext(), m.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, stackMoveInstanceView)
}

// stackMoveFor loads the move in the path, for platform admins only (others get the same 404 as for none).
func (s *Server) stackMoveFor(c *fiber.Ctx) (*storage.StackMove, error) {
	if _, err := requireAdmin(c); err != nil {
		return nil, domain.NotFound("stack move")
	}
	return s.store.GetStackMove(c.UserContext(), c.Params("moveId"))
}
