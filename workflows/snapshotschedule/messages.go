// Package snapshot is the workflow a per-instance Temporal Schedule starts to take an automatic snapshot,
// and the facade that creates, updates, triggers and deletes those Schedules. The store's snapshot_schedules
// row says whether an instance has a schedule and how many automatic snapshots it keeps; a scheduled run that
// finds no row takes nothing.
package snapshotschedule

import "time"

// WorkflowName is the registered name of Scheduled; histories depend on it, so it never changes.
const WorkflowName = "snapshot.scheduled"

// NamePrefix starts the name of every scheduled snapshot; the time it was taken follows.
const NamePrefix = "Auto snapshot - "

// Retention bounds and default (the number of automatic snapshots an instance keeps).
const (
	MinKeep     = 1
	MaxKeep     = 100
	DefaultKeep = 10
)

// MinEvery is the shortest interval a schedule may have; a cron expression may fire at most hourly too.
const MinEvery = time.Hour

// MaxEvery is the longest interval a schedule may have.
const MaxEvery = 366 * 24 * time.Hour

// ScheduleID names an instance's Temporal Schedule; the workflows it starts carry the same ID followed by
// the time they were scheduled for.
func ScheduleID(instanceID string) string { return "snapshot-schedule/" + instanceID }

// Params is what the Schedule passes to each run.
type Params struct {
	InstanceID string
}

// Result is what a run did.
type Result struct {
	SnapshotID string   // empty when the instance had no schedule any more
	Pruned     []string // automatic snapshots deleted by retention
}

// Spec is when the Schedule fires: every Every, or at the times Cron (five fields, UTC) names. Exactly one is
// set; ParseSpec builds a valid one.
type Spec struct {
	Every time.Duration
	Cron  string
}
