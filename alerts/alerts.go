// Package alerts tells teams what went wrong: an instance crashed, a device stayed offline, a rollout failed.
// Where a problem is detected (an activity, the billing webhook, the offline watcher) it calls Emit, the one
// entry point, inside the transaction (or the retried activity) that records what happened; the event is a row,
// written once per occurrence (its dedup key). The Dispatcher starts one durable delivery workflow per event,
// which delivers it to every destination the team's rules name: e-mail through the mail package's sender and
// signed webhooks, each attempt in the team's delivery log (docs/ARCHITECTURE.md §10).
package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Kinds of event a rule may name.
const (
	KindInstanceCrashed   = "instance_crashed"    // Node-RED exited unasked
	KindInstanceSafeMode  = "instance_safe_mode"  // started in safe mode after repeated crashes
	KindInstanceError     = "instance_error"      // an action failed and left the instance stopped by an error
	KindDeviceOffline     = "device_offline"      // offline for longer than the rule's minutes
	KindRolloutFailed     = "rollout_failed"      // stopped by its failure threshold, devices left as they were
	KindRolloutRolledBack = "rollout_rolled_back" // stopped, and its devices returned to their previous target
	KindPromotionFailed   = "promotion_failed"    // a pipeline promotion failed
	KindBillingProblem    = "billing_problem"     // a payment failed, or the subscription is unpaid or cancelled
	KindTest              = "test"                // sent by a webhook's "send test"
)

// Kinds are the kinds a rule may name, in the order the dashboard lists them.
var Kinds = []string{KindInstanceCrashed, KindInstanceSafeMode, KindInstanceError, KindDeviceOffline,
	KindRolloutFailed, KindRolloutRolledBack, KindPromotionFailed, KindBillingProblem}

// ValidKind reports whether a rule may name kind.
func ValidKind(kind string) bool { return slices.Contains(Kinds, kind) }

// Event is something a team may be told of.
type Event struct {
	TeamID      string
	Kind        string
	SubjectType string // instance, device, device-group (a rollout), pipeline (a promotion), team, webhook
	SubjectID   string
	SubjectName string
	Message     string
	// DedupKey names the occurrence: an event whose key is already stored is not stored again, so a retried
	// activity or two processes detecting the same thing alert once.
	DedupKey  string
	RuleID    string // only this rule's destinations (a device offline for this rule's minutes)
	WebhookID string // only this webhook (a test)
}

// Emit records an event in tx, once per dedup key; the Dispatcher delivers it. It reports whether the event is
// new. Call it in the transaction that records what happened, so that both or neither are kept.
func Emit(ctx context.Context, tx *storage.Store, e Event) (bool, error) {
	if e.TeamID == "" || e.Kind == "" || e.DedupKey == "" {
		return false, fmt.Errorf("alert event %q: team, kind and dedup key are required", e.Kind)
	}
	row := &storage.AlertEvent{ID: domain.NewID(), TeamID: e.TeamID, Kind: e.Kind, SubjectType: e.SubjectType,
		SubjectID: e.SubjectID, SubjectName: e.SubjectName, Message: e.Message, DedupKey: e.DedupKey,
		RuleID: optional(e.RuleID), WebhookID: optional(e.WebhookID)}
	fresh, err := tx.InsertAlertEvent(ctx, row)
	if err == nil && fresh {
		Wake()
	}
	return fresh, err
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// wake tells this process's Dispatcher that an event may be waiting; events emitted elsewhere are found by its
// next poll.
var wake = make(chan struct{}, 1)

// Wake asks the Dispatcher of this process to look for events now rather than at its next poll. Emit calls it;
// an event emitted in a transaction that has not committed yet is found by a later look.
func Wake() {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// Title is the one-line summary of an event, for an e-mail's subject and a webhook's payload.
func Title(e *storage.AlertEvent) string {
	if e.SummaryCount > 0 {
		if e.SubjectID == "" {
			return fmt.Sprintf("%d more %s alerts (%s)", e.SummaryCount, strings.ReplaceAll(e.Kind, "_", " "), e.SubjectName)
		}
		return fmt.Sprintf("%d more alerts: %s", e.SummaryCount, Title(&storage.AlertEvent{Kind: e.Kind, SubjectID: e.SubjectID, SubjectName: e.SubjectName}))
	}
	name := e.SubjectName
	if name == "" {
		name = e.SubjectID
	}
	switch e.Kind {
	case KindInstanceCrashed:
		return fmt.Sprintf("Instance %s crashed", name)
	case KindInstanceSafeMode:
		return fmt.Sprintf("Instance %s is running in safe mode", name)
	case KindInstanceError:
		return fmt.Sprintf("Instance %s was stopped by an error", name)
	case KindDeviceOffline:
		return fmt.Sprintf("Device %s is offline", name)
	case KindRolloutFailed:
		return fmt.Sprintf("Rollout to %s failed", name)
	case KindRolloutRolledBack:
		return fmt.Sprintf("Rollout to %s was rolled back", name)
	case KindPromotionFailed:
		return fmt.Sprintf("Promotion in pipeline %s failed", name)
	case KindBillingProblem:
		return fmt.Sprintf("Billing problem for team %s", name)
	case KindTest:
		return "Test alert from Flowyard"
	}
	return e.Kind
}

// dashboardPath is where the dashboard shows an event's subject.
func dashboardPath(e *storage.AlertEvent) string {
	base := "/teams/" + e.TeamID
	if e.SubjectID == "" {
		return base + "/alerts"
	}
	switch e.SubjectType {
	case "instance":
		return base + "/instances/" + e.SubjectID
	case "device":
		return base + "/devices/" + e.SubjectID
	case "device-group":
		return base + "/device-groups/" + e.SubjectID
	case "pipeline":
		return base + "/pipelines/" + e.SubjectID
	case "team":
		return base + "/billing"
	}
	return base + "/alerts"
}
