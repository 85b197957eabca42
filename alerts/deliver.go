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
// webhook once, however many rules name them), and returns them. It is idempotent: a retry finds the rows.
func (d *Deliverer) Plan(ctx context.Context, eventID string) ([]Planned, error) {
	ev, err := d.Store.GetAlertEvent(ctx, eventID)
	if err != nil {
		return nil, err
	}
	dests, err := d.destinations(ctx, ev)
	if err != nil {
		return nil, err
	}
	out := make([]Planned, 0, len(dests))
	for _, dest := range dests {
		row, err := d.Store.PutAlertDelivery(ctx, &storage.AlertDelivery{ID: domain.NewID(), TeamID: ev.TeamID, EventID: ev.ID,
			RuleID: dest.ruleID, WebhookID: dest.webhookID, Channel: dest.channel, Target: dest.target, Status: storage.DeliveryPending})
		if err != nil {
			return nil, err
		}
		if row.Status == storage.DeliveryPending {
			out = append(out, Planned{ID: row.ID, Channel: row.Channel})
		}
	}
	return out, nil
}

type destination struct {
	channel, target   string
	ruleID, webhookID *string
}

// destinations are where an event goes: a test to its webhook only; otherwise every enabled rule of the team
// that names the kind (and, for an event narrowed to a rule, that rule only).
func (d *Deliverer) destinations(ctx context.Context, ev *storage.AlertEvent) ([]destination, error) {
	if ev.WebhookID != nil {
		return []destination{{channel: ChannelWebhook, target: *ev.WebhookID, webhookID: ev.WebhookID}}, nil
	}
	rules, err := d.Store.ListAlertRules(ctx, ev.TeamID)
	if err != nil {
		return nil, err
	}
	var out []destination
	seen := map[string]bool{}
	add := func(dest destination) {
		if key := dest.channel + " " + dest.target; !seen[key] {
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
			add(destination{channel: ChannelWebhook, target: *r.WebhookID, ruleID: &r.ID, webhookID: r.WebhookID})
		}
		if r.EmailRole > 0 {
			emails, err := d.Store.TeamEmailsWithRole(ctx, ev.TeamID, r.EmailRole)
			if err != nil {
				return nil, err
			}
			for _, e := range emails {
				add(destination{channel: ChannelEmail, target: e, ruleID: &r.ID})
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
		URL:     d.PublicURL + dashboardPath(ev), CreatedAt: ev.CreatedAt})
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
