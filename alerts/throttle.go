package alerts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// DefaultThrottleMinutes is a new rule's throttle window when its request names none.
const DefaultThrottleMinutes = 15

// summaryLines is how many held events a summary names one by one.
const summaryLines = 20

// Summarise sends the summaries that are due at now: for each rule and kind whose throttle window has ended with
// events held back, one event narrowed to the rule that tells of them (and opens the next window, so a storm
// that goes on yields one notification per window). Claiming the window, writing the summary and marking the
// held events happen in one transaction, so a crash loses nothing and several dispatchers summarise once.
func (d *Dispatcher) Summarise(ctx context.Context, now time.Time) error {
	due, err := d.Store.DueAlertThrottles(ctx, now, 100)
	if err != nil {
		return err
	}
	for _, th := range due {
		if err := d.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
			return summarise(ctx, tx, th, now)
		}); err != nil {
			return fmt.Errorf("summarise rule %s (%s): %w", th.RuleID, th.Kind, err)
		}
	}
	return nil
}

func summarise(ctx context.Context, tx *storage.Store, th storage.AlertThrottle, now time.Time) error {
	r, err := tx.GetAlertRule(ctx, th.RuleID)
	if err != nil {
		return err
	}
	next := now.Add(time.Duration(r.ThrottleMinutes) * time.Minute)
	if won, err := tx.ClaimAlertThrottle(ctx, th.RuleID, th.Kind, now, next); err != nil || !won {
		return err
	}
	held, err := tx.UnsummarisedAlertEvents(ctx, th.RuleID, th.Kind)
	if err != nil || len(held) == 0 {
		return err
	}
	sum := summaryOf(r, th.Kind, held)
	if _, err := tx.InsertAlertEvent(ctx, sum); err != nil {
		return err
	}
	ids := make([]string, len(held))
	for i := range held {
		ids[i] = held[i].ID
	}
	if err := tx.MarkAlertHeldSummarised(ctx, r.ID, sum.ID, ids); err != nil {
		return err
	}
	Wake()
	return nil
}

// summaryOf is the event that tells of held events: about their subject when they share one (a flapping
// instance), else about the team's alerts (a fleet going offline at once), naming each up to summaryLines.
func summaryOf(r *storage.AlertRule, kind string, held []storage.AlertEvent) *storage.AlertEvent {
	first := held[0]
	sum := &storage.AlertEvent{ID: domain.NewID(), TeamID: r.TeamID, Kind: kind, SubjectType: first.SubjectType,
		SubjectID: first.SubjectID, SubjectName: first.SubjectName, RuleID: &r.ID, SummaryCount: len(held)}
	subjects := map[string]bool{}
	var b strings.Builder
	fmt.Fprintf(&b, "Rule %q held back %d more alerts since %s (at most one notification every %d minutes):",
		r.Name, len(held), first.CreatedAt.UTC().Format(time.RFC3339), r.ThrottleMinutes)
	for i := range held {
		e := &held[i]
		subjects[e.SubjectType+" "+e.SubjectID] = true
		if i < summaryLines {
			fmt.Fprintf(&b, "\n- %s at %s", Title(e), e.CreatedAt.UTC().Format(time.RFC3339))
		}
	}
	if len(held) > summaryLines {
		fmt.Fprintf(&b, "\n- and %d more", len(held)-summaryLines)
	}
	if len(subjects) > 1 {
		sum.SubjectID, sum.SubjectName = "", fmt.Sprintf("%d subjects", len(subjects))
	}
	sum.Message = b.String()
	sum.DedupKey = "summary:" + sum.ID
	return sum
}
