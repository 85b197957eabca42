package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

type operationJSON struct {
	ID          string                 `json:"id"`
	Kind        string                 `json:"kind"`
	SubjectType string                 `json:"subjectType"`
	SubjectID   string                 `json:"subjectId"`
	Status      domain.OperationStatus `json:"status"`
	Progress    map[string]any         `json:"progress"`
	Error       string                 `json:"error,omitempty"`
	WorkflowID  string                 `json:"workflowId"`
	RunID       string                 `json:"runId"`
	TemporalURL string                 `json:"temporalUrl,omitempty"`
	CreatedAt   time.Time              `json:"createdAt"`
	FinishedAt  *time.Time             `json:"finishedAt,omitempty"`
}

func (s *Server) operationView(op *storage.Operation) operationJSON {
	v := operationJSON{ID: op.ID, Kind: op.Kind, SubjectType: op.SubjectType, SubjectID: op.SubjectID, Status: op.Status,
		Progress: op.Progress, Error: op.Error, WorkflowID: op.WorkflowID, RunID: op.RunID, CreatedAt: op.CreatedAt, FinishedAt: op.FinishedAt}
	if s.wfURL != nil {
		v.TemporalURL = s.wfURL(op.WorkflowID, op.RunID)
	}
	return v
}

func (s *Server) registerOperations() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/operations/:operationId", Summary: "One long-running operation: status, progress, error, Temporal link.", Tag: "operations"}, s.getOperation)
}

func (s *Server) getOperation(c *fiber.Ctx) error {
	op, err := s.store.GetOperation(c.UserContext(), c.Params("operationId"))
	if err != nil {
		return err
	}
	if op.TeamID == nil {
		if _, err := requireAdmin(c); err != nil {
			return domain.NotFound("operation")
		}
	} else if _, _, err := s.teamAccess(c, *op.TeamID, domain.ActionOperationRead, "operation"); err != nil {
		return err
	}
	return c.JSON(s.operationView(op))
}
