// Package services holds the flows that several entry points share: the API's handlers, the worker's activities
// and the platform's crash recovery. Each flow writes its rows, its operation and its audit entry in one
// transaction and starts its workflow through the workflow's facade (workflows/*/client.go); when the engine
// refuses, the operation is marked failed with the reason, so it never stays pending. Handlers decode, authorize,
// call a service and answer. See docs/ARCHITECTURE.md §2 and §3.
package services

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Operations records operations. MaxInFlight bounds a team's operations pending or running at once (the API's
// limit); 0 records without a limit (the platform's own operations: crash recovery).
type Operations struct {
	Store       *storage.Store
	MaxInFlight int
	Log         *slog.Logger // nil: slog.Default()
}

// OperationRetryAfter is what a client refused for too many operations is told to wait: operations take seconds
// to minutes.
const OperationRetryAfter = 30 * time.Second

// ErrNoEngine is the answer of a flow that starts a workflow in a process that runs without a workflow engine.
func ErrNoEngine() error {
	return domain.Unavailable("workflows_unavailable", "This API runs without a workflow engine.")
}

// NewOperation builds a pending operation on a subject, run by the workflow workflowID; by is the user who
// asked ("" for the platform itself).
func NewOperation(kind, subjectType, subjectID, teamID, workflowID, by string) *storage.Operation {
	op := &storage.Operation{ID: domain.NewID(), Kind: kind, SubjectType: subjectType, SubjectID: subjectID, TeamID: &teamID,
		Status: domain.OperationPending, WorkflowID: workflowID}
	if by != "" {
		op.CreatedBy = &by
	}
	return op
}

// Record inserts op inside tx, unless its team already has MaxInFlight operations pending or running. The count
// and the insert share the transaction (and the team's lock), so the limit holds across API replicas.
func (s *Operations) Record(ctx context.Context, tx *storage.Store, op *storage.Operation) error {
	if op.TeamID != nil && s.MaxInFlight > 0 {
		n, err := tx.CountTeamOperationsInFlight(ctx, *op.TeamID)
		if err != nil {
			return err
		}
		if n >= s.MaxInFlight {
			return domain.TooMany("too_many_operations", fmt.Sprintf(
				"The team has %d operations in progress, the most it may run at once; try again when one has finished.", n), OperationRetryAfter)
		}
	}
	_, _, err := tx.InsertOperation(ctx, op)
	return err
}

// Fail marks a pending operation failed with cause (its workflow was not started) and returns cause.
func (s *Operations) Fail(ctx context.Context, op *storage.Operation, cause error) error {
	op.Status, op.Error = domain.OperationFailed, cause.Error()
	if _, err := s.Store.UpdateOperation(ctx, op, domain.OperationPending); err != nil {
		s.log().Error("mark operation failed", "operation", op.ID, "err", err)
	}
	return cause
}

func (s *Operations) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Audit records an event in the team's audit log (teamID "" for a platform event), inside tx; by is the user who
// acted ("" for the platform itself).
func Audit(ctx context.Context, tx *storage.Store, by, teamID, event, entityType, entityID string, body map[string]any) error {
	e := &storage.AuditEntry{Event: event, EntityType: entityType, EntityID: entityID, Body: body}
	if teamID != "" {
		e.TeamID = &teamID
	}
	if by != "" {
		e.UserID = &by
	}
	return tx.InsertAudit(ctx, e)
}
