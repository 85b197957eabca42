package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/storage"
)

// Channels a delivery goes through.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

// Deliverer plans and makes deliveries; the delivery workflow's activities call it, and Temporal retries a
// failed attempt with back-off.
type Deliverer struct {
	Store     *storage.Store
	Sealer    *domain.Sealer
	Mail      mail.Sender  // nil: no SMTP server, e-mail deliveries fail for good
	HTTP      *http.Client // SafeClient
	PublicURL string       // links in e-mails and payloads
}

// Planned is one delivery an event needs.
type Planned struct {
	ID      string
	Channel string
}

// ErrPermanent marks a delivery failure that a retry cannot fix (no SMTP server, a refused destination, the
// webhook deleted); the activity turns it into a non-retryable error.
var ErrPermanent = errors.New("permanent")

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrPermanent}, args...)...)
}

// Plan writes the delivery rows of an event, one per destination of each matching rule (an address once, a
// webhook once, however many rules name them), and returns those to make. A rule whose throttle window is open
// holds the event back: its destinations get a throttled row (the log shows it) unless another rule sends there,
// and the event waits for the rule's summary (Summarise). Plan is idempotent, in one transaction: a retry finds
// the rows it wrote and counts nothing twice.
func (d *Deliverer) Plan(ctx context.Context, eventID string) ([]Planned, error) {
	var out []Planned
	err := d.Store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		out = nil
		ev, err := tx.GetAlertEvent(ctx, eventID)
		if err != nil {
			return err
		}
		planned, err := tx.AlertEventPlanned(ctx, eventID)
		if err != nil {
			return err
		}
		if !planned {
			if err := d.plan(ctx, tx, ev); err != nil {
				return err
			}
		}
		rows, err := tx.PendingAlertDeliveries(ctx, eventID)
		for _, row := range rows {
			out = append(out, Planned{ID: row.ID, Channel: row.Channel})
		}
		return err
	})
	return out, err
}

func (d *Deliverer) plan(ctx context.Context, tx *storage.Store, ev *storage.AlertEvent) error {
	dests, err := d.destinations(ctx, tx, ev)
	if err != nil {
		return err
	}
	held := map[string]bool{} // rule ID: this rule holds the event back
	for _, dest := range dests {
		if dest.rule == nil || dest.rule.ThrottleMinutes <= 0 || ev.SummaryCount > 0 {
			continue
		}
		r := dest.rule
		if _, seen := held[r.ID]; seen {
			continue
		}
		h, err := tx.HitAlertThrottle(ctx, r.ID, ev.Kind, time.Now(), time.Duration(r.ThrottleMinutes)*time.Minute)
		if err != nil {
			return err
		}
		held[r.ID] = h
		if h {
			if err := tx.InsertAlertHeld(ctx, &storage.AlertHeld{RuleID: r.ID, EventID: ev.ID, TeamID: ev.TeamID, Kind: ev.Kind}); err != nil {
				return err
			}
		}
	}
	// One row per destination: pending when any rule sends there, else throttled.
	idx := map[string]int{}
	var rows []*storage.AlertDelivery
	for _, dest := range dests {
		row := &storage.AlertDelivery{ID: domain.NewID(), TeamID: ev.TeamID, EventID: ev.ID, RuleID: dest.ruleID,
			WebhookID: dest.webhookID, Channel: dest.channel, Target: dest.target, Status: storage.DeliveryPending}
		if dest.rule != nil && held[dest.rule.ID] {
			row.Status = storage.DeliveryThrottled
			row.LastError = fmt.Sprintf("held back by the rule's throttle (%d minutes): counted in its next summary", dest.rule.ThrottleMinutes)
		}
		key := dest.channel + " " + dest.target
		if i, ok := idx[key]; ok {
			if rows[i].Status == storage.DeliveryThrottled && row.Status == storage.DeliveryPending {
				rows[i] = row
			}
			continue
		}
		idx[key] = len(rows)
		rows = append(rows, row)
	}
	for _, row := range rows {
		if _, err := tx.PutAlertDelivery(ctx, row); err != nil {
			return err
		}
	}
	return nil
}

type destination struct {
	channel, target   string
	ruleID, webhookID *string
	rule              *storage.AlertRule // nil for a test
}

// destinations are where an event goes: a test to its webhook only; otherwise every enabled rule of the team
// that names the kind (and, for an event narrowed to a rule, that rule only), each destination once per rule.
func (d *Deliverer) destinations(ctx context.Context, tx *storage.Store, ev *storage.AlertEvent) ([]destination, error) {
	if ev.WebhookID != nil {
		return []destination{{channel: ChannelWebhook, target: *ev.WebhookID, webhookID: ev.WebhookID}}, nil
	}
	rules, err := tx.ListAlertRules(ctx, ev.TeamID)
	if err != nil {
		return nil, err
	}
	var out []destination
	seen := map[string]bool{}
	add := func(dest destination) {
		if key := dest.rule.ID + " " + dest.channel + " " + dest.target; !seen[key] {
			seen[key] = true
			out = append(out, dest)
		}
	}
	for i := range rules {
		r := &rules[i]
		if !r.Enabled || !slices.Contains(r.Kinds, ev.Kind) || (ev.RuleID != nil && *ev.RuleID != r.ID) {
			continue
		}
		if r.WebhookID != nil {
			add(destination{channel: ChannelWebhook, target: *r.WebhookID, ruleID: &r.ID, webhookID: r.WebhookID, rule: r})
		}
		if r.EmailRole > 0 {
			emails, err := tx.TeamEmailsWithRole(ctx, ev.TeamID, r.EmailRole)
			if err != nil {
				return nil, err
			}
			for _, e := range emails {
				add(destination{channel: ChannelEmail, target: e, ruleID: &r.ID, rule: r})
			}
		}
	}
	return out, nil
}

// Deliver makes one attempt at a delivery and records it in the log. It returns nil once delivered (or when an
// earlier attempt was), an ErrPermanent error when retrying cannot help, and any other error to be retried.
func (d *Deliverer) Deliver(ctx context.Context, deliveryID string) error {
	del, err := d.Store.GetAlertDelivery(ctx, deliveryID)
	if err != nil {
		return permanent("%v", err)
	}
	if del.Status != storage.DeliveryPending {
		return nil
	}
	ev, err := d.Store.GetAlertEvent(ctx, del.EventID)
	if err != nil {
		return permanent("%v", err)
	}
	var code int
	switch del.Channel {
	case ChannelEmail:
		err = d.sendEmail(ctx, del, ev)
	case ChannelWebhook:
		code, err = d.postWebhook(ctx, del, ev)
	default:
		err = permanent("unknown channel %q", del.Channel)
	}
	errText := ""
	if err != nil {
		errText = strings.TrimPrefix(err.Error(), ErrPermanent.Error()+": ")
	}
	if rerr := d.Store.RecordAlertAttempt(ctx, del.ID, code, errText, errors.Is(err, ErrPermanent)); rerr != nil {
		return rerr
	}
	return err
}

// GiveUp marks a delivery failed after its last attempt.
func (d *Deliverer) GiveUp(ctx context.Context, deliveryID, reason string) error {
	return d.Store.FailAlertDelivery(ctx, deliveryID, reason)
}

func (d *Deliverer) sendEmail(ctx context.Context, del *storage.AlertDelivery, ev *storage.AlertEvent) error {
	if d.Mail == nil {
		return permanent("no SMTP server is configured (--smtp-url)")
	}
	team, err := d.Store.GetTeam(ctx, ev.TeamID)
	if err != nil {
		return permanent("%v", err)
	}
	ruleName := ""
	if del.RuleID != nil {
		if r, err := d.Store.GetAlertRule(ctx, *del.RuleID); err == nil {
			ruleName = r.Name
		}
	}
	m, err := mail.AlertMessage(del.Target, mail.Alert{TeamName: team.Name, Title: Title(ev), Message: ev.Message, At: ev.CreatedAt,
		Link: d.PublicURL + dashboardPath(ev), RulesLink: d.PublicURL + "/teams/" + ev.TeamID + "/alerts", RuleName: ruleName})
	if err != nil {
		return permanent("render: %v", err)
	}
	return d.Mail.Send(ctx, m)
}

// Payload is the JSON body of a webhook delivery.
type Payload struct {
	ID        string         `json:"id"` // the event's: the same in every delivery and retry of it
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Message   string         `json:"message,omitempty"`
	TeamID    string         `json:"teamId"`
	Subject   PayloadSubject `json:"subject"`
	URL       string         `json:"url"`
	CreatedAt time.Time      `json:"createdAt"`
	// Count is, for a summary, how many events the rule's throttle held back (Message names them).
	Count int `json:"count,omitempty"`
}

// PayloadSubject is what an event is about.
type PayloadSubject struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func (d *Deliverer) postWebhook(ctx context.Context, del *storage.AlertDelivery, ev *storage.AlertEvent) (int, error) {
	if del.WebhookID == nil {
		return 0, permanent("the webhook was deleted")
	}
	hook, err := d.Store.GetAlertWebhook(ctx, *del.WebhookID)
	if err != nil {
		return 0, permanent("the webhook was deleted")
	}
	secret, err := d.Sealer.Open(hook.Secret)
	if err != nil {
		return 0, permanent("the webhook's secret cannot be opened (was the platform key changed?)")
	}
	body, err := json.Marshal(Payload{ID: ev.ID, Type: ev.Kind, Title: Title(ev), Message: ev.Message, TeamID: ev.TeamID,
		Subject: PayloadSubject{Type: ev.SubjectType, ID: ev.SubjectID, Name: ev.SubjectName},
		URL:     d.PublicURL + dashboardPath(ev), CreatedAt: ev.CreatedAt, Count: ev.SummaryCount})
	if err != nil {
		return 0, permanent("%v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, permanent("%v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Flowyard-Webhooks/1")
	req.Header.Set(HeaderEvent, ev.Kind)
	req.Header.Set(HeaderDelivery, del.ID)
	req.Header.Set(HeaderSignature, Sign(secret, time.Now(), body))
	resp, err := d.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateDestination) {
			return 0, permanent("%v", ErrPrivateDestination)
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError{resp.StatusCode}
	}
	return resp.StatusCode, nil
}
