-- Alert throttling (docs/ARCHITECTURE.md §10). A rule sends at most one notification per kind of event in each
-- throttle window (throttle_minutes; 0 sends every event); the events it holds back meanwhile are summarised in
-- one notification when the window ends.
ALTER TABLE alert_rules ADD COLUMN throttle_minutes BIGINT NOT NULL DEFAULT 15;
--bun:split
-- A summary stands for summary_count held events (0: an ordinary event).
ALTER TABLE alert_events ADD COLUMN summary_count BIGINT NOT NULL DEFAULT 0;
--bun:split
-- One window per rule and kind: window_end is when the next notification may go; held counts the events held
-- back since the last one. An event's plan increments held in the same upsert that reads it, so concurrent plans
-- (a fleet going offline at once) agree on which one is sent.
CREATE TABLE alert_throttles (
    rule_id    TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    held       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, kind)
);
--bun:split
-- Only windows with events held are ever due: the dispatcher looks every 2 s.
CREATE INDEX alert_throttles_due ON alert_throttles (window_end) WHERE held > 0;
--bun:split
-- The events a rule held back, and the summary that told of them once it was sent.
CREATE TABLE alert_held (
    rule_id          TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    team_id          TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    summary_event_id TEXT REFERENCES alert_events (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rule_id, event_id)
);
--bun:split
CREATE INDEX alert_held_event ON alert_held (event_id);
--bun:split
CREATE INDEX alert_held_pending ON alert_held (rule_id, kind, summary_event_id);
--bun:split
{{.Guard "alert_held_refs" "alert_held" "team_id, rule_id, event_id, summary_event_id" `
    NOT EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = NEW.rule_id AND r.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM alert_events e WHERE e.id = NEW.event_id AND e.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM alert_events s WHERE s.id = NEW.summary_event_id AND s.team_id <> NEW.team_id)`}}
--bun:split
-- The sweep of expired single-use rows (docs/ARCHITECTURE.md) finds them by their expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
--bun:split
CREATE INDEX password_resets_expires_at ON password_resets (expires_at);
--bun:split
CREATE INDEX email_verifications_expires_at ON email_verifications (expires_at);
--bun:split
CREATE INDEX second_factor_challenges_expires_at ON second_factor_challenges (expires_at);
--bun:split
-- Periodic jobs that one process of many should run each period: last_at is when one last claimed it.
CREATE TABLE periodic_runs (
    name    TEXT PRIMARY KEY,
    last_at TIMESTAMPTZ NOT NULL
);
