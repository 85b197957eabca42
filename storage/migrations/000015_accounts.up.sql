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
--bun:split
-- Invitations to a team by e-mail. Only the digest of the link's token is stored. A row keeps its final state
-- (accepted, declined, revoked) so that a used link answers why it no longer works; an address has at most one
-- pending invitation a team.
CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        BIGINT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    invited_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE UNIQUE INDEX invitations_pending_email ON invitations (team_id, email) WHERE status = 'pending';
--bun:split
-- A user whose password someone else chose (the generated first admin) must choose their own before anything else.
ALTER TABLE users ADD COLUMN password_change_required BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
-- Password-reset links: only the digest of the token is stored; a row is deleted when used, and every row of
-- the user when the password changes.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX password_resets_user_id ON password_resets (user_id);
