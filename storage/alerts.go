package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// AlertWebhook is a team's webhook; Secret is sealed with the platform key.
type AlertWebhook struct {
	bun.BaseModel `bun:"table:alert_webhooks"`
	ID            string `bun:",pk"`
	TeamID        string
	Name          string
	URL           string
	Secret        string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// AlertRule routes a team's events of some kinds to e-mail (members of at least EmailRole; 0 = none) and/or a
// webhook.
type AlertRule struct {
	bun.BaseModel  `bun:"table:alert_rules"`
	ID             string `bun:",pk"`
	TeamID         string
	Name           string
	Kinds          []string `bun:",type:text"`
	OfflineMinutes int
	// ThrottleMinutes is the rule's throttle window: at most one notification per kind of event in it, the
	// events held back meanwhile summarised when it ends (0: every event is sent).
	ThrottleMinutes int
	EmailRole       domain.Role
	WebhookID       *string
	Enabled         bool
	CreatedBy       *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// AlertEvent is one thing that happened that a team may be told of, recorded once (DedupKey).
type AlertEvent struct {
	bun.BaseModel `bun:"table:alert_events"`
	ID            string `bun:",pk"`
	TeamID        string
	Kind          string
	SubjectType   string
	SubjectID     string
	SubjectName   string
	Message       string
	DedupKey      string
	RuleID        *string
	WebhookID     *string
	SummaryCount  int // a summary of this many held events (0: an ordinary event)
	CreatedAt     time.Time
	DispatchedAt  *time.Time
}

// AlertDelivery is one event's delivery to one destination, and its attempts (the delivery log).
type AlertDelivery struct {
	bun.BaseModel `bun:"table:alert_deliveries"`
	ID            string `bun:",pk"`
	TeamID        string
	EventID       string
	RuleID        *string
	WebhookID     *string
	Channel       string
	Target        string
	Status        string
	Attempts      int
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   *time.Time
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	// DeliveryThrottled is an event its rule held back: it is counted in the rule's next summary instead.
	DeliveryThrottled = "throttled"
)

// InsertAlertWebhook adds a webhook.
func (s *Store) InsertAlertWebhook(ctx context.Context, w *AlertWebhook) error {
	w.CreatedAt = now()
	w.UpdatedAt = w.CreatedAt
	_, err := s.db.NewInsert().Model(w).Exec(ctx)
	return classify(err, "webhook")
}

// GetAlertWebhook returns a webhook by ID.
func (s *Store) GetAlertWebhook(ctx context.Context, id string) (*AlertWebhook, error) {
	w := new(AlertWebhook)
	err := s.db.NewSelect().Model(w).Where("id = ?", id).Scan(ctx)
	return w, classify(err, "webhook")
}

// ListAlertWebhooks returns a team's webhooks, oldest first.
func (s *Store) ListAlertWebhooks(ctx context.Context, teamID string) ([]AlertWebhook, error) {
	var out []AlertWebhook
	err := s.db.NewSelect().Model(&out).Where("team_id = ?", teamID).Order("created_at", "id").Limit(MaxPageLimit).Scan(ctx)
	return out, err
}

// UpdateAlertWebhook writes the given columns of a webhook.
func (s *Store) UpdateAlertWebhook(ctx context.Context, w *AlertWebhook, columns ...string) error {
	w.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(w).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "webhook")
}

// DeleteAlertWebhook removes a webhook; rules that used it keep their e-mail part.
func (s *Store) DeleteAlertWebhook(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*AlertWebhook)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "webhook")
}

// CountAlertWebhooks counts a team's webhooks (the API caps them).
func (s *Store) CountAlertWebhooks(ctx context.Context, teamID string) (int, error) {
	n, err := s.db.NewSelect().Model((*AlertWebhook)(nil)).Where("team_id = ?", teamID).Count(ctx)
	return int(n), err
}

// InsertAlertRule adds a rule.
func (s *Store) InsertAlertRule(ctx context.Context, r *AlertRule) error {
	r.CreatedAt = now()
	r.UpdatedAt = r.CreatedAt
	_, err := s.db.NewInsert().Model(r).Exec(ctx)
	return classify(err, "alert rule")
}

// GetAlertRule returns a rule by ID.
func (s *Store) GetAlertRule(ctx context.Context, id string) (*AlertRule, error) {
	r := new(AlertRule)
	err := s.db.NewSelect().Model(r).Where("id = ?", id).Scan(ctx)
	return r, classify(err, "alert rule")
}

// ListAlertRules returns a team's rules, oldest first.
func (s *Store) ListAlertRules(ctx context.Context, teamID string) ([]AlertRule, error) {
	var out []AlertRule
	err := s.db.NewSelect().Model(&out).Where("team_id = ?", teamID).Order("created_at", "id").Limit(MaxPageLimit).Scan(ctx)
	return out, err
}

// ListEnabledAlertRules returns every enabled rule of every team, for the watcher of conditions that last (a
// device offline for N minutes).
func (s *Store) ListEnabledAlertRules(ctx context.Context) ([]AlertRule, error) {
	var out []AlertRule
	err := s.db.NewSelect().Model(&out).Where("enabled = ?", true).Order("team_id", "id").Scan(ctx)
	return out, err
}

// UpdateAlertRule writes the given columns of a rule.
func (s *Store) UpdateAlertRule(ctx context.Context, r *AlertRule, columns ...string) error {
	r.UpdatedAt = now()
	res, err := s.db.NewUpdate().Model(r).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, "alert rule")
}

// DeleteAlertRule removes a rule.
func (s *Store) DeleteAlertRule(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*AlertRule)(nil)).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, "alert rule")
}

// CountAlertRules counts a team's rules (the API caps them).
func (s *Store) CountAlertRules(ctx context.Context, teamID string) (int, error) {
	n, err := s.db.NewSelect().Model((*AlertRule)(nil)).Where("team_id = ?", teamID).Count(ctx)
	return int(n), err
}

// InsertAlertEvent records an event unless one with its dedup key exists; it reports whether it was new.
func (s *Store) InsertAlertEvent(ctx context.Context, e *AlertEvent) (bool, error) {
	e.CreatedAt = now()
	res, err := s.db.NewInsert().Model(e).On("CONFLICT (dedup_key) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, classify(err, "alert event")
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// GetAlertEvent returns an event by ID.
func (s *Store) GetAlertEvent(ctx context.Context, id string) (*AlertEvent, error) {
	e := new(AlertEvent)
	err := s.db.NewSelect().Model(e).Where("id = ?", id).Scan(ctx)
	return e, classify(err, "alert event")
}

// UndispatchedAlertEvents returns up to limit events whose delivery has not been started, oldest first.
func (s *Store) UndispatchedAlertEvents(ctx context.Context, limit int) ([]AlertEvent, error) {
	var out []AlertEvent
	err := s.db.NewSelect().Model(&out).Where("dispatched_at IS NULL").Order("created_at", "id").Limit(int64(limit)).Scan(ctx)
	return out, err
}

// MarkAlertEventDispatched records that the event's delivery workflow has been started.
func (s *Store) MarkAlertEventDispatched(ctx context.Context, id string) error {
	_, err := s.db.NewUpdate().Model((*AlertEvent)(nil)).Set("dispatched_at = ?", now()).Where("id = ?", id).Exec(ctx)
	return err
}

// DeleteAlertEventsBefore removes dispatched events (and their deliveries) older than at: the log's retention.
func (s *Store) DeleteAlertEventsBefore(ctx context.Context, at time.Time) (int, error) {
	return s.RunInTxCount(ctx, func(ctx context.Context, tx *Store) (int, error) {
		old := tx.db.NewSelect().Model((*AlertEvent)(nil)).Column("id").
			Where("dispatched_at IS NOT NULL").Where("created_at < ?", at.UTC())
		if _, err := tx.db.NewDelete().Model((*AlertDelivery)(nil)).Where("event_id IN (?)", old).Exec(ctx); err != nil {
			return 0, err
		}
		res, err := tx.db.NewDelete().Model((*AlertEvent)(nil)).
			Where("dispatched_at IS NOT NULL").Where("created_at < ?", at.UTC()).Exec(ctx)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		return int(n), err
	})
}

// RunInTxCount is RunInTx for a function that also counts something.
func (s *Store) RunInTxCount(ctx context.Context, fn func(ctx context.Context, tx *Store) (int, error)) (int, error) {
	var n int
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		var err error
		n, err = fn(ctx, tx)
		return err
	})
	return n, err
}

// PutAlertDelivery inserts a delivery unless the event already has one for the channel and target, and returns
// the stored row either way (a retried plan finds the rows it wrote).
func (s *Store) PutAlertDelivery(ctx context.Context, d *AlertDelivery) (*AlertDelivery, error) {
	d.CreatedAt = now()
	d.UpdatedAt = d.CreatedAt
	if _, err := s.db.NewInsert().Model(d).On("CONFLICT (event_id, channel, target) DO NOTHING").Exec(ctx); err != nil {
		return nil, classify(err, "alert delivery")
	}
	out := new(AlertDelivery)
	err := s.db.NewSelect().Model(out).Where("event_id = ? AND channel = ? AND target = ?", d.EventID, d.Channel, d.Target).Scan(ctx)
	return out, classify(err, "alert delivery")
}

// GetAlertDelivery returns a delivery by ID.
func (s *Store) GetAlertDelivery(ctx context.Context, id string) (*AlertDelivery, error) {
	d := new(AlertDelivery)
	err := s.db.NewSelect().Model(d).Where("id = ?", id).Scan(ctx)
	return d, classify(err, "alert delivery")
}

// RecordAlertAttempt counts an attempt of a pending delivery and its outcome: succeeded when err is empty, else
// the delivery stays pending with the error (the workflow retries) unless final.
func (s *Store) RecordAlertAttempt(ctx context.Context, id string, httpStatus int, errText string, final bool) error {
	at := now()
	status := DeliveryPending
	switch {
	case errText == "":
		status = DeliverySucceeded
	case final:
		status = DeliveryFailed
	}
	q := s.db.NewUpdate().Model((*AlertDelivery)(nil)).Set("attempts = attempts + 1").Set("status = ?", status).
		Set("last_status = ?", httpStatus).Set("last_error = ?", errText).Set("updated_at = ?", at).
		Where("id = ?", id).Where("status = ?", DeliveryPending)
	if status == DeliverySucceeded {
		q = q.Set("delivered_at = ?", at)
	}
	_, err := q.Exec(ctx)
	return err
}

// FailAlertDelivery marks a delivery that is still pending failed for good, keeping its last error unless it had
// none.
func (s *Store) FailAlertDelivery(ctx context.Context, id, reason string) error {
	_, err := s.db.NewUpdate().Model((*AlertDelivery)(nil)).Set("status = ?", DeliveryFailed).
		Set("last_error = CASE WHEN last_error = '' THEN ? ELSE last_error END", reason).Set("updated_at = ?", now()).
		Where("id = ?", id).Where("status = ?", DeliveryPending).Exec(ctx)
	return err
}

// AlertDeliveryView is a delivery with what its event was about, for the team's log.
type AlertDeliveryView struct {
	AlertDelivery `bun:",extend"`
	Kind          string
	SubjectType   string
	SubjectID     string
	SubjectName   string
	Message       string
}

// ListAlertDeliveries returns a page of a team's delivery log, newest first.
func (s *Store) ListAlertDeliveries(ctx context.Context, teamID string, p Page) ([]AlertDeliveryView, string, error) {
	q := s.db.NewSelect().Model((*AlertDelivery)(nil)).ColumnExpr("alert_delivery.*").
		ColumnExpr("e.kind, e.subject_type, e.subject_id, e.subject_name, e.message").
		Join("JOIN alert_events AS e ON e.id = alert_delivery.event_id").
		Where("alert_delivery.team_id = ?", teamID)
	p.NewestFirst = true
	return listPage(ctx, q, "alert_delivery.id", p, func(d *AlertDeliveryView) string { return d.ID })
}

// TeamEmailsWithRole returns the addresses of the team's members holding at least role.
func (s *Store) TeamEmailsWithRole(ctx context.Context, teamID string, role domain.Role) ([]string, error) {
	var out []string
	err := s.db.NewSelect().Table("memberships").ColumnExpr("u.email").Join("JOIN users AS u ON u.id = memberships.user_id").
		Where("memberships.team_id = ?", teamID).Where("memberships.role >= ?", role).OrderExpr("u.email").Scan(ctx, &out)
	return out, err
}

// DevicesOfflineSince returns the team's devices not connected to the broker and last seen at or before
// upTo: the candidates for "offline for longer than"; the caller decides from each device's times.
func (s *Store) DevicesOfflineSince(ctx context.Context, teamID string, upTo time.Time, limit int) ([]Device, error) {
	var out []Device
	err := s.db.NewSelect().Model(&out).Where("team_id = ?", teamID).Where("connected = ?", false).
		Where("last_seen_at IS NOT NULL AND last_seen_at <= ?", upTo.UTC()).OrderExpr("last_seen_at ASC").
		Limit(int64(limit)).Scan(ctx)
	return out, err
}

// AlertThrottle is a rule's throttle window for one kind of event.
type AlertThrottle struct {
	bun.BaseModel `bun:"table:alert_throttles"`
	RuleID        string `bun:",pk"`
	Kind          string `bun:",pk"`
	WindowEnd     time.Time
	Held          int
}

// AlertHeld is an event a rule held back, and the summary that told of it.
type AlertHeld struct {
	bun.BaseModel  `bun:"table:alert_held"`
	RuleID         string `bun:",pk"`
	EventID        string `bun:",pk"`
	TeamID         string
	Kind           string
	SummaryEventID *string
	CreatedAt      time.Time
}

// AlertEventPlanned reports whether an event's deliveries were planned already (a delivery or a held row
// exists): a retried plan must not count the event against a throttle twice.
func (s *Store) AlertEventPlanned(ctx context.Context, eventID string) (bool, error) {
	n, err := s.db.NewSelect().Model((*AlertDelivery)(nil)).Where("event_id = ?", eventID).Limit(1).Count(ctx)
	if err != nil || n > 0 {
		return n > 0, err
	}
	n, err = s.db.NewSelect().Model((*AlertHeld)(nil)).Where("event_id = ?", eventID).Limit(1).Count(ctx)
	return n > 0, err
}

// PendingAlertDeliveries returns an event's deliveries still to make.
func (s *Store) PendingAlertDeliveries(ctx context.Context, eventID string) ([]AlertDelivery, error) {
	var out []AlertDelivery
	err := s.db.NewSelect().Model(&out).Where("event_id = ?", eventID).Where("status = ?", DeliveryPending).
		Order("created_at", "id").Scan(ctx)
	return out, err
}

// HitAlertThrottle counts an event of kind against the rule's window at at, in one statement so that concurrent
// callers agree: the first event after a closed window (nothing held) is let through and opens a window until
// at+window; any other is held (also one arriving after the window ended while a summary is still due, which
// that summary then includes).
func (s *Store) HitAlertThrottle(ctx context.Context, ruleID, kind string, at time.Time, window time.Duration) (held bool, err error) {
	var n int
	err = s.db.NewRaw(`INSERT INTO alert_throttles (rule_id, kind, window_end, held) VALUES (?, ?, ?, 0)
ON CONFLICT (rule_id, kind) DO UPDATE SET
    held = CASE WHEN alert_throttles.window_end > ? OR alert_throttles.held > 0 THEN alert_throttles.held + 1 ELSE 0 END,
    window_end = CASE WHEN alert_throttles.window_end > ? OR alert_throttles.held > 0 THEN alert_throttles.window_end ELSE ? END
RETURNING held`, ruleID, kind, at.Add(window).UTC(), at.UTC(), at.UTC(), at.Add(window).UTC()).Scan(ctx, &n)
	return n > 0, err
}

// InsertAlertHeld records an event a rule held back.
func (s *Store) InsertAlertHeld(ctx context.Context, h *AlertHeld) error {
	h.CreatedAt = now()
	_, err := s.db.NewInsert().Model(h).On("CONFLICT (rule_id, event_id) DO NOTHING").Exec(ctx)
	return classify(err, "held alert event")
}

// DueAlertThrottles returns up to limit windows that ended by at with events held: their summaries are due.
func (s *Store) DueAlertThrottles(ctx context.Context, at time.Time, limit int) ([]AlertThrottle, error) {
	var out []AlertThrottle
	err := s.db.NewSelect().Model(&out).Where("window_end <= ?", at.UTC()).Where("held > 0").
		Order("window_end", "rule_id", "kind").Limit(int64(limit)).Scan(ctx)
	return out, err
}

// ClaimAlertThrottle starts a new window until next for a due one and reports whether this caller did: of
// several processes summarising at once, one wins. Events held after the claim go into the next summary.
func (s *Store) ClaimAlertThrottle(ctx context.Context, ruleID, kind string, at, next time.Time) (bool, error) {
	return affectedOne(s.db.NewUpdate().Model((*AlertThrottle)(nil)).Set("held = 0").Set("window_end = ?", next.UTC()).
		Where("rule_id = ? AND kind = ?", ruleID, kind).Where("held > 0").Where("window_end <= ?", at.UTC()).Exec(ctx))
}

// UnsummarisedAlertEvents returns the events a rule held back of kind that no summary told of yet, oldest first.
func (s *Store) UnsummarisedAlertEvents(ctx context.Context, ruleID, kind string) ([]AlertEvent, error) {
	var out []AlertEvent
	err := s.db.NewSelect().Model(&out).Join("JOIN alert_held AS h ON h.event_id = alert_event.id").
		Where("h.rule_id = ? AND h.kind = ?", ruleID, kind).Where("h.summary_event_id IS NULL").
		Order("alert_event.created_at", "alert_event.id").Scan(ctx)
	return out, err
}

// MarkAlertHeldSummarised records the summary that told of the rule's held events eventIDs.
func (s *Store) MarkAlertHeldSummarised(ctx context.Context, ruleID, summaryID string, eventIDs []string) error {
	_, err := s.db.NewUpdate().Model((*AlertHeld)(nil)).Set("summary_event_id = ?", summaryID).
		Where("rule_id = ?", ruleID).Where("event_id IN (?)", bun.List(eventIDs)).Exec(ctx)
	return err
}
