-- Billing: one row per billed team mirroring its Stripe subscription, the Stripe events already applied (so a
-- replayed webhook changes nothing), and the items last written to Stripe (what the team is billed for).
CREATE TABLE subscriptions (
    team_id             TEXT PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    status              TEXT NOT NULL,
    customer_id         TEXT NOT NULL DEFAULT '',
    subscription_id     TEXT NOT NULL DEFAULT '',
    checkout_session_id TEXT NOT NULL DEFAULT '',
    trial_ends_at       TIMESTAMPTZ,
    current_period_end  TIMESTAMPTZ,
    status_at           TIMESTAMPTZ NOT NULL,
    items               TEXT NOT NULL DEFAULT '[]',
    synced_at           TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);
--bun:split
CREATE INDEX subscriptions_subscription ON subscriptions (subscription_id);
--bun:split
CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    team_id     TEXT,
    received_at TIMESTAMPTZ NOT NULL
);
