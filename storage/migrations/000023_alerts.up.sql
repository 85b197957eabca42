-- Alerts (docs/ARCHITECTURE.md §10). A team's webhooks: where alerts are POSTed, signed with a secret of their own
-- that is stored sealed with the platform's key.
CREATE TABLE alert_webhooks (
    id         TEXT PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX alert_webhooks_team ON alert_webhooks (team_id);
--bun:split
-- A rule says which kinds of event a team hears of and how: by e-mail to its members of at least email_role
-- (0: no e-mail) and/or through one of its webhooks. offline_minutes is how long a device must have been offline.
CREATE TABLE alert_rules (
    id              TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kinds           TEXT NOT NULL DEFAULT '[]',
    offline_minutes BIGINT NOT NULL DEFAULT 0,
    email_role      BIGINT NOT NULL DEFAULT 0,
    webhook_id      TEXT REFERENCES alert_webhooks (id) ON DELETE SET NULL,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    created_by      TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX alert_rules_team ON alert_rules (team_id);
--bun:split
-- Events are written where they are detected, in the transaction that records what happened (or by an activity
-- that Temporal retries until it has), once each: dedup_key names the occurrence. dispatched_at is set once the
-- delivery workflow alert/<id> has been started; rule_id or webhook_id narrow an event to one rule (a device
-- offline for that rule's minutes) or one webhook (a test).
CREATE TABLE alert_events (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    subject_type  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    subject_name  TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL DEFAULT '',
    dedup_key     TEXT NOT NULL UNIQUE,
    rule_id       TEXT REFERENCES alert_rules (id) ON DELETE CASCADE,
    webhook_id    TEXT REFERENCES alert_webhooks (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    dispatched_at TIMESTAMPTZ
);
--bun:split
CREATE INDEX alert_events_undispatched ON alert_events (dispatched_at, created_at);
--bun:split
CREATE INDEX alert_events_team ON alert_events (team_id, created_at);
--bun:split
-- The delivery log: one row per event and destination (an address or a webhook), with its attempts.
CREATE TABLE alert_deliveries (
    id           TEXT PRIMARY KEY,
    team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    rule_id      TEXT REFERENCES alert_rules (id) ON DELETE SET NULL,
    webhook_id   TEXT REFERENCES alert_webhooks (id) ON DELETE SET NULL,
    channel      TEXT NOT NULL,
    target       TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_status  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    UNIQUE (event_id, channel, target)
);
--bun:split
CREATE INDEX alert_deliveries_team ON alert_deliveries (team_id, created_at);
--bun:split
{{.Guard "alert_rules_refs" "alert_rules" "team_id, webhook_id" `
    NOT EXISTS (SELECT 1 FROM alert_webhooks w WHERE w.id = NEW.webhook_id AND w.team_id <> NEW.team_id)`}}
--bun:split
{{.Guard "alert_events_refs" "alert_events" "team_id, rule_id, webhook_id" `
    NOT EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = NEW.rule_id AND r.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM alert_webhooks w WHERE w.id = NEW.webhook_id AND w.team_id <> NEW.team_id)`}}
--bun:split
{{.Guard "alert_deliveries_refs" "alert_deliveries" "team_id, event_id, rule_id, webhook_id" `
    NOT EXISTS (SELECT 1 FROM alert_events e WHERE e.id = NEW.event_id AND e.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = NEW.rule_id AND r.team_id <> NEW.team_id)
    AND NOT EXISTS (SELECT 1 FROM alert_webhooks w WHERE w.id = NEW.webhook_id AND w.team_id <> NEW.team_id)`}}
--bun:split
-- Health: CPU and memory samples of each instance, kept for an hour. The key rounds the time down to the sampling
-- period, so processes that sample the same instance (several workers watching one Kubernetes namespace) write
-- one row between them.
CREATE TABLE instance_samples (
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    at           TIMESTAMPTZ NOT NULL,
    cpu_percent  DOUBLE PRECISION NOT NULL,
    memory_bytes BIGINT NOT NULL,
    PRIMARY KEY (instance_id, at)
);
--bun:split
CREATE INDEX instance_samples_at ON instance_samples (at);
