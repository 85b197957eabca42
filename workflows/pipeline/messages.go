// Package pipeline is the promotion workflow: it moves a snapshot from one stage of a pipeline into every
// target of the next stage, after an optional approval and at an optional time. One execution per promotion,
// with the ID promotion/<promotionID>.
package pipeline

import (
	"time"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/workflows/facade"
)

// WorkflowName is the registered name of Promote; histories depend on it.
const WorkflowName = "pipeline.promotion"

// ErrFailed is the failure of a promotion that could not resolve its snapshot or whose targets failed.
const ErrFailed facade.Failure = "PromotionFailed"

// Update and query names.
const (
	UpdateApprove = "approve"
	UpdateReject  = "reject"
	UpdateCancel  = "cancel"
	QueryProgress = "progress"
)

// Params start a promotion.
type Params struct {
	PromotionID string
	PipelineID  string
	TeamID      string
	OperationID string
	RequestedBy string    // user ID
	SnapshotID  string    // named by the caller (prompt), else resolved by the source stage's action
	At          time.Time // zero: now
	// Approval gate of the target stage.
	RequiresApproval   bool
	ApproverRole       string // least team role that may decide ("owner" or "member")
	ForbidSelfApproval bool
	// Task queues of the child workflows.
	InstanceQueue string
	RolloutQueue  string
}

// Decision is an approve, reject or cancel, with who asks and their role in the team.
type Decision struct {
	UserID string
	Role   string
}

// Progress is the answer of the progress query and of every Update.
type Progress struct {
	Status     domain.PromotionStatus
	SnapshotID string
	DecidedBy  string
	Results    []activities.TargetResult
	Reason     string
}

// WorkflowID derives the workflow ID from the promotion ID.
func WorkflowID(promotionID string) string { return "promotion/" + promotionID }
