package api

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Alerts: a team's notification rules, its webhooks and the delivery log. Owners manage them; members read
// them. Each event is delivered by a workflow (workflows/alert); these routes only write the rows it reads,
// and "send test" emits an event for one webhook.

// Per-team caps, so that one team cannot make every event fan out to thousands of destinations.
const (
	maxAlertRules    = 50
	maxAlertWebhooks = 20
	maxOfflineMinute = 7 * 24 * 60
	maxThrottleMin   = 24 * 60
)

type alertRuleRequest struct {
	Name           *string   `json:"name,omitempty"`
	Kinds          *[]string `json:"kinds,omitempty"`
	OfflineMinutes *int      `json:"offlineMinutes,omitempty"`
	// ThrottleMinutes: at most one notification per kind of event in this window, later ones summarised when
	// it ends (default 15; 0 sends every event).
	ThrottleMinutes *int    `json:"throttleMinutes,omitempty"`
	EmailRole       *string `json:"emailRole,omitempty"` // owner, member, viewer, dashboard, or "" for no e-mail
	WebhookID       *string `json:"webhookId,omitempty"` // "" for none
	Enabled         *bool   `json:"enabled,omitempty"`
}

type alertRuleJSON struct {
	ID              string    `json:"id"`
	TeamID          string    `json:"teamId"`
	Name            string    `json:"name"`
	Kinds           []string  `json:"kinds"`
	OfflineMinutes  int       `json:"offlineMinutes"`
	ThrottleMinutes int       `json:"throttleMinutes"`
	EmailRole       string    `json:"emailRole"`
	WebhookID       *string   `json:"webhookId"`
	Enabled         bool      `json:"enabled"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

func alertRuleView(r *storage.AlertRule) alertRuleJSON {
	role := ""
	if r.EmailRole > 0 {
		role = r.EmailRole.String()
	}
	return alertRuleJSON{ID: r.ID, TeamID: r.TeamID, Name: r.Name, Kinds: r.Kinds, OfflineMinutes: r.OfflineMinutes,
		ThrottleMinutes: r.ThrottleMinutes, EmailRole: role, WebhookID: r.WebhookID, Enabled: r.Enabled, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

type webhookRequest struct {
	Name *string `json:"name,omitempty"`
	URL  *string `json:"url,omitempty"`
}

type webhookJSON struct {
	ID        string    `json:"id"`
	TeamID    string    `json:"teamId"`
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	Secret    string    `json:"secret,omitempty"` // only in the answer that creates it
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func webhookView(w *storage.AlertWebhook) webhookJSON {
	return webhookJSON{ID: w.ID, TeamID: w.TeamID, Name: w.Name, URL: w.URL, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

type alertDeliveryJSON struct {
	ID          string     `json:"id"`
	EventID     string     `json:"eventId"`
	Kind        string     `json:"kind"`
	Title       string     `json:"title"`
	Message     string     `json:"message"`
	Subject     any        `json:"subject"`
	RuleID      *string    `json:"ruleId"`
	WebhookID   *string    `json:"webhookId"`
	Channel     string     `json:"channel"`
	Target      string     `json:"target"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastStatus  int        `json:"lastStatus,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
}

func alertDeliveryView(d *storage.AlertDeliveryView) alertDeliveryJSON {
	ev := &storage.AlertEvent{Kind: d.Kind, SubjectID: d.SubjectID, SubjectName: d.SubjectName}
	return alertDeliveryJSON{ID: d.ID, EventID: d.EventID, Kind: d.Kind, Title: alerts.Title(ev), Message: d.Message,
		Subject: alerts.PayloadSubject{Type: d.SubjectType, ID: d.SubjectID, Name: d.SubjectName},
		RuleID:  d.RuleID, WebhookID: d.WebhookID, Channel: d.Channel, Target: d.Target, Status: d.Status, Attempts: d.Attempts,
		LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt}
}

func (s *Server) registerAlerts() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/alert-rules", Tag: "alerts",
		Summary: "The team's alert rules (members and owners)."}, s.listAlertRules)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/alert-rules", Tag: "alerts", Body: alertRuleRequest{}, Status: 201,
		Summary: "Add an alert rule (owners): the kinds of event it covers (" + fmt.Sprint(alerts.Kinds) + "), offlineMinutes for device_offline, throttleMinutes (default 15: at most one notification per kind in that window, the rest summarised when it ends; 0 sends every event), and where it goes: e-mail to members of at least emailRole and/or the team's webhook webhookId."}, s.createAlertRule)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/alert-rules/:ruleId", Tag: "alerts", Body: alertRuleRequest{},
		Summary: "Change an alert rule (owners)."}, s.updateAlertRule)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/alert-rules/:ruleId", Tag: "alerts", Status: 204,
		Summary: "Delete an alert rule (owners)."}, s.deleteAlertRule)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/webhooks", Tag: "alerts",
		Summary: "The team's alert webhooks (members and owners); secrets are never shown again."}, s.listWebhooks)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/webhooks", Tag: "alerts", Body: webhookRequest{}, Status: 201,
		Summary: "Add a webhook (owners): an http(s) URL, refused when it points at a loopback, private or link-local address unless the platform allows them. The answer holds its signing secret, shown only this once."}, s.createWebhook)
	s.route(routeDoc{Method: "PATCH", Path: "/api/v1/webhooks/:webhookId", Tag: "alerts", Body: webhookRequest{},
		Summary: "Rename a webhook or change its URL (owners); the secret stays."}, s.updateWebhook)
	s.route(routeDoc{Method: "DELETE", Path: "/api/v1/webhooks/:webhookId", Tag: "alerts", Status: 204,
		Summary: "Delete a webhook (owners); rules that used it keep their e-mail."}, s.deleteWebhook)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/webhooks/:webhookId/test", Tag: "alerts", Status: 202,
		Summary: "Send a test event to the webhook (owners), delivered like any alert; its delivery appears in the log."}, s.testWebhook)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/alert-deliveries", Tag: "alerts",
		Summary: "The team's delivery log, newest first (members and owners): each e-mail and webhook delivery with its attempts and last error."}, s.listAlertDeliveries)
}

func (s *Server) listAlertRules(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamAlertsRead)
	if err != nil {
		return err
	}
	rules, err := s.store.ListAlertRules(c.UserContext(), team.ID)
	if err != nil {
		return err
	}
	return list(c, rules, "", alertRuleView)
}

// applyAlertRule validates a request onto r (every bad field at once) and checks that its webhook is the team's.
func (s *Server) applyAlertRule(ctx context.Context, tx *storage.Store, r *storage.AlertRule, req alertRuleRequest) error {
	var errs []*domain.FieldError
	if req.Name != nil {
		r.Name = *req.Name
		errs = append(errs, domain.ValidateName("name", r.Name))
	}
	if req.Kinds != nil {
		r.Kinds = *req.Kinds
	}
	errs = append(errs, validateKinds(r.Kinds))
	if req.OfflineMinutes != nil {
		r.OfflineMinutes = *req.OfflineMinutes
	}
	if slices.Contains(r.Kinds, alerts.KindDeviceOffline) && (r.OfflineMinutes < 1 || r.OfflineMinutes > maxOfflineMinute) {
		errs = append(errs, &domain.FieldError{Field: "offlineMinutes", Detail: fmt.Sprintf("must be from 1 to %d with device_offline", maxOfflineMinute)})
	}
	if req.ThrottleMinutes != nil {
		r.ThrottleMinutes = *req.ThrottleMinutes
	}
	if r.ThrottleMinutes < 0 || r.ThrottleMinutes > maxThrottleMin {
		errs = append(errs, &domain.FieldError{Field: "throttleMinutes", Detail: fmt.Sprintf("must be from 0 (no throttling) to %d", maxThrottleMin)})
	}
	if req.EmailRole != nil {
		r.EmailRole = domain.RoleNone
		if *req.EmailRole != "" {
			role, err := domain.ParseRole(*req.EmailRole)
			if err != nil {
				errs = append(errs, &domain.FieldError{Field: "emailRole", Detail: "must be owner, member, viewer, dashboard or empty"})
			}
			r.EmailRole = role
		}
	}
	if req.WebhookID != nil {
		r.WebhookID = nil
		if *req.WebhookID != "" {
			r.WebhookID = req.WebhookID
		}
	}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	if err := domain.Collect(errs...); err != nil {
		return err
	}
	if r.WebhookID != nil {
		if _, err := s.teamWebhook(ctx, tx, r.TeamID, *r.WebhookID); err != nil {
			return err
		}
	}
	if r.EmailRole == domain.RoleNone && r.WebhookID == nil {
		return domain.InvalidField("emailRole", "a rule needs e-mail (emailRole) or a webhook (webhookId)")
	}
	return nil
}

func validateKinds(kinds []string) *domain.FieldError {
	if len(kinds) == 0 {
		return &domain.FieldError{Field: "kinds", Detail: "must name at least one kind of event"}
	}
	for _, k := range kinds {
		if !alerts.ValidKind(k) {
			return &domain.FieldError{Field: "kinds", Detail: fmt.Sprintf("%q is not one of %v", k, alerts.Kinds)}
		}
	}
	return nil
}

// teamWebhook loads a webhook named in a request, refusing another team's as if it did not exist.
func (s *Server) teamWebhook(ctx context.Context, st *storage.Store, teamID, id string) (*storage.AlertWebhook, error) {
	w, err := st.GetAlertWebhook(ctx, id)
	if err == nil && w.TeamID != teamID {
		err = domain.NotFound("webhook")
	}
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, domain.Unprocessable("unknown_reference", "The webhook does not exist.", domain.FieldError{Field: "webhookId", Detail: "not found"})
	}
	return w, err
}

func (s *Server) createAlertRule(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	var req alertRuleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		req.Name = new(string)
	}
	r := &storage.AlertRule{ID: domain.NewID(), TeamID: team.ID, Enabled: true, CreatedBy: userIDOf(who), ThrottleMinutes: alerts.DefaultThrottleMinutes}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := s.applyAlertRule(ctx, tx, r, req); err != nil {
			return err
		}
		if err := tx.LockTeam(ctx, team.ID); err != nil {
			return err
		}
		if n, err := tx.CountAlertRules(ctx, team.ID); err != nil || n >= maxAlertRules {
			return orLimit(err, "limit_alert_rules", fmt.Sprintf("A team has at most %d alert rules.", maxAlertRules))
		}
		if err := tx.InsertAlertRule(ctx, r); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "alert-rule.created", "alert-rule", r.ID, map[string]any{"name": r.Name, "kinds": r.Kinds})
	})
	if err != nil {
		return err
	}
	return created(c, alertRuleView(r))
}

func orLimit(err error, code, msg string) error {
	if err != nil {
		return err
	}
	return domain.Conflict(code, msg)
}

func (s *Server) alertRuleFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.AlertRule, error) {
	r, err := s.store.GetAlertRule(c.UserContext(), c.Params("ruleId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, r.TeamID, action, "alert rule")
	return who, r, err
}

func (s *Server) updateAlertRule(c *fiber.Ctx) error {
	who, r, err := s.alertRuleFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	var req alertRuleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := s.applyAlertRule(ctx, tx, r, req); err != nil {
			return err
		}
		if err := tx.UpdateAlertRule(ctx, r, "name", "kinds", "offline_minutes", "email_role", "webhook_id", "enabled"); err != nil {
			return err
		}
		return audit(c, tx, who, r.TeamID, "alert-rule.updated", "alert-rule", r.ID, map[string]any{"name": r.Name, "kinds": r.Kinds, "enabled": r.Enabled})
	})
	if err != nil {
		return err
	}
	return c.JSON(alertRuleView(r))
}

func (s *Server) deleteAlertRule(c *fiber.Ctx) error {
	who, r, err := s.alertRuleFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteAlertRule(ctx, r.ID); err != nil {
			return err
		}
		return audit(c, tx, who, r.TeamID, "alert-rule.deleted", "alert-rule", r.ID, map[string]any{"name": r.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) listWebhooks(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamAlertsRead)
	if err != nil {
		return err
	}
	hooks, err := s.store.ListAlertWebhooks(c.UserContext(), team.ID)
	if err != nil {
		return err
	}
	return list(c, hooks, "", webhookView)
}

// validateWebhook checks a webhook's name and URL, the URL against the destination rule of --webhooks-allow-private.
func (s *Server) validateWebhook(ctx context.Context, w *storage.AlertWebhook, req webhookRequest) error {
	if req.Name != nil {
		w.Name = *req.Name
	}
	if req.URL != nil {
		w.URL = *req.URL
	}
	if err := domain.Collect(domain.ValidateName("name", w.Name)); err != nil {
		return err
	}
	return alerts.ValidateURL(ctx, w.URL, s.cfg.WebhooksAllowPrivate)
}

func (s *Server) createWebhook(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	var req webhookRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	w := &storage.AlertWebhook{ID: domain.NewID(), TeamID: team.ID}
	if err := s.validateWebhook(c.UserContext(), w, req); err != nil {
		return err
	}
	secret := alerts.NewSecret()
	w.Secret = s.sealer.Seal(secret)
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.LockTeam(ctx, team.ID); err != nil {
			return err
		}
		if n, err := tx.CountAlertWebhooks(ctx, team.ID); err != nil || n >= maxAlertWebhooks {
			return orLimit(err, "limit_webhooks", fmt.Sprintf("A team has at most %d webhooks.", maxAlertWebhooks))
		}
		if err := tx.InsertAlertWebhook(ctx, w); err != nil {
			return err
		}
		return audit(c, tx, who, team.ID, "webhook.created", "webhook", w.ID, map[string]any{"name": w.Name, "url": w.URL})
	})
	if err != nil {
		return err
	}
	view := webhookView(w)
	view.Secret = secret
	return created(c, view)
}

func (s *Server) webhookFor(c *fiber.Ctx, action domain.Action) (*caller, *storage.AlertWebhook, error) {
	w, err := s.store.GetAlertWebhook(c.UserContext(), c.Params("webhookId"))
	if err != nil {
		return nil, nil, err
	}
	who, _, err := s.teamAccess(c, w.TeamID, action, "webhook")
	return who, w, err
}

func (s *Server) updateWebhook(c *fiber.Ctx) error {
	who, w, err := s.webhookFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	var req webhookRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if err := s.validateWebhook(c.UserContext(), w, req); err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.UpdateAlertWebhook(ctx, w, "name", "url"); err != nil {
			return err
		}
		return audit(c, tx, who, w.TeamID, "webhook.updated", "webhook", w.ID, map[string]any{"name": w.Name, "url": w.URL})
	})
	if err != nil {
		return err
	}
	return c.JSON(webhookView(w))
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	who, w, err := s.webhookFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := tx.DeleteAlertWebhook(ctx, w.ID); err != nil {
			return err
		}
		return audit(c, tx, who, w.TeamID, "webhook.deleted", "webhook", w.ID, map[string]any{"name": w.Name})
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

// testWebhook emits a test event for the webhook alone; each press is its own event.
func (s *Server) testWebhook(c *fiber.Ctx) error {
	who, w, err := s.webhookFor(c, domain.ActionTeamAlertsManage)
	if err != nil {
		return err
	}
	key := "test:" + domain.NewID()
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if _, err := alerts.Emit(ctx, tx, alerts.Event{TeamID: w.TeamID, Kind: alerts.KindTest, SubjectType: "webhook", SubjectID: w.ID,
			SubjectName: w.Name, Message: "A test of the webhook, sent from the dashboard or the API.", DedupKey: key, WebhookID: w.ID}); err != nil {
			return err
		}
		return audit(c, tx, who, w.TeamID, "webhook.tested", "webhook", w.ID, nil)
	})
	if err != nil {
		return err
	}
	alerts.Wake()
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"webhookId": w.ID, "status": "queued"})
}

func (s *Server) listAlertDeliveries(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamAlertsRead)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := s.store.ListAlertDeliveries(c.UserContext(), team.ID, p)
	if err != nil {
		return err
	}
	return list(c, rows, next, alertDeliveryView)
}
