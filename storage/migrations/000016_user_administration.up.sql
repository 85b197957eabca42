-- Platform settings that every API replica must agree on (whether anyone may sign up, for one), one row a
-- setting, its value JSON. A setting without a row has its default.
CREATE TABLE platform_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
--bun:split
-- A platform admin suspends an account (and reinstates it): while suspended_at is set it cannot sign in, reset
-- its password or use its tokens.
ALTER TABLE users ADD COLUMN suspended_at TIMESTAMPTZ;
--bun:split
-- An account made by sign-up holds its address unconfirmed until the link mailed to it is used; it cannot sign in
-- until then. Every other account (made by an admin, by accepting an invitation) has a confirmed address.
ALTER TABLE users ADD COLUMN email_unverified BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
-- Links that confirm a signed-up account's address: only the digest of the token is stored; a row is deleted when
-- used, and when a newer link replaces it.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX email_verifications_user_id ON email_verifications (user_id);
