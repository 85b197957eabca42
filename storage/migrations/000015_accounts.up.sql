-- Outgoing e-mail waits here until an SMTP server has taken it: it is written in the same transaction as what it
-- announces (an invitation, a password reset), so neither is lost when the server is down. The bodies hold
-- single-use links and are stored sealed with the platform's key; a row is deleted once delivered.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
