package domain

// The words several packages share: the states and statuses the store keeps, the workflows write and the API
// shows, with the sets that decide what may happen next; the search attributes an operator filters workflows
// on; the roles of the task queues. Each is declared here once; storage, the workflows, activities, metrics
// and the dashboard use these (web/vocabulary_test.go checks the dashboard's copy).

// InstanceState is where an instance is in its lifecycle.
type InstanceState string

// Instance states.
const (
	InstanceProvisioning InstanceState = "provisioning"
	InstanceStarting     InstanceState = "starting"
	InstanceRunning      InstanceState = "running"
	InstanceStopping     InstanceState = "stopping"
	InstanceStopped      InstanceState = "stopped"
	InstanceSuspending   InstanceState = "suspending"
	InstanceSuspended    InstanceState = "suspended"
	InstanceRestarting   InstanceState = "restarting"
	InstanceRollback     InstanceState = "rollback"
	InstanceUpgrading    InstanceState = "upgrading"
	InstanceDeleting     InstanceState = "deleting"
	InstanceCrashed      InstanceState = "crashed"
	InstanceError        InstanceState = "error"

	// InstanceDeleted is the desired state and the result of a delete; no instance row is ever in it.
	InstanceDeleted InstanceState = "deleted"
)

// InstanceStates are all the states an instance row can be in, the one list of them (the instances metric counts each).
func InstanceStates() []InstanceState {
	return []InstanceState{InstanceProvisioning, InstanceStarting, InstanceRunning, InstanceStopping, InstanceStopped,
		InstanceSuspending, InstanceSuspended, InstanceRestarting, InstanceRollback, InstanceUpgrading, InstanceDeleting,
		InstanceCrashed, InstanceError}
}

// OperationStatus is where an operation (one workflow run on a subject) is.
type OperationStatus string

// Operation statuses.
const (
	OperationPending   OperationStatus = "pending"
	OperationRunning   OperationStatus = "running"
	OperationSucceeded OperationStatus = "succeeded"
	OperationFailed    OperationStatus = "failed"
	OperationCanceled  OperationStatus = "canceled"
)

// OperationStatuses are all operation statuses.
func OperationStatuses() []OperationStatus {
	return []OperationStatus{OperationPending, OperationRunning, OperationSucceeded, OperationFailed, OperationCanceled}
}

// Terminal reports whether an operation in this status has finished.
func (s OperationStatus) Terminal() bool {
	return s == OperationSucceeded || s == OperationFailed || s == OperationCanceled
}

// RolloutStatus is where a rollout to a device group is.
type RolloutStatus string

// Rollout statuses.
const (
	RolloutRunning          RolloutStatus = "running"
	RolloutPaused           RolloutStatus = "paused"
	RolloutAwaitingApproval RolloutStatus = "awaiting_approval"
	RolloutSucceeded        RolloutStatus = "succeeded"
	RolloutFailed           RolloutStatus = "failed"
	RolloutRollingBack      RolloutStatus = "rolling_back"
	RolloutRolledBack       RolloutStatus = "rolled_back"
	RolloutAborted          RolloutStatus = "aborted"
)

// RolloutStatuses are all rollout statuses.
func RolloutStatuses() []RolloutStatus {
	return []RolloutStatus{RolloutRunning, RolloutPaused, RolloutAwaitingApproval, RolloutSucceeded, RolloutFailed,
		RolloutRollingBack, RolloutRolledBack, RolloutAborted}
}

// ActiveRolloutStatuses are the statuses of a rollout that still runs; a group has at most one such rollout.
func ActiveRolloutStatuses() []RolloutStatus {
	return []RolloutStatus{RolloutRunning, RolloutPaused, RolloutAwaitingApproval, RolloutRollingBack}
}

// Active reports whether a rollout in this status still runs.
func (s RolloutStatus) Active() bool {
	return s == RolloutRunning || s == RolloutPaused || s == RolloutAwaitingApproval || s == RolloutRollingBack
}

// Terminal reports whether a rollout in this status has finished.
func (s RolloutStatus) Terminal() bool {
	return s == RolloutSucceeded || s == RolloutFailed || s == RolloutRolledBack || s == RolloutAborted
}

// RolloutDeviceStatus is where one device is in a rollout.
type RolloutDeviceStatus string

// Statuses of a device in a rollout.
const (
	RolloutDevicePending     RolloutDeviceStatus = "pending"
	RolloutDeviceUpdating    RolloutDeviceStatus = "updating"
	RolloutDeviceUpdated     RolloutDeviceStatus = "updated"
	RolloutDeviceFailed      RolloutDeviceStatus = "failed"
	RolloutDeviceRollingBack RolloutDeviceStatus = "rolling_back"
	RolloutDeviceRolledBack  RolloutDeviceStatus = "rolled_back"
)

// PromotionStatus is where a promotion along a pipeline is.
type PromotionStatus string

// Promotion statuses.
const (
	PromotionScheduled        PromotionStatus = "scheduled"
	PromotionAwaitingApproval PromotionStatus = "awaiting_approval"
	PromotionRunning          PromotionStatus = "running"
	PromotionSucceeded        PromotionStatus = "succeeded"
	PromotionFailed           PromotionStatus = "failed"
	PromotionRejected         PromotionStatus = "rejected"
	PromotionCanceled         PromotionStatus = "canceled"
)

// PromotionStatuses are all promotion statuses.
func PromotionStatuses() []PromotionStatus {
	return []PromotionStatus{PromotionScheduled, PromotionAwaitingApproval, PromotionRunning, PromotionSucceeded,
		PromotionFailed, PromotionRejected, PromotionCanceled}
}

// ActivePromotionStatuses are the statuses of a promotion still open: scheduled, awaiting approval or running.
func ActivePromotionStatuses() []PromotionStatus {
	return []PromotionStatus{PromotionScheduled, PromotionAwaitingApproval, PromotionRunning}
}

// Active reports whether a promotion in this status is still open (scheduled, awaiting approval or running).
func (s PromotionStatus) Active() bool {
	return s == PromotionScheduled || s == PromotionAwaitingApproval || s == PromotionRunning
}

// Terminal reports whether a promotion in this status has finished.
func (s PromotionStatus) Terminal() bool {
	return s == PromotionSucceeded || s == PromotionFailed || s == PromotionRejected || s == PromotionCanceled
}

// PromotionTargetStatus is where one target (an instance or a device group) of a promotion is.
type PromotionTargetStatus string

// Statuses of a promotion's target.
const (
	PromotionTargetPending   PromotionTargetStatus = "pending"
	PromotionTargetRunning   PromotionTargetStatus = "running"
	PromotionTargetSucceeded PromotionTargetStatus = "succeeded"
	PromotionTargetFailed    PromotionTargetStatus = "failed"
)

// Done reports whether a target in this status has finished.
func (s PromotionTargetStatus) Done() bool {
	return s == PromotionTargetSucceeded || s == PromotionTargetFailed
}

// StackMoveStatus is where a move of a stack's instances to another stack is.
type StackMoveStatus string

// Stack move statuses.
const (
	StackMoveRunning   StackMoveStatus = "running"
	StackMoveSucceeded StackMoveStatus = "succeeded"
	StackMoveFailed    StackMoveStatus = "failed"
)

// StackMoveInstanceStatus is where one instance is in a stack move: pending, moving, then moved or failed.
type StackMoveInstanceStatus string

// Statuses of an instance in a stack move.
const (
	StackMoveInstancePending StackMoveInstanceStatus = "pending"
	StackMoveInstanceMoving  StackMoveInstanceStatus = "moving"
	StackMoveInstanceMoved   StackMoveInstanceStatus = "moved"
	StackMoveInstanceFailed  StackMoveInstanceStatus = "failed"
	StackMoveInstanceSkipped StackMoveInstanceStatus = "skipped" // deleted, or moved to another stack by hand, before its wave
)

// Search attributes every Flowyard workflow namespace registers, so an operator can find any operation in the
// Temporal UI; the workflow facades set them when they start a workflow.
const (
	SearchAttrTeamID        = "TeamId"
	SearchAttrInstanceID    = "InstanceId"
	SearchAttrDeviceGroupID = "DeviceGroupId"
	SearchAttrRolloutID     = "RolloutId"
	SearchAttrPipelineID    = "PipelineId"
)

// TaskQueueRole is a logical task queue; the Temporal configuration maps each role to the queue's name on the
// cluster (temporalenv.Config.TaskQueue).
type TaskQueueRole = string

// Task-queue roles.
const (
	QueueInstances TaskQueueRole = "instances" // instance lifecycles and scheduled snapshots
	QueueRollouts  TaskQueueRole = "rollouts"  // device rollouts and stack moves
	QueuePipelines TaskQueueRole = "pipelines" // promotions
	QueueBilling   TaskQueueRole = "billing"   // per-team billing and its reconciliation
	QueueAlerts    TaskQueueRole = "alerts"    // alert deliveries
)
